/* Ed25519 keys. Signing and verifying use libsodium; key files are PEM
 * (PKCS#8 private, SubjectPublicKeyInfo public) read and written by OpenSSL's
 * libcrypto so that `openssl pkey` and other CSC tools read them, without
 * hand-written ASN.1. */
#include "lib/lib.h"
#include "lib/lib_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX 16384
#define SEED_LEN     32
/* ASN1_STRING flags of a decoded BIT STRING: its count of unused bits. */
#define BIT_STRING_UNUSED_BITS 0x07

void wr_key_id(const unsigned char pk[WR_PK_LEN], char out[WR_KEY_ID_LEN])
{
    char hex[WR_SHA256_HEX_LEN];
    wr_sha256_hex(pk, WR_PK_LEN, hex);
    memcpy(out, hex, WR_KEY_ID_LEN - 1);
    out[WR_KEY_ID_LEN - 1] = '\0';
}

static int keypair_from_seed(const unsigned char seed[SEED_LEN], wr_keypair *kp, wr_error *err)
{
    if (sodium_init() < 0)
        return wr_errorf(err, WR_E_CRYPTO, "", "libsodium cannot initialise");
    crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
    wr_key_id(kp->pk, kp->key_id);
    return WR_OK;
}

int wr_key_generate(const wr_ctx *ctx, wr_keypair *kp, wr_error *err)
{
    unsigned char seed[SEED_LEN];
    wr_random(ctx, seed, sizeof seed);
    int rc = keypair_from_seed(seed, kp, err);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

void wr_keypair_wipe(wr_keypair *kp)
{
    sodium_memzero(kp, sizeof *kp);
}

/* The first queued libcrypto error, as text (and the queue emptied, since it
 * is per thread and would otherwise leak into a later, unrelated report). */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "no details");
    ERR_clear_error();
    return buf;
}

/* PEM text via a memory BIO: PKCS#8 of kp when given, else SPKI of pk. */
static char *pem_of(const wr_keypair *kp, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    EVP_PKEY *pkey = kp ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, kp->sk, SEED_LEN)
                        : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, WR_PK_LEN);
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL, why[256];
    int ok = pkey && bio &&
             (kp ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_PUBKEY(bio, pkey));
    if (ok) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        out = malloc((size_t)n + 1);
        if (out) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
        }
    }
    if (!out)
        wr_errorf(err, WR_E_CRYPTO, "", "cannot encode the key as PEM: %s", ossl_reason(why, sizeof why));
    /* The BIO held the private key's PEM text: clear it before freeing. */
    if (bio) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0)
            OPENSSL_cleanse(data, (size_t)n);
    }
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return out;
}

char *wr_pubkey_pem(const unsigned char pk[WR_PK_LEN])
{
    return pem_of(NULL, pk, NULL);
}

/* Creates path exclusively with its final mode from the first moment (a key
 * file must never exist, even briefly, with looser permissions) and writes
 * text to it durably. */
