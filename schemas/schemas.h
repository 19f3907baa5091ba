/* schemas — the JSON Schemas warrant validates against and publishes as MCP
 * tool schemas, embedded into the binaries at build time (data only). */
#ifndef WR_SCHEMAS_H
#define WR_SCHEMAS_H

#include <stddef.h>

#include "lib/lib.h"

/* The embedded text of a schema file by its file name relative to schemas/,
 * e.g. "csc.contract.v0.1.schema.json" or "tools/run.input.json".
 * NULL when there is no such file. */
const char *wr_schema_text(const char *name);
/* The same schema minified and without annotations (title, description,
 * examples, ...; schemas/embed.py): what wr_schema_embedded compiles, a
 * third of the text to parse at every process start. */
const char *wr_schema_bare_text(const char *name);
/* All embedded names, NULL-terminated, in file-name order. */
const char *const *wr_schema_names(void);
/* The embedded schema compiled; WR_E_INTERNAL if no such file is embedded.
 * Compiled from wr_schema_bare_text; long-lived callers compile once and
 * keep it. */
wr_schema *wr_schema_embedded(const char *name, wr_error *err);

#endif
