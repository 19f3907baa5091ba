/* YAML policy text -> JSON document, on libyaml's event API.
 *
 * Policies are trusted configuration, but they are also the thing an
 * attacker would most like to confuse, so the subset we accept is narrow:
 * one document whose root is a mapping, no duplicate keys (CSC
 * canonicalization: two readers could keep different values), no anchors or
 * aliases (alias bombs, and a rule that silently changes when its anchor
 * does), bounded nesting. Scalars resolve like PyYAML's safe_load (the CSC
 * reference loader) so that policy_sha256 agrees with it: plain
 * null/bool/int/float become JSON values, quoted scalars stay strings. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "policies/policies_internal.h"

#define YAML_MAX_DEPTH 32

typedef struct ystate {
    yaml_parser_t parser;
    yaml_event_t ev;
    bool have_ev;
} ystate;

static int next(ystate *y, wr_error *err)
{
    if (y->have_ev)
        yaml_event_delete(&y->ev);
    y->have_ev = false;
    if (!yaml_parser_parse(&y->parser, &y->ev)) {
        return wr_errorf(err, WR_E_INVALID, "", "invalid YAML: %s at line %zu column %zu",
                         y->parser.problem ? y->parser.problem : "parse error", y->parser.problem_mark.line + 1,
                         y->parser.problem_mark.column + 1);
    }
    y->have_ev = true;
    return WR_OK;
}

static size_t line_of(const ystate *y)
{
    return y->ev.start_mark.line + 1;
}

static bool is_one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return true;
    return false;
}

/* PyYAML's YAML 1.1 resolver, decimal integers only (other bases stay
 * strings and then fail the schema, which is the safe direction). */
static json_object *resolve_plain(const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
    if (is_one_of(s, nulls))
        return NULL;
    if (is_one_of(s, trues))
        return json_object_new_boolean(1);
    if (is_one_of(s, falses))
        return json_object_new_boolean(0);

    /* [-+]?digits, or [-+]?digits.digits*([eE][-+]digits)? (YAML 1.1
     * floats need the dot and a signed exponent) */
    const char *d = s + (s[0] == '-' || s[0] == '+');
    bool digits = *d >= '0' && *d <= '9', dot = false, exp = false;
    for (const char *c = d; *c && digits; c++) {
        if (*c == '.' && !dot && !exp)
            dot = true;
        else if ((*c == 'e' || *c == 'E') && dot && !exp && (c[1] == '-' || c[1] == '+') && c[2]) {
            exp = true;
            c++;
        } else if (*c < '0' || *c > '9')
            digits = false;
    }
    if (digits && !dot && !exp && (d[0] != '0' || d[1] == '\0')) {
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno == 0 && (size_t)(end - s) == len)
            return json_object_new_int64(v);
    } else if (digits && dot) {
        char *end;
        double v = strtod(s, &end);
        if ((size_t)(end - s) == len)
            return json_object_new_double(v);
    }
    return json_object_new_string_len(s, (int)len);
}

static int scalar(ystate *y, json_object **out, wr_error *err)
{
    const yaml_event_t *ev = &y->ev;
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (strlen(s) != len)
        return wr_errorf(err, WR_E_INVALID, "", "NUL byte in a YAML scalar at line %zu", line_of(y));
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag && strcmp(tag, YAML_STR_TAG) != 0)
        return wr_errorf(err, WR_E_INVALID, "", "unsupported YAML tag '%.60s' at line %zu", tag, line_of(y));
    if (tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        *out = json_object_new_string_len(s, (int)len);
    else
        *out = resolve_plain(s, len);
    return WR_OK;
}

static int node(ystate *y, int depth, json_object **out, wr_error *err);

static int sequence(ystate *y, int depth, json_object **out, wr_error *err)
{
    json_object *arr = json_object_new_array();
    int rc;
    while ((rc = next(y, err)) == WR_OK && y->ev.type != YAML_SEQUENCE_END_EVENT) {
        json_object *item = NULL;
        if ((rc = node(y, depth + 1, &item, err)))
            break;
        json_object_array_add(arr, item);
    }
    if (rc)
        json_object_put(arr);
    else
        *out = arr;
    return rc;
}

