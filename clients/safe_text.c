/* Hostile text on a person's terminal: the one rule for everything the CLI
 * shows that an agent or a command wrote (approval requests, `warrant run`
 * output). Characters that change how the rest of a line renders or what
 * the terminal does (C0/C1 controls and so escape sequences: OSC 52
 * clipboard writes, titles, cursor moves; DEL; bidi embeddings, overrides
 * and isolates; zero-width characters and BOM) are written as \uXXXX, and
 * invalid UTF-8 bytes as \xNN. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clients/cli.h"

static bool deceptive(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x200b && cp <= 0x200f) ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff || cp == 0x061c;
}

/* The length of the UTF-8 sequence s[0] starts (1..4), 0 if no lead byte. */
static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c >= 0xf8 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
}

size_t cli_put_safe(FILE *f, const unsigned char *s, size_t len, const char *keep, bool final)
{
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_len(s[i]);
        if (n > len - i && !final) {
            /* a sequence cut at the end of this chunk: the caller passes it
             * again with the next one */
            bool prefix = true;
            for (size_t k = 1; k < len - i; k++)
                prefix = prefix && (s[i + k] & 0xc0) == 0x80;
            if (prefix)
                return i;
        }
        if (!n || n > len - i || !wr_utf8_valid((const char *)s + i, n)) {
            fprintf(f, "\\x%02x", s[i++]);
            continue;
        }
        uint32_t cp = n == 1 ? s[i] : s[i] & (0x7fu >> n);
        for (size_t k = 1; k < n; k++)
            cp = (cp << 6) | (s[i + k] & 0x3f);
        if (deceptive(cp) && !(cp < 0x80 && cp && strchr(keep, (int)cp)))
            fprintf(f, "\\u%04" PRIx32, cp);
        else
            fwrite(s + i, 1, n, f);
        i += n;
    }
    return len;
}