static int write_new_file(const char *path, const char *text, mode_t mode, wr_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return wr_errorf(err, errno == EEXIST ? WR_E_CONFLICT : WR_E_IO, path, "cannot create %s: %s", path,
                         strerror(errno));
    size_t left = strlen(text);
    int e = 0;
    while (left > 0 && !e) {
        ssize_t w = write(fd, text, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            e = errno;
        else
            text += w, left -= (size_t)w;
    }
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (e) {
        unlink(path);
        return wr_errorf(err, WR_E_IO, path, "cannot write %s: %s", path, strerror(e));
    }
    return WR_OK;
}

int wr_key_write_secret(const wr_keypair *kp, const char *path, wr_error *err)
{
    char *pem = pem_of(kp, NULL, err);
    if (!pem)
        return err ? err->code : WR_E_CRYPTO;
    int rc = write_new_file(path, pem, 0600, err);
    sodium_memzero(pem, strlen(pem));
    free(pem);
    return rc;
}

int wr_key_write_pair(const wr_keypair *kp, const char *name, wr_error *err)
{
    size_t n = strlen(name) + sizeof ".key";
    char *keypath = malloc(n), *pubpath = malloc(n);
    char *pub = wr_pubkey_pem(kp->pk);
    int rc = WR_OK;
    if (!keypath || !pubpath || !pub) {
        rc = wr_errorf(err, WR_E_NOMEM, name, "out of memory");
        goto out;
    }
    snprintf(keypath, n, "%s.key", name);
    snprintf(pubpath, n, "%s.pub", name);
    if (access(pubpath, F_OK) == 0) {
        rc = wr_errorf(err, WR_E_CONFLICT, pubpath, "%s already exists", pubpath);
        goto out;
    }
    rc = wr_key_write_secret(kp, keypath, err);
    if (rc != WR_OK)
        goto out;
    rc = write_new_file(pubpath, pub, 0644, err);
    if (rc != WR_OK)
        unlink(keypath); /* no half-written pair */
out:
    free(keypath);
    free(pubpath);
    free(pub);
    return rc;
}

/* OpenSSL would prompt on the terminal for an encrypted PEM without this. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Raw base64 text with surrounding whitespace (as `cat key | base64` leaves). */
static int decode_trimmed_b64(const char *text, unsigned char *out, size_t max, size_t *n, wr_error *err)
{
    while (isspace((unsigned char)*text))
        text++;
    size_t len = strlen(text);
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        len--;
    char *copy = strndup(text, len);
    if (!copy)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    int rc = wr_base64_decode(copy, out, max, n, err);
    sodium_memzero(copy, len);
    free(copy);
    return rc;
}

static int parse_secret(const char *text, wr_keypair *kp, wr_error *err)
{
    unsigned char raw[WR_SK_LEN];
    size_t n = 0;
    char why[256];
    int rc;
    if (strstr(text, "-----BEGIN")) {
        /* PKCS#8 through libcrypto's ASN.1 templates, not PEM_read_bio_PrivateKey:
         * its decoder framework tries every provider's decoders and costs
         * ~11 M instructions, most of a `warrant run`'s start-up. */
        BIO *bio = BIO_new_mem_buf(text, -1);
        PKCS8_PRIV_KEY_INFO *p8 = bio ? PEM_read_bio_PKCS8_PRIV_KEY_INFO(bio, NULL, no_passphrase, NULL) : NULL;
        BIO_free(bio);
        const ASN1_OBJECT *alg = NULL;
        const unsigned char *inner = NULL;
        int inner_len = 0;
        ASN1_OCTET_STRING *seed = NULL;
        n = SEED_LEN;
        if (!p8 || !PKCS8_pkey_get0(&alg, &inner, &inner_len, NULL, p8))
            rc = wr_errorf(err, WR_E_CRYPTO, "", "not a readable unencrypted PEM private key: %s",
                           ossl_reason(why, sizeof why));
        else if (OBJ_obj2nid(alg) != NID_ED25519)
            rc = wr_errorf(err, WR_E_CRYPTO, "", "the PEM private key is not an Ed25519 key");
        /* RFC 8410: the private key is an OCTET STRING holding the 32-byte seed. */
        else if (!(seed = d2i_ASN1_OCTET_STRING(NULL, &inner, inner_len)) || ASN1_STRING_length(seed) != SEED_LEN)
            rc = wr_errorf(err, WR_E_CRYPTO, "", "cannot extract the Ed25519 private key: %s",
                           ossl_reason(why, sizeof why));
        else {
            memcpy(raw, ASN1_STRING_get0_data(seed), SEED_LEN);
            rc = WR_OK;
        }
        ASN1_OCTET_STRING_free(seed); /* libcrypto cleanses key material on free */
        PKCS8_PRIV_KEY_INFO_free(p8);
    } else {
        rc = decode_trimmed_b64(text, raw, sizeof raw, &n, err);
        if (rc == WR_OK && n != SEED_LEN && n != WR_SK_LEN)
            rc = wr_errorf(err, WR_E_CRYPTO, "",
                           "a raw Ed25519 private key is a 32-byte seed or a 64-byte secret key, "
                           "not %zu bytes",
                           n);
        if (rc != WR_OK && rc != WR_E_CRYPTO)
            rc = wr_errorf(err, WR_E_CRYPTO, "", "neither PEM nor base64 Ed25519 private key");
    }
    if (rc == WR_OK)
        rc = keypair_from_seed(raw, kp, err);
    /* libsodium's 64-byte form repeats the public key: it must be the one
     * the seed derives, or the file is corrupt or spliced together. */
    if (rc == WR_OK && n == WR_SK_LEN && sodium_memcmp(raw + SEED_LEN, kp->pk, WR_PK_LEN) != 0) {
        wr_keypair_wipe(kp);
        rc = wr_errorf(err, WR_E_CRYPTO, "", "the 64-byte secret key's public half does not match its seed");
    }
    sodium_memzero(raw, sizeof raw);
    return rc;
}

int wr_key_load_secret(const char *path, bool refuse_loose_perms, wr_keypair *kp, wr_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return wr_errorf(err, errno == ENOENT ? WR_E_NOTFOUND : WR_E_IO, path, "cannot open key file %s: %s", path,
                         strerror(errno));
    struct stat st;
    /* Checked on the opened file itself, so a swap after the check is moot. */
    if (refuse_loose_perms && fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
        close(fd);
        return wr_errorf(err, WR_E_DENIED, path,
                         "key file %s is accessible by group or others (mode %04o); "
                         "run chmod 600 on it",
                         path, (unsigned)(st.st_mode & 07777));
    }
    char *text;
    size_t len;
    int rc = wr_read_fd(fd, path, KEY_FILE_MAX, &text, &len, err);
    close(fd);
    if (rc != WR_OK)
        return rc;
    if (strlen(text) != len)
        rc = wr_errorf(err, WR_E_CRYPTO, path, "key file %s contains a NUL byte", path);
    else
        rc = parse_secret(text, kp, err);
    sodium_memzero(text, len);
    free(text);
    if (rc != WR_OK && err) {
        snprintf(err->path, sizeof err->path, "%s", path);
        wr_error_prefix(err, "%s", path);
    }
    return rc;
}

/* SubjectPublicKeyInfo (RFC 5280) as a plain ASN.1 template: X509_PUBKEY's
 * d2i also builds an EVP_PKEY through the providers' decoders (~2 M
 * instructions at every CLI start, since the state dir's .pub is read),
 * where only the algorithm and the key's bits are wanted. */
typedef struct {
    X509_ALGOR *algor;
    ASN1_BIT_STRING *key;
} spki;
ASN1_SEQUENCE(spki) =
    {
        ASN1_SIMPLE(spki, algor, X509_ALGOR),
        ASN1_SIMPLE(spki, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(spki)

        static int parse_spki_pem(const char *text, unsigned char pk[WR_PK_LEN], wr_error *err)
{
    char why[256];
    unsigned char *der = NULL;
    long len = 0;
    BIO *bio = BIO_new_mem_buf(text, -1);
    int ok = bio && PEM_bytes_read_bio(&der, &len, NULL, PEM_STRING_PUBLIC, bio, no_passphrase, NULL);
    BIO_free(bio);
    const unsigned char *p = der;
    spki *k = ok ? (spki *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(spki)) : NULL;
    const ASN1_OBJECT *alg = NULL;
    int ptype = 0, rc = WR_OK;
    if (k)
        X509_ALGOR_get0(&alg, &ptype, NULL, k->algor);
    if (!k || p != der + len)
        rc = wr_errorf(err, WR_E_CRYPTO, "", "not a PEM public key: %s", ossl_reason(why, sizeof why));
    /* RFC 8410: the algorithm identifier of an Ed25519 key has no parameters. */
    else if (OBJ_obj2nid(alg) != NID_ED25519 || ptype != V_ASN1_UNDEF)
        rc = wr_errorf(err, WR_E_CRYPTO, "", "the PEM public key is not an Ed25519 key");
    else if (ASN1_STRING_length(k->key) != WR_PK_LEN || (k->key->flags & BIT_STRING_UNUSED_BITS))
        rc = wr_errorf(err, WR_E_CRYPTO, "", "an Ed25519 public key is 32 bytes, not %d", ASN1_STRING_length(k->key));
    else
        memcpy(pk, ASN1_STRING_get0_data(k->key), WR_PK_LEN);
    ASN1_item_free((ASN1_VALUE *)k, ASN1_ITEM_rptr(spki));
    OPENSSL_free(der);
    return rc;
}

int wr_pubkey_parse(const char *text, unsigned char pk[WR_PK_LEN], wr_error *err)
{
    if (strstr(text, "-----BEGIN"))
        return parse_spki_pem(text, pk, err);
    unsigned char raw[WR_PK_LEN + 1];
    size_t n = 0;
    if (decode_trimmed_b64(text, raw, sizeof raw, &n, err) != WR_OK || n != WR_PK_LEN)
        return wr_errorf(err, WR_E_CRYPTO, "", "an Ed25519 public key is PEM or the base64 of 32 bytes");
    memcpy(pk, raw, WR_PK_LEN);
    return WR_OK;
}

int wr_pubkey_load(const char *path, unsigned char pk[WR_PK_LEN], wr_error *err)
{
    char *text;
    size_t len;
    int rc = wr_read_file(path, KEY_FILE_MAX, &text, &len, err);
    if (rc != WR_OK)
        return rc;
    /* CSC's tools keep a public key as its 32 raw bytes; no text form of a
     * key (PEM, base64) is that short. */
    if (len == WR_PK_LEN) {
        memcpy(pk, text, WR_PK_LEN);
        free(text);
        return WR_OK;
    }
    if (strlen(text) != len)
        rc = wr_errorf(err, WR_E_CRYPTO, path, "key file %s contains a NUL byte", path);
    else
        rc = wr_pubkey_parse(text, pk, err);
    free(text);
    if (rc != WR_OK && err) {
        snprintf(err->path, sizeof err->path, "%s", path);
        wr_error_prefix(err, "%s", path);
    }
    return rc;
}

char *wr_sign_b64(const wr_keypair *kp, const void *msg, size_t len)
{
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, msg, len, kp->sk);
    return wr_base64_encode(sig, sizeof sig);
}

bool wr_verify_b64(const unsigned char pk[WR_PK_LEN], const void *msg, size_t len, const char *sig_b64)
{
    unsigned char sig[crypto_sign_BYTES + 1];
    size_t n = 0;
    if (!sig_b64 || wr_base64_decode(sig_b64, sig, sizeof sig, &n, NULL) != WR_OK || n != crypto_sign_BYTES)
        return false;
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}
