/* A verified record of the policies whose `examples` passed, so that a CLI
 * start does not run them again on a policy file it already checked.
 *
 * One file per policy in the cache dir, named by the policy's sha256 (its
 * canonical JSON) and holding an HMAC (libsodium's crypto_auth) over that
 * sha256 and the running binary's GNU build id, keyed by the caller (the
 * gate derives the key from the state dir's signing key). A record is
 * trusted only when the file is a regular file of this user, not readable
 * or writable by others, and its MAC verifies: an edited policy has another
 * sha256, another build of warrant another build id, and a record copied,
 * forged or altered does not verify. Anything else means "not cached": the
 * examples run, and a pass writes a fresh record. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policies/policies_internal.h"

#define BUILD_ID_MAX   64 /* bytes of a GNU build id we accept (SHA-1 ids are 20) */
#define NOTE_ALIGN     4
#define RECORD_DOMAIN  "warrant policy examples passed v1"
#define RECORD_HEX_LEN (crypto_auth_BYTES * 2)

_Static_assert(WR_EXAMPLES_CACHE_KEY_LEN == crypto_auth_KEYBYTES, "the cache key is a crypto_auth key");

typedef struct build_id {
    unsigned char id[BUILD_ID_MAX];
    size_t len;
} build_id;

/* The main program's NT_GNU_BUILD_ID note (the first object listed). */
static int find_build_id(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    build_id *b = ud;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
            size_t name = (n->n_namesz + NOTE_ALIGN - 1) & ~(size_t)(NOTE_ALIGN - 1);
            size_t desc = (n->n_descsz + NOTE_ALIGN - 1) & ~(size_t)(NOTE_ALIGN - 1);
            const unsigned char *d = p + sizeof *n + name;
            if (d + desc > end)
                break;
            if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == sizeof "GNU" &&
                !memcmp(p + sizeof *n, "GNU", sizeof "GNU") && n->n_descsz <= BUILD_ID_MAX) {
                memcpy(b->id, d, n->n_descsz);
                b->len = n->n_descsz;
                return 1;
            }
            p = d + desc;
        }
    }
    return 1; /* only the main program counts */
}

/* The record's MAC, or false when this binary has no build id (then
 * nothing is cached: the examples run at every load). */
static bool record_mac(const wr_examples_cache *c, const char *sha256, unsigned char mac[crypto_auth_BYTES])
{
    build_id b = {.len = 0};
    dl_iterate_phdr(find_build_id, &b);
    if (!b.len)
        return false;
    char hex[BUILD_ID_MAX * 2 + 1], msg[sizeof RECORD_DOMAIN + WR_SHA256_HEX_LEN + sizeof hex + 4];
    sodium_bin2hex(hex, sizeof hex, b.id, b.len);
    int n = snprintf(msg, sizeof msg, "%s\n%s\n%s\n", RECORD_DOMAIN, sha256, hex);
    crypto_auth(mac, (const unsigned char *)msg, (size_t)n, c->key);
    return true;
}

static bool record_path(const wr_examples_cache *c, const char *sha256, char *path, size_t len)
{
    return (size_t)snprintf(path, len, "%s/%s", c->dir, sha256) < len;
}

bool wr__examples_cached(const wr_examples_cache *c, const char *sha256)
{
    char path[PATH_MAX], text[RECORD_HEX_LEN + 2];
    unsigned char want[crypto_auth_BYTES], have[crypto_auth_BYTES];
    if (!c || !record_path(c, sha256, path, sizeof path) || !record_mac(c, sha256, want))
        return false;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 077))
        n = read(fd, text, sizeof text);
    close(fd);
    size_t bin = 0;
    return n == RECORD_HEX_LEN + 1 && text[RECORD_HEX_LEN] == '\n' &&
           sodium_hex2bin(have, sizeof have, text, RECORD_HEX_LEN, NULL, &bin, NULL) == 0 && bin == sizeof have &&
           sodium_memcmp(have, want, sizeof have) == 0;
}

void wr__examples_cache_put(const wr_examples_cache *c, const char *sha256)
{
    char path[PATH_MAX], text[RECORD_HEX_LEN + 2];
    unsigned char mac[crypto_auth_BYTES];
    if (!c || !record_path(c, sha256, path, sizeof path) || !record_mac(c, sha256, mac))
        return;
    if (mkdir(c->dir, 0700) != 0 && errno != EEXIST)
        return;
    sodium_bin2hex(text, sizeof text, mac, sizeof mac);
    text[RECORD_HEX_LEN] = '\n';
    /* A cache: a record that cannot be written is only a later re-run. */
    wr_write_file_atomic(path, text, RECORD_HEX_LEN + 1, 0600, NULL);
}
