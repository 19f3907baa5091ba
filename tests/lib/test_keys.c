/* Ed25519 keys: PEM files that the openssl CLI reads (and that we read back
 * from openssl), raw base64 forms, permission checks, sign/verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/lib.h"

/* A fixed "RNG" so key material is reproducible. */
static void counting_random(void *ud, void *buf, size_t len)
{
    unsigned char *b = buf, *next = ud;
    for (size_t i = 0; i < len; i++)
        b[i] = (*next)++;
}

typedef struct fx {
    char dir[64];
    unsigned char next;
    wr_ctx ctx;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wr-test-keys-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    umask(022);
    f->ctx = (wr_ctx){.now_ms = NULL, .random = counting_random, .ud = &f->next};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static char *path_in(const fx *f, const char *name)
{
    static char p[256]; /* test helper only */
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    return p;
}

static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_generate_write_load(void **state)
{
    fx *f = *state;
    wr_error err = {0};
    wr_keypair kp, back;
    assert_int_equal(wr_key_generate(&f->ctx, &kp, &err), WR_OK);
    char name[256];
    snprintf(name, sizeof name, "%s/server", f->dir);
    assert_int_equal(wr_key_write_pair(&kp, name, &err), WR_OK);
    struct stat st;
    assert_int_equal(stat(path_in(f, "server.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(path_in(f, "server.pub"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* openssl reads both, and derives the same public key from the private one */
    assert_int_equal(sh("openssl pkey -in '%s/server.key' -noout", f->dir), 0);
    assert_int_equal(sh("openssl pkey -pubin -in '%s/server.pub' -noout", f->dir), 0);
    assert_int_equal(sh("openssl pkey -in '%s/server.key' -pubout | cmp -s - '%s/server.pub'", f->dir, f->dir), 0);
    assert_int_equal(wr_key_load_secret(path_in(f, "server.key"), true, &back, &err), WR_OK);
    assert_memory_equal(&back, &kp, sizeof kp);
    assert_int_equal(strlen(kp.key_id), 16);
    unsigned char pk[WR_PK_LEN];
    assert_int_equal(wr_pubkey_load(path_in(f, "server.pub"), pk, &err), WR_OK);
    assert_memory_equal(pk, kp.pk, WR_PK_LEN);
    char hex[WR_SHA256_HEX_LEN], id[WR_KEY_ID_LEN];
    wr_sha256_hex(kp.pk, WR_PK_LEN, hex);
    wr_key_id(kp.pk, id);
    assert_memory_equal(id, hex, 16);
    /* never overwrites */
    assert_int_equal(wr_key_write_pair(&kp, name, &err), WR_E_CONFLICT);
    assert_int_equal(wr_key_write_secret(&kp, path_in(f, "server.key"), &err), WR_E_CONFLICT);
    wr_keypair_wipe(&kp);
    unsigned char zero[sizeof kp] = {0};
    assert_memory_equal(&kp, zero, sizeof kp);
}

static void test_reads_openssl_keys(void **state)
{
    fx *f = *state;
    wr_error err = {0};
    wr_keypair kp;
    assert_int_equal(sh("openssl genpkey -algorithm ed25519 -out '%s/o.key' 2>/dev/null && chmod 600 '%s/o.key'"
                        " && openssl pkey -in '%s/o.key' -pubout -out '%s/o.pub'",
                        f->dir, f->dir, f->dir, f->dir),
                     0);
    assert_int_equal(wr_key_load_secret(path_in(f, "o.key"), true, &kp, &err), WR_OK);
    unsigned char pk[WR_PK_LEN];
    assert_int_equal(wr_pubkey_load(path_in(f, "o.pub"), pk, &err), WR_OK);
    assert_memory_equal(pk, kp.pk, WR_PK_LEN);
    /* a signature made with openssl verifies with our code */
    write_text(path_in(f, "msg"), "receipt bytes", 0644);
    assert_int_equal(sh("openssl pkeyutl -sign -rawin -inkey '%s/o.key' -in '%s/msg' | base64 -w0 > '%s/sig'", f->dir,
                        f->dir, f->dir),
                     0);
    char sig[128] = "";
    FILE *fp = fopen(path_in(f, "sig"), "r");
    assert_non_null(fgets(sig, sizeof sig, fp));
    fclose(fp);
    assert_true(wr_verify_b64(pk, "receipt bytes", 13, sig));
    /* other key types are refused with a clear reason */
    assert_int_equal(
        sh("openssl genpkey -algorithm x25519 -out '%s/x.key' 2>/dev/null && chmod 600 '%s/x.key'", f->dir, f->dir), 0);
    assert_int_equal(wr_key_load_secret(path_in(f, "x.key"), true, &kp, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, "not an Ed25519 key"));
    assert_int_equal(sh("openssl pkey -in '%s/x.key' -pubout -out '%s/x.pub'", f->dir, f->dir), 0);
    assert_int_equal(wr_pubkey_load(path_in(f, "x.pub"), pk, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, "not an Ed25519 key"));
    /* an encrypted key is refused, never prompts */
    assert_int_equal(sh("openssl pkey -in '%s/o.key' -aes256 -passout pass:pw -out '%s/enc.key'"
                        " && chmod 600 '%s/enc.key'",
                        f->dir, f->dir, f->dir),
                     0);
    assert_int_equal(wr_key_load_secret(path_in(f, "enc.key"), true, &kp, &err), WR_E_CRYPTO);
}

static void test_raw_base64(void **state)
{
    fx *f = *state;
    wr_error err = {0};
    wr_keypair kp, back;
    assert_int_equal(wr_key_generate(&f->ctx, &kp, &err), WR_OK);
    /* 32-byte seed, with a trailing newline as `base64` leaves it */
    char *seed = wr_base64_encode(kp.sk, 32), *full = wr_base64_encode(kp.sk, 64);
    char text[160];
    snprintf(text, sizeof text, "%s\n", seed);
    write_text(path_in(f, "seed.b64"), text, 0600);
    assert_int_equal(wr_key_load_secret(path_in(f, "seed.b64"), true, &back, &err), WR_OK);
    assert_memory_equal(&back, &kp, sizeof kp);
    /* 64-byte libsodium secret key */
    write_text(path_in(f, "sk.b64"), full, 0600);
    assert_int_equal(wr_key_load_secret(path_in(f, "sk.b64"), true, &back, &err), WR_OK);
    assert_memory_equal(&back, &kp, sizeof kp);
    /* ... whose public half must match the seed */
    unsigned char spliced[64];
    memcpy(spliced, kp.sk, 64);
    spliced[40] ^= 1;
    char *bad = wr_base64_encode(spliced, 64);
    write_text(path_in(f, "bad.b64"), bad, 0600);
    assert_int_equal(wr_key_load_secret(path_in(f, "bad.b64"), true, &back, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, "does not match"));
    /* wrong lengths and garbage */
    write_text(path_in(f, "short.b64"), "AAAA", 0600);
    assert_int_equal(wr_key_load_secret(path_in(f, "short.b64"), true, &back, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, "not 3 bytes"));
    write_text(path_in(f, "junk"), "hello world!", 0600);
    assert_int_equal(wr_key_load_secret(path_in(f, "junk"), true, &back, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, path_in(f, "junk")));
    /* public keys: raw base64 and PEM give the same key */
    char *pkb = wr_base64_encode(kp.pk, 32), *pem = wr_pubkey_pem(kp.pk);
    unsigned char pk1[WR_PK_LEN], pk2[WR_PK_LEN];
    assert_int_equal(wr_pubkey_parse(pkb, pk1, &err), WR_OK);
    assert_int_equal(wr_pubkey_parse(pem, pk2, &err), WR_OK);
    assert_memory_equal(pk1, kp.pk, 32);
    assert_memory_equal(pk2, kp.pk, 32);
    assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
    assert_int_equal(wr_pubkey_parse(seed, pk1, &err), WR_OK); /* 32 bytes: indistinguishable, fine */
    assert_int_equal(wr_pubkey_parse(full, pk1, &err), WR_E_CRYPTO);
    assert_int_equal(wr_pubkey_parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", pk1, &err),
                     WR_E_CRYPTO);
    free(seed);
    free(full);
    free(bad);
    free(pkb);
    free(pem);
}

/* An Ed25519 SubjectPublicKeyInfo, DER, around key bytes 0x01..0x20 (RFC 8410). */
static int spki_pem(const unsigned char *der, size_t len, unsigned char pk[WR_PK_LEN], wr_error *err)
{
    char *b64 = wr_base64_encode(der, len);
    char pem[512];
    snprintf(pem, sizeof pem, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n", b64);
    free(b64);
    return wr_pubkey_parse(pem, pk, err);
}

/* The SPKI template accepts exactly RFC 8410's form: no algorithm
 * parameters, no unused bits, nothing after the structure. */
static void test_spki_strict(void **state)
{
    (void)state;
    static const unsigned char head[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
    static const unsigned char with_null[] = {0x30, 0x2c, 0x30, 0x07, 0x06, 0x03, 0x2b,
                                              0x65, 0x70, 0x05, 0x00, 0x03, 0x21, 0x00};
    unsigned char der[64], pk[WR_PK_LEN], want[WR_PK_LEN];
    for (size_t i = 0; i < WR_PK_LEN; i++)
        want[i] = (unsigned char)(i + 1);
    wr_error err = {0};
    memcpy(der, head, sizeof head);
    memcpy(der + sizeof head, want, WR_PK_LEN);
    assert_int_equal(spki_pem(der, sizeof head + WR_PK_LEN, pk, &err), WR_OK);
    assert_memory_equal(pk, want, WR_PK_LEN);
    der[sizeof head + WR_PK_LEN] = 0; /* a trailing byte */
    assert_int_equal(spki_pem(der, sizeof head + WR_PK_LEN + 1, pk, &err), WR_E_CRYPTO);
    der[sizeof head - 1] = 1; /* one unused bit */
    assert_int_equal(spki_pem(der, sizeof head + WR_PK_LEN, pk, &err), WR_E_CRYPTO);
    memcpy(der, with_null, sizeof with_null); /* parameters: NULL */
    memcpy(der + sizeof with_null, want, WR_PK_LEN);
    assert_int_equal(spki_pem(der, sizeof with_null + WR_PK_LEN, pk, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, "not an Ed25519 key"));
}

static void test_loose_permissions(void **state)
{
    fx *f = *state;
    wr_error err = {0};
    wr_keypair kp, back;
    assert_int_equal(wr_key_generate(&f->ctx, &kp, &err), WR_OK);
    assert_int_equal(wr_key_write_secret(&kp, path_in(f, "k.key"), &err), WR_OK);
    const mode_t loose[] = {0640, 0604, 0644, 0660, 0610};
    for (size_t i = 0; i < sizeof loose / sizeof *loose; i++) {
        assert_int_equal(chmod(path_in(f, "k.key"), loose[i]), 0);
        assert_int_equal(wr_key_load_secret(path_in(f, "k.key"), true, &back, &err), WR_E_DENIED);
        assert_non_null(strstr(err.message, "accessible by group or others"));
        assert_non_null(strstr(err.message, "chmod 600"));
        assert_string_equal(err.path, path_in(f, "k.key"));
        /* without the check (e.g. an approver's own key) it loads */
        assert_int_equal(wr_key_load_secret(path_in(f, "k.key"), false, &back, &err), WR_OK);
    }
    assert_int_equal(chmod(path_in(f, "k.key"), 0400), 0);
    assert_int_equal(wr_key_load_secret(path_in(f, "k.key"), true, &back, &err), WR_OK);
    assert_int_equal(wr_key_load_secret(path_in(f, "none.key"), true, &back, &err), WR_E_NOTFOUND);
    assert_int_equal(wr_key_load_secret(f->dir, true, &back, &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "not a regular file"));
}

static void test_sign_verify_tamper(void **state)
{
    fx *f = *state;
    wr_error err = {0};
    wr_keypair kp, other;
    assert_int_equal(wr_key_generate(&f->ctx, &kp, &err), WR_OK);
    assert_int_equal(wr_key_generate(&f->ctx, &other, &err), WR_OK);
    const char *msg = "{\"receipt\":1}";
    char *sig = wr_sign_b64(&kp, msg, strlen(msg));
    assert_non_null(sig);
    assert_int_equal(strlen(sig), 88); /* 64 bytes, padded base64 */
    assert_true(wr_verify_b64(kp.pk, msg, strlen(msg), sig));
    assert_false(wr_verify_b64(kp.pk, "{\"receipt\":2}", strlen(msg), sig));
    assert_false(wr_verify_b64(other.pk, msg, strlen(msg), sig));
    char bad[128];
    snprintf(bad, sizeof bad, "%s", sig);
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    assert_false(wr_verify_b64(kp.pk, msg, strlen(msg), bad));
    assert_false(wr_verify_b64(kp.pk, msg, strlen(msg), "AAAA"));
    assert_false(wr_verify_b64(kp.pk, msg, strlen(msg), "not base64 at all"));
    assert_false(wr_verify_b64(kp.pk, msg, strlen(msg), NULL));
    snprintf(bad, sizeof bad, "%sAAAA", sig);
    assert_false(wr_verify_b64(kp.pk, msg, strlen(msg), bad));
    free(sig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_write_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_openssl_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_base64, setup, teardown),
        cmocka_unit_test(test_spki_strict),
        cmocka_unit_test_setup_teardown(test_loose_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_verify_tamper, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