static int mapping(ystate *y, int depth, json_object **out, wr_error *err)
{
    json_object *obj = json_object_new_object();
    int rc;
    while ((rc = next(y, err)) == WR_OK && y->ev.type != YAML_MAPPING_END_EVENT) {
        if (y->ev.type != YAML_SCALAR_EVENT) {
            rc = wr_errorf(err, WR_E_INVALID, "", "mapping keys must be plain strings (line %zu)", line_of(y));
            break;
        }
        if (y->ev.data.scalar.anchor) {
            rc = wr_errorf(err, WR_E_INVALID, "", "YAML anchors and aliases are not allowed (line %zu)", line_of(y));
            break;
        }
        const char *k = (const char *)y->ev.data.scalar.value;
        if (strlen(k) != y->ev.data.scalar.length) {
            rc = wr_errorf(err, WR_E_INVALID, "", "NUL byte in a YAML key at line %zu", line_of(y));
            break;
        }
        if (json_object_object_get_ex(obj, k, NULL)) {
            rc = wr_errorf(err, WR_E_INVALID, "", "duplicate key '%.100s' at line %zu", k, line_of(y));
            break;
        }
        char *key = strdup(k);
        json_object *val = NULL;
        if (!key)
            rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        else if ((rc = next(y, err)) == WR_OK && (rc = node(y, depth + 1, &val, err)) == WR_OK)
            json_object_object_add(obj, key, val);
        free(key);
        if (rc)
            break;
    }
    if (rc)
        json_object_put(obj);
    else
        *out = obj;
    return rc;
}

/* Builds the node whose first event is y->ev. */
static int node(ystate *y, int depth, json_object **out, wr_error *err)
{
    *out = NULL;
    if (depth > YAML_MAX_DEPTH)
        return wr_errorf(err, WR_E_LIMIT, "", "YAML nesting deeper than %d at line %zu", YAML_MAX_DEPTH, line_of(y));
    const yaml_event_t *ev = &y->ev;
    const yaml_char_t *anchor = ev->type == YAML_SCALAR_EVENT           ? ev->data.scalar.anchor
                                : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
                                : ev->type == YAML_MAPPING_START_EVENT  ? ev->data.mapping_start.anchor
                                                                        : NULL;
    if (ev->type == YAML_ALIAS_EVENT || anchor)
        return wr_errorf(err, WR_E_INVALID, "", "YAML anchors and aliases are not allowed (line %zu)", line_of(y));
    const char *tag = ev->type == YAML_SEQUENCE_START_EVENT  ? (const char *)ev->data.sequence_start.tag
                      : ev->type == YAML_MAPPING_START_EVENT ? (const char *)ev->data.mapping_start.tag
                                                             : NULL;
    if (tag && strcmp(tag, YAML_SEQ_TAG) && strcmp(tag, YAML_MAP_TAG))
        return wr_errorf(err, WR_E_INVALID, "", "unsupported YAML tag '%.60s' at line %zu", tag, line_of(y));
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return scalar(y, out, err);
    case YAML_SEQUENCE_START_EVENT:
        return sequence(y, depth, out, err);
    case YAML_MAPPING_START_EVENT:
        return mapping(y, depth, out, err);
    default:
        return wr_errorf(err, WR_E_INVALID, "", "invalid YAML: unexpected event at line %zu", line_of(y));
    }
}

static int document(ystate *y, json_object **out, wr_error *err)
{
    int rc;
    if ((rc = next(y, err)))
        return rc; /* STREAM-START */
    if ((rc = next(y, err)))
        return rc;
    if (y->ev.type == YAML_STREAM_END_EVENT)
        return wr_errorf(err, WR_E_INVALID, "", "policy must contain a YAML mapping (the document is empty)");
    if ((rc = next(y, err)))
        return rc; /* first event of the root node */
    if (y->ev.type != YAML_MAPPING_START_EVENT && y->ev.type != YAML_ALIAS_EVENT)
        return wr_errorf(err, WR_E_INVALID, "", "policy must contain a YAML mapping at the top level");
    if ((rc = node(y, 0, out, err)))
        return rc;
    if ((rc = next(y, err)) == WR_OK) /* DOCUMENT-END */
        rc = next(y, err);
    if (rc == WR_OK && y->ev.type != YAML_STREAM_END_EVENT)
        rc = wr_errorf(err, WR_E_INVALID, "", "policy must be a single YAML document (another starts at line %zu)",
                       line_of(y));
    if (rc) {
        json_object_put(*out);
        *out = NULL;
    }
    return rc;
}

int wr_policy_yaml_to_json(const char *buf, size_t len, json_object **out, wr_error *err)
{
    *out = NULL;
    if (len > WR_POLICY_MAX_BYTES)
        return wr_errorf(err, WR_E_LIMIT, "", "policy is %zu bytes, more than %u", len, WR_POLICY_MAX_BYTES);
    ystate y = {0};
    if (!yaml_parser_initialize(&y.parser))
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    yaml_parser_set_input_string(&y.parser, (const unsigned char *)buf, len);
    int rc = document(&y, out, err);
    if (y.have_ev)
        yaml_event_delete(&y.ev);
    yaml_parser_delete(&y.parser);
    return rc;
}
