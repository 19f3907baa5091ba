#include "schemas/schemas.h"

#include <json-c/json.h>

wr_schema *wr_schema_embedded(const char *name, wr_error *err)
{
    const char *text = wr_schema_bare_text(name);
    if (!text) {
        wr_errorf(err, WR_E_INTERNAL, "", "schema %s is not embedded", name);
        return NULL;
    }
    /* Our own text, checked when it was embedded (schemas/embed.py: JSON,
     * no duplicate keys): json-c alone, without wr_json_parse's checks for
     * hostile input (a sixth of the compile, at every start). */
    json_object *root = json_tokener_parse(text);
    if (!root) {
        wr_errorf(err, WR_E_NOMEM, "", "cannot parse the embedded schema %s", name);
        return NULL;
    }
    wr_schema *s = wr_schema_new(root, err);
    json_object_put(root);
    return s;
}
