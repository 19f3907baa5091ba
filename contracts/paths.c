/* Lexical path normalisation and component-wise containment.
 *
 * Every scope decision compares normalised paths: "/workspace/../etc" must
 * not pass as being under "/workspace", and "/workspacex" is not under
 * "/workspace" (a plain string prefix test would say it is). Symlinks are a
 * run-time matter for the executor; here we only reason about text. */
#include <stdlib.h>
#include <string.h>

#include "contracts/contracts.h"

/* A last component "**" names a whole subtree (CSC read/write path globs). */
static bool has_glob_suffix(const char *p, size_t len)
{
    return len >= 3 && memcmp(p + len - 3, "/**", 3) == 0;
}

int wr_path_normalize(const char *in, char **out, wr_error *err)
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
        /* "*" is only meaningful as the trailing subtree glob; anywhere else
         * it would be a pattern we do not evaluate, so refuse it rather than
         * let the executor and the policy read it differently. */
        if (memchr(s, '*', cl)) {
            free(buf);
            return wr_errorf(err, WR_E_INVALID, "", "path '%.200s': '*' is only allowed as a trailing '/**'", in);
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

/* Length of the directory a path names, without a trailing glob or the
 * root's lone "/": for "/a", "/a" + glob, "/" and the root glob: 2, 2, 0, 0. */
static size_t root_len(const char *p)
{
    size_t len = strlen(p);
    if (has_glob_suffix(p, len))
        len -= 3;
    if (len == 1 && p[0] == '/')
        len = 0;
    return len;
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
