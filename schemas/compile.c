#include "schemas/schemas.h"

wr_schema *wr_schema_embedded(const char *name, wr_error *err)
{
    const char *text = wr_schema_bare_text(name);
    if (!text) {
        wr_errorf(err, WR_E_INTERNAL, "", "schema %s is not embedded", name);
        return NULL;
    }
    return wr_schema_parse(text, err);
}
