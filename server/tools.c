/* The tool machinery: one row of the tool table (handlers.c) per tool
 * drives tools/list, argument validation and dispatch (redis's command
 * table); CallToolResult builders. */
#include "server/core.h"

#include "schemas/schemas.h"

#include <json-c/json_pointer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wr_tools_find(const char *name)
{
    for (size_t i = 0; i < wr_tool_count; i++)
        if (!strcmp(wr_tool_table[i].name, name))
            return (int)i;
    return -1;
}

#define CONTRACT_DESCRIPTIONS "tools/contract.descriptions.json"

/* Replaces $defs members of the form {"$ref": "FILE.schema.json"} by that
 * embedded schema (its own $defs hoisted to the root, where its local
 * "#/$defs/…" references still resolve). Clients never see a file $ref. */
static int load_tool_schema(const char *file, json_object **out, wr_error *err)
{
    const char *text = wr_schema_text(file);
    if (!text)
        return wr_errorf(err, WR_E_INTERNAL, file, "embedded schema %s is missing", file);
    json_object *doc = wr_json_parse(text, strlen(text), NULL, err);
    if (!doc)
        return err->code;
    json_object *defs = NULL;
    if (json_object_object_get_ex(doc, "$defs", &defs)) {
        json_object *extra = json_object_new_object();
        json_object_object_foreach(defs, k, v)
        {
            json_object *ref = NULL;
            if (json_object_object_length(v) != 1 || !json_object_object_get_ex(v, "$ref", &ref))
                continue;
            const char *target = json_object_get_string(ref);
            if (target[0] == '#')
                continue;
            const char *sub_text = wr_schema_text(target);
            json_object *sub = sub_text ? wr_json_parse(sub_text, strlen(sub_text), NULL, err) : NULL;
            if (!sub) {
                json_object_put(extra);
                json_object_put(doc);
                return wr_errorf(err, WR_E_INTERNAL, file, "%s: cannot embed %s", file, target);
            }
            json_object *sub_defs = NULL;
            if (json_object_object_get_ex(sub, "$defs", &sub_defs)) {
                json_object_object_foreach(sub_defs, sk, sv) json_object_object_add(extra, sk, json_object_get(sv));
                json_object_object_del(sub, "$defs");
            }
            /* A nested $id would change the base URI of its references. */
            json_object_object_del(sub, "$id");
            json_object_object_del(sub, "$schema");
            json_object_object_add(extra, k, sub);
        }
        json_object_object_foreach(extra, ek, ev) json_object_object_add(defs, ek, json_object_get(ev));
        json_object_put(extra);
    }
    json_object_object_del(doc, "$comment");
    *out = doc;
    return WR_OK;
}

/* Adds the descriptions of tools/contract.descriptions.json (JSON pointers
 * into the CSC contract schema) to the contract embedded in a tool's input
 * schema, where the schema has none of its own. */
static int describe_contract(json_object *doc, wr_error *err)
{
    json_object *defs = NULL, *contract = NULL;
    if (!json_object_object_get_ex(doc, "$defs", &defs) || !json_object_object_get_ex(defs, "contract", &contract))
        return WR_OK;
    const char *text = wr_schema_text(CONTRACT_DESCRIPTIONS);
    json_object *map = text ? wr_json_parse(text, strlen(text), NULL, err) : NULL;
    if (!map)
        return wr_errorf(err, WR_E_INTERNAL, CONTRACT_DESCRIPTIONS, "embedded %s is missing or invalid",
                         CONTRACT_DESCRIPTIONS);
    json_object_object_foreach(map, ptr, desc)
    {
        json_object *node = NULL;
        if (ptr[0] == '$' || json_pointer_get(contract, ptr, &node) != 0 ||
            !json_object_is_type(node, json_type_object))
            continue;
        if (!json_object_object_get_ex(node, "description", NULL))
            json_object_object_add(node, "description", json_object_get(desc));
    }
    json_object_put(map);
    return WR_OK;
}

/* The arguments check leaves the contract to contracts/, which validates
 * it anyway (with the same JSON pointers): checking it twice would halve
 * the throughput of check. */
static wr_schema *compile_arguments_schema(json_object *in, wr_error *err)
{
    json_object *copy = NULL, *defs = NULL;
    if (json_object_deep_copy(in, &copy, NULL) != 0) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    if (json_object_object_get_ex(copy, "$defs", &defs) && json_object_object_get_ex(defs, "contract", NULL)) {
        json_object *shallow = json_object_new_object();
        json_object_object_add(shallow, "type", json_object_new_string("object"));
        json_object_object_add(defs, "contract", shallow);
    }
    wr_schema *sc = wr_schema_new(copy, err);
    json_object_put(copy);
    return sc;
}

