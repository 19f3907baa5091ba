/* The C side of canonical_xcheck.py: reads one JSON document per line and
 * prints, tab-separated, its canonical form, its canonical form with null
 * members dropped, the sha256 of the first and whether the parser vouched
 * for the line being canonical already ("canonical" or "-"); or
 * "ERR <code>" when the parser refuses the line. Each tree is given back to
 * the parser for the next line to be read into, and must equal the tree a
 * fresh parse builds. A line vouched for as canonical skips json-c's
 * tokenizer (its tree is built directly): json-c's own strict parse of it
 * must accept it and build an equal tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"

/* json-c's own strict parse of the line, without wr_json_parse's checks. */
static json_object *json_c_parse(struct json_tokener *tok, const char *line, size_t n)
{
    json_tokener_reset(tok);
    json_object *o = json_tokener_parse_ex(tok, line, (int)n + 1); /* its NUL ends a bare number */
    if (o && json_tokener_get_parse_end(tok) < n) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    wr_json_parser *parser = wr_json_parser_new(NULL, NULL);
    struct json_tokener *tok = json_tokener_new_ex(WR_JSON_DEFAULT_MAX_DEPTH + 1);
    if (!parser || !tok)
        return 1;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        wr_error err = {0};
        bool canonical;
        json_object *o = wr_json_parser_parse_canonical(parser, line, (size_t)n, &canonical, &err);
        if (!o) {
            printf("ERR %s\n", wr_code_name(err.code));
            continue;
        }
        json_object *fresh = wr_json_parse(line, (size_t)n, NULL, &err);
        if (!json_object_equal(o, fresh)) {
            fprintf(stderr, "read into the tree before it, unlike a fresh parse: %.*s\n", (int)n, line);
            rc = 1;
        }
        json_object_put(fresh);
        json_object *theirs = canonical ? json_c_parse(tok, line, (size_t)n) : NULL;
        if (canonical && !json_object_equal(o, theirs)) {
            fprintf(stderr, "built unlike json-c's parse (%s): %.*s\n", theirs ? "other tree" : "refused", (int)n,
                    line);
            rc = 1;
        }
        json_object_put(theirs);
        size_t len, dlen;
        char *c = wr_canonical_json(o, false, &len, &err);
        char *d = wr_canonical_json(o, true, &dlen, &err);
        char hex[WR_SHA256_HEX_LEN];
        if (!c || !d || wr_canonical_sha256(o, false, hex, &err) != WR_OK) {
            fprintf(stderr, "canonical_json failed: %s\n", err.message);
            rc = 1;
        } else {
            fwrite(c, 1, len, stdout);
            putchar('\t');
            fwrite(d, 1, dlen, stdout);
            printf("\t%s\t%s\n", hex, canonical ? "canonical" : "-");
        }
        free(c);
        free(d);
        wr_json_parser_recycle(parser, o);
    }
    free(line);
    wr_json_parser_free(parser);
    json_tokener_free(tok);
    return rc;
}
