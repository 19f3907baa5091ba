/* Lexical path normalisation and component-wise containment.
 *
 * Every scope decision compares normalised paths: "/workspace/../etc" must
 * not pass as being under "/workspace", and "/workspacex" is not under
 * "/workspace" (a plain string prefix test would say it is). Symlinks are a
 * run-time matter for the executor; here we only reason about text. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "contracts/contracts.h"

/* A last component "**" names a whole subtree (CSC read/write path globs). */
static bool has_glob_suffix(const char *p, size_t len)
{
    return len >= 3 && memcmp(p + len - 3, "/**", 3) == 0;
}

#define GLOB_CHARS "*?["
/* "**" components allowed in one glob: each may match any depth, so the
 * matcher's work grows with their number. */
#define GLOB_MAX_DOUBLESTARS 4

static int normalize(const char *in, bool globs, char **out, wr_error *err)
{
    *out = NULL;
    size_t len = strlen(in);
    if (len == 0)
        return wr_errorf(err, WR_E_INVALID, "", "empty path");
    if (len > WR_CONTRACT_MAX_PATH_BYTES)
        return wr_errorf(err, WR_E_INVALID, "", "path longer than %u bytes", WR_CONTRACT_MAX_PATH_BYTES);
    if (in[0] != '/')
        return wr_errorf(err, WR_E_INVALID, "", "path '%.200s' is not an absolute POSIX path", in);
    if (!wr_utf8_valid(in, len))
        return wr_errorf(err, WR_E_INVALID, "", "path is not valid UTF-8");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f)
            return wr_errorf(err, WR_E_INVALID, "", "path contains control character 0x%02x", c);
    }

    bool glob = has_glob_suffix(in, len);
    size_t body_len = glob ? len - 3 : len;
    /* Output is never longer than the input (+ "/" for the root). */
    char *buf = malloc(len + 2);
    if (!buf)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    size_t n = 0;
    int doublestars = 0;
    const char *p = in, *end = in + body_len;
    while (p < end) {
        while (p < end && *p == '/')
            p++;
        const char *s = p;
        while (p < end && *p != '/')
            p++;
        size_t cl = (size_t)(p - s);
        if (cl == 0 || (cl == 1 && s[0] == '.'))
            continue;
        if (cl == 2 && s[0] == '.' && s[1] == '.') {
            if (n == 0) {
                free(buf);
                return wr_errorf(err, WR_E_INVALID, "", "path '%.200s' climbs above /", in);
            }
            while (n > 0 && buf[n - 1] != '/')
                n--;
            if (n > 0)
                n--; /* drop the separator too */
            continue;
        }
        /* Outside read paths "*" is only the last component "**"; anywhere
         * else it would be a pattern nobody evaluates, so it is refused
         * rather than read differently by the executor and the policy. */
        if (!globs && memchr(s, '*', cl)) {
            free(buf);
            return wr_errorf(err, WR_E_INVALID, "", "path '%.200s': '*' is only allowed as a trailing '/**'", in);
        }
        if (globs && cl == 2 && s[0] == '*' && s[1] == '*' && ++doublestars > GLOB_MAX_DOUBLESTARS) {
            free(buf);
            return wr_errorf(err, WR_E_INVALID, "", "path '%.200s': more than %d '**' components", in,
                             GLOB_MAX_DOUBLESTARS);
        }
        buf[n++] = '/';
        memcpy(buf + n, s, cl);
        n += cl;
    }
    if (glob) {
        memcpy(buf + n, "/**", 3);
        n += 3;
    } else if (n == 0) {
        buf[n++] = '/';
    }
    buf[n] = '\0';
    *out = buf;
    return WR_OK;
}

int wr_path_normalize(const char *in, char **out, wr_error *err)
{
    return normalize(in, false, out, err);
}

int wr_path_normalize_glob(const char *in, char **out, wr_error *err)
{
    return normalize(in, true, out, err);
}

bool wr_path_is_glob(const char *path)
{
    return strpbrk(path, GLOB_CHARS) != NULL;
}

/* Length of the literal root a path names: up to the component before the
 * first one holding a pattern (so without a trailing glob), 0 for the root:
 * for "/a", "/a" + "/" "**", "/a/b" + "/" "*.c", "/" and "/" "*": 2, 2, 4, 0, 0. */
static size_t root_len(const char *p)
{
    size_t len = strlen(p), lit = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i + 1 + strcspn(p + i + 1, "/");
        if (memchr(p + i, '*', e - i) || memchr(p + i, '?', e - i) || memchr(p + i, '[', e - i))
            break;
        lit = e;
        i = e;
    }
    return lit == 1 && p[0] == '/' ? 0 : lit;
}

bool wr_path_within(const char *path, const char *prefix)
{
    size_t pl = root_len(prefix), ql = root_len(path);
    if (pl == 0)
        return path[0] == '/';
    if (ql < pl || memcmp(path, prefix, pl) != 0)
        return false;
    return ql == pl || path[pl] == '/';
}

/* Splits a normalised path into its components (pointers into a copy). */
static char **components(const char *path, char **copy, size_t *n)
{
    *n = 0;
    if (!(*copy = strdup(path)))
        return NULL;
    size_t cap = 1;
    for (const char *c = path; *c; c++)
        cap += *c == '/';
    char **v = calloc(cap, sizeof *v);
    if (!v)
        return NULL;
    for (char *save = NULL, *t = strtok_r(*copy, "/", &save); t; t = strtok_r(NULL, "/", &save))
        v[(*n)++] = t;
    return v;
}

/* Matching by dynamic programming over (pattern component, path
 * component): linear in their product, however many "**" there are. */
bool wr_path_glob_match(const char *glob, const char *path)
{
    char *gc = NULL, *pc = NULL;
    size_t ng, np;
    char **g = components(glob, &gc, &ng), **q = components(path, &pc, &np);
    bool *row = g && q ? calloc(np + 1, sizeof *row) : NULL, ok = false;
    if (row) {
        /* row[j]: the first i pattern components match the first j path components */
        row[0] = true;
        for (size_t i = 0; i < ng; i++) {
            bool star = !strcmp(g[i], "**"), prev_diag = row[0];
            row[0] = row[0] && star;
            for (size_t j = 1; j <= np; j++) {
                bool diag = prev_diag;
                prev_diag = row[j];
                row[j] = star ? row[j] || row[j - 1] : diag && fnmatch(g[i], q[j - 1], FNM_PERIOD) == 0;
            }
        }
        ok = row[np];
    }
    free(row);
    free(g);
    free(q);
    free(gc);
    free(pc);
    return ok;
}

const char *wr_network_mode_name(wr_network_mode m)
{
    switch (m) {
    case WR_NET_DENY:
        return "deny";
    case WR_NET_ALLOWLISTED:
        return "allowlisted";
    case WR_NET_FULL:
        return "full";
    }
    return "deny";
}