int wr_tools_build(wr_server *s, wr_error *err)
{
    s->tool_schemas = calloc(wr_tool_count, sizeof *s->tool_schemas);
    if (!s->tool_schemas)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < wr_tool_count; i++) {
        const tool_row *t = &wr_tool_table[i];
        char file[128];
        json_object *in = NULL, *outs = NULL;
        snprintf(file, sizeof file, "tools/%s.input.json", t->name);
        if (load_tool_schema(file, &in, err) != WR_OK)
            goto fail;
        if (describe_contract(in, err) != WR_OK) {
            json_object_put(in);
            goto fail;
        }
        snprintf(file, sizeof file, "tools/%s.output.json", t->name);
        if (load_tool_schema(file, &outs, err) != WR_OK) {
            json_object_put(in);
            goto fail;
        }
        s->tool_schemas[i] = compile_arguments_schema(in, err);
        if (!s->tool_schemas[i]) {
            json_object_put(in);
            json_object_put(outs);
            goto fail;
        }
        json_object *row = json_object_new_object();
        json_object_object_add(row, "name", json_object_new_string(t->name));
        json_object_object_add(row, "title", json_object_new_string(t->title));
        json_object_object_add(row, "description", json_object_new_string(t->description));
        json_object_object_add(row, "inputSchema", in);
        json_object_object_add(row, "outputSchema", outs);
        json_object *ann = json_object_new_object();
        json_object_object_add(ann, "title", json_object_new_string(t->title));
        json_object_object_add(ann, "readOnlyHint", json_object_new_boolean(t->read_only));
        if (!t->read_only)
            json_object_object_add(ann, "destructiveHint", json_object_new_boolean(t->destructive));
        json_object_object_add(ann, "idempotentHint", json_object_new_boolean(t->idempotent));
        json_object_object_add(ann, "openWorldHint", json_object_new_boolean(t->open_world));
        json_object_object_add(row, "annotations", ann);
        if (t->task_support) {
            json_object *ex = json_object_new_object();
            json_object_object_add(ex, "taskSupport", json_object_new_string(t->task_support));
            json_object_object_add(row, "execution", ex);
        }
        json_object_array_add(list, row);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "tools", list);
    s->tools_list_json = strdup(wr_json_compact(res));
    json_object_put(res);
    return s->tools_list_json ? WR_OK : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
fail:
    json_object_put(list);
    return err->code;
}

void wr_tools_free(wr_server *s)
{
    if (s->tool_schemas)
        for (size_t i = 0; i < wr_tool_count; i++)
            wr_schema_free(s->tool_schemas[i]);
    free(s->tool_schemas);
    free(s->tools_list_json);
}

/* ---- results ------------------------------------------------------------ */

/* {"structuredContent":…,"content":[{"type":"text","text":…}…],"isError":true},
 * written as text: a result is only ever sent. The summary and details are
 * text items; structured (compact JSON) and details may be NULL. */
static json_object *result_text(const char *structured, const char *summary, const char *details, bool is_error)
{
    size_t n = strlen(summary);
    bool valid = wr_utf8_valid(summary, n);
    char *clean = valid ? NULL : wr_utf8_sanitize((const unsigned char *)summary, n);
    wr_jtext t = {0};
    wr_jtext_put(&t, "{", 1);
    if (structured) {
        wr_jtext_lit(&t, "\"structuredContent\":");
        wr_jtext_lit(&t, structured);
        wr_jtext_put(&t, ",", 1);
    }
    /* The text is a short human summary, not a copy of the structured
     * content: a run's 1 MiB of output would otherwise travel twice. */
    wr_jtext_lit(&t, "\"content\":[{\"type\":\"text\",\"text\":");
    wr_jtext_str(&t, valid ? summary : clean ? clean : "");
    free(clean);
    if (details) {
        wr_jtext_lit(&t, "},{\"type\":\"text\",\"text\":");
        wr_jtext_str(&t, details);
    }
    wr_jtext_lit(&t, is_error ? "}],\"isError\":true}" : "}]}");
    char *text = wr_jtext_take(&t);
    return text ? wr_json_raw(text) : NULL;
}

json_object *wr_tool_result_text(const char *structured, const char *summary, bool is_error)
{
    return result_text(structured, summary, NULL, is_error);
}

json_object *wr_tool_result(json_object *structured, const char *summary, bool is_error)
{
    json_object *r = result_text(structured ? wr_json_compact(structured) : NULL, summary, NULL, is_error);
    json_object_put(structured);
    return r;
}

/* An error without the tool's output shape: the details go in the text
 * content only, because clients validate any structuredContent against the
 * outputSchema, error or not (the SDK's callTool does). details stays owned
 * by the caller. */
json_object *wr_tool_error_details(json_object *details, const char *summary)
{
    return result_text(NULL, summary, wr_json_compact(details), true);
}

json_object *wr_tool_error(const char *message, const char *pointer)
{
    json_object *st = json_object_new_object();
    json_object_object_add(st, "error", json_object_new_string(message));
    if (pointer && pointer[0])
        json_object_object_add(st, "pointer", json_object_new_string(pointer));
    char text[1200];
    if (pointer && pointer[0])
        snprintf(text, sizeof text, "%s (at %s)", message, pointer);
    else
        snprintf(text, sizeof text, "%s", message);
    json_object *r = wr_tool_error_details(st, text);
    json_object_put(st);
    return r;
}

tool_status wr_tools_call(int idx, tool_call *tc, json_object *args, json_object **result, wr_error *rpc_err)
{
    wr_error err;
    wr_error_clear(&err);
    *result = NULL;
    if (wr_schema_validate(tc->ss->srv->tool_schemas[idx], args, &err) != WR_OK) {
        /* Input validation is a tool error the model can fix (SEP-1303). */
        char msg[900];
        snprintf(msg, sizeof msg, "invalid arguments for %s: %s", wr_tool_table[idx].name, err.message);
        *result = wr_tool_error(msg, err.path);
        return TOOL_DONE;
    }
    tool_status st = TOOL_DONE;
    *result = wr_tool_table[idx].fn(tc, args, &st, rpc_err);
    return st;
}
