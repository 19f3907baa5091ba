/* receipts — the state dir's receipt-signing key. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "receipts/receipts_internal.h"

#define KEY_BASENAME "receipt-signing"

static int key_paths(const char *state_dir, char key[PATH_MAX], char pub[PATH_MAX], wr_error *err)
{
    if (!state_dir || !*state_dir)
        return wr_errorf(err, WR_E_INVALID, "", "no state dir given");
    if (snprintf(key, PATH_MAX, "%s/" KEY_BASENAME ".key", state_dir) >= PATH_MAX ||
        snprintf(pub, PATH_MAX, "%s/" KEY_BASENAME ".pub", state_dir) >= PATH_MAX)
        return wr_errorf(err, WR_E_INVALID, state_dir, "state dir path is too long");
    return WR_OK;
}

/* The .pub file is derived data: rewritten whenever it is missing or does
 * not match the key (e.g. a crash between writing the key and the .pub). */
static int ensure_pub(const char *pub, const wr_keypair *kp, wr_error *err)
{
    unsigned char have[WR_PK_LEN];
    if (wr_pubkey_load(pub, have, NULL) == WR_OK && memcmp(have, kp->pk, WR_PK_LEN) == 0)
        return WR_OK;
    char *pem = wr_pubkey_pem(kp->pk);
    if (!pem)
        return wr_errorf(err, WR_E_NOMEM, pub, "cannot encode the public key");
    int rc = wr_write_file_atomic(pub, pem, strlen(pem), 0644, err);
    free(pem);
    return rc;
}

/* A new key is written under a private temporary name and then link()ed
 * into place: link fails if another process got there first, so two
 * servers starting on a fresh state dir agree on one key and nobody ever
 * reads a half-written key file. */
static int create_key(const char *key, const wr_ctx *ctx, wr_error *err)
{
    wr_keypair kp;
    int rc = wr_key_generate(ctx, &kp, err);
    if (rc)
        return rc;
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", key, (long)getpid());
    unlink(tmp); /* left over by a process with our pid that was killed */
    rc = wr_key_write_secret(&kp, tmp, err);
    wr_keypair_wipe(&kp);
    if (rc)
        return rc;
    if (link(tmp, key) != 0 && errno != EEXIST)
        rc = wr_errorf(err, WR_E_IO, key, "cannot create the signing key %s: %s", key, strerror(errno));
    unlink(tmp);
    return rc;
}

int wr_server_key_load_or_create(const char *state_dir, const wr_ctx *ctx, wr_keypair *kp, wr_error *err)
{
    char key[PATH_MAX], pub[PATH_MAX];
    int rc = key_paths(state_dir, key, pub, err);
    if (rc)
        return rc;
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
        return wr_errorf(err, WR_E_IO, state_dir, "cannot create state dir %s: %s", state_dir, strerror(errno));
    struct stat st;
    if (lstat(key, &st) != 0) {
        if (errno != ENOENT)
            return wr_errorf(err, WR_E_IO, key, "cannot stat the signing key %s: %s", key, strerror(errno));
        if ((rc = create_key(key, ctx, err)) != WR_OK)
            return rc;
    }
    /* Refuses a group/world readable key: it may already have leaked. */
    rc = wr_key_load_secret(key, true, kp, err);
    if (rc == WR_OK)
        rc = ensure_pub(pub, kp, err);
    if (rc)
        wr_keypair_wipe(kp);
    return rc;
}

int wr_server_key_load(const char *state_dir, wr_keypair *kp, wr_error *err)
{
    char key[PATH_MAX], pub[PATH_MAX];
    int rc = key_paths(state_dir, key, pub, err);
    return rc ? rc : wr_key_load_secret(key, true, kp, err);
}

int wr_server_pubkey_load(const char *state_dir, unsigned char pk[WR_PK_LEN], wr_error *err)
{
    char key[PATH_MAX], pub[PATH_MAX];
    int rc = key_paths(state_dir, key, pub, err);
    if (rc)
        return rc;
    if (access(pub, F_OK) == 0)
        return wr_pubkey_load(pub, pk, err);
    /* No .pub (yet): derive it from the key if we may read it. */
    wr_keypair kp;
    rc = wr_key_load_secret(key, true, &kp, err);
    if (rc == WR_E_NOTFOUND)
        return wr_errorf(err, WR_E_NOTFOUND, state_dir, "%s has no receipt-signing key (no %s)", state_dir, pub);
    if (rc == WR_OK)
        memcpy(pk, kp.pk, WR_PK_LEN);
    wr_keypair_wipe(&kp);
    return rc;
}
