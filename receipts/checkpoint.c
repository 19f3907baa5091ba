/* receipts — checkpoints: the receipt log's signed tree head as a C2SP
 * tlog-checkpoint (origin, tree size, base64 root) in a C2SP signed-note,
 * signed by the server key (signature type 0x01, Ed25519 over the note
 * text); witnesses add C2SP tlog-cosignature "cosignature/v1" lines
 * (type 0x04: Ed25519 over "cosignature/v1\ntime T\n" || note text, the
 * signature prefixed by T as a big-endian u64). Key names are derived from
 * the public keys, so a verifier given only the keys knows what to expect:
 * "warrant/<key id>" for the log (also its origin line) and
 * "warrant-witness/<key id>" for a witness. Proofs travel as small JSON
 * files (docs/transparency-log.md). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "receipts/receipts_internal.h"

#define SIG_TYPE_ED25519  0x01
#define SIG_TYPE_COSIG_V1 0x04
#define KEY_HASH_LEN      4
#define COSIG_TIME_LEN    8
#define SIG_PREFIX        "\xe2\x80\x94 " /* em dash U+2014, space */
#define LOG_NAME_PREFIX   "warrant/"
#define WITNESS_PREFIX    "warrant-witness/"
#define COSIG_HEADER      "cosignature/v1\n"
#define NAME_MAX_LEN      64
#define MAX_SIG_B64       160 /* base64 of key hash + timestamp + signature, with margin */

static void key_name(const char *prefix, const unsigned char pk[WR_PK_LEN], char out[NAME_MAX_LEN])
{
    char id[WR_KEY_ID_LEN];
    wr_key_id(pk, id);
    snprintf(out, NAME_MAX_LEN, "%s%s", prefix, id);
}

void wr_checkpoint_origin(const unsigned char pk[WR_PK_LEN], char out[WR_ORIGIN_LEN])
{
    key_name(LOG_NAME_PREFIX, pk, out);
}

/* signed-note's recommended key ID: SHA-256(name || 0x0A || type || pk)[:4]. */
static void key_hash(const char *name, unsigned char type, const unsigned char pk[WR_PK_LEN],
                     unsigned char out[KEY_HASH_LEN])
{
    crypto_hash_sha256_state s;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&s);
    crypto_hash_sha256_update(&s, (const unsigned char *)name, strlen(name));
    crypto_hash_sha256_update(&s, (const unsigned char *)"\n", 1);
    crypto_hash_sha256_update(&s, &type, 1);
    crypto_hash_sha256_update(&s, pk, WR_PK_LEN);
    crypto_hash_sha256_final(&s, h);
    memcpy(out, h, KEY_HASH_LEN);
}

/* "— name base64(blob)\n" appended to *note (realloc'd). */
static int add_signature_line(char **note, const char *name, const unsigned char *blob, size_t len, wr_error *err)
{
    char *b64 = wr_base64_encode(blob, len);
    size_t have = strlen(*note), need = have + strlen(SIG_PREFIX) + strlen(name) + 1 + (b64 ? strlen(b64) : 0) + 2;
    char *p = b64 ? realloc(*note, need) : NULL;
    if (!p) {
        free(b64);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    snprintf(p + have, need - have, SIG_PREFIX "%s %s\n", name, b64);
    free(b64);
    *note = p;
    return WR_OK;
}

int wr_checkpoint_sign(const wr_keypair *kp, const wr_tree_head *head, char **note_out, wr_error *err)
{
    char origin[WR_ORIGIN_LEN];
    wr_checkpoint_origin(kp->pk, origin);
    char *root = wr_base64_encode(head->root, WR_MERKLE_HASH_LEN);
    size_t cap = strlen(origin) + (root ? strlen(root) : 0) + 32;
    char *text = root ? malloc(cap) : NULL;
    if (!text) {
        free(root);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    int len = snprintf(text, cap, "%s\n%lld\n%s\n", origin, (long long)head->size, root);
    free(root);
    unsigned char blob[KEY_HASH_LEN + crypto_sign_BYTES];
    key_hash(origin, SIG_TYPE_ED25519, kp->pk, blob);
    crypto_sign_detached(blob + KEY_HASH_LEN, NULL, (const unsigned char *)text, (size_t)len, kp->sk);
    /* The blank line between text and signatures. */
    char *note = realloc(text, (size_t)len + 2);
    if (!note) {
        free(text);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    memcpy(note + len, "\n", 2);
    int rc = add_signature_line(&note, origin, blob, sizeof blob, err);
    if (rc) {
        free(note);
        return rc;
    }
    *note_out = note;
    return WR_OK;
}

/* ---- parsing and verifying ------------------------------------------------ */

typedef struct note {
    const char *text; /* points into the note; text_len includes its final newline */
    size_t text_len;
    const char *sigs; /* the signature lines */
} note;

static int bad_note(wr_error *err, const char *why)
{
    return wr_errorf(err, WR_E_INVALID, "", "not a checkpoint: %s", why);
}

/* signed-note: UTF-8, no control characters but newline, text and
 * signatures separated by the last blank line. */
static int split_note(const char *s, note *n, wr_error *err)
{
    size_t len = strlen(s);
    if (len > WR_CHECKPOINT_MAX)
        return bad_note(err, "longer than the limit");
    if (!wr_utf8_valid(s, len))
        return bad_note(err, "not valid UTF-8");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n')
            return bad_note(err, "a control character");
    if (len == 0 || s[len - 1] != '\n')
        return bad_note(err, "does not end in a newline");
    const char *blank = NULL;
    for (const char *p = s; (p = strstr(p, "\n\n")); p++)
        blank = p;
    if (!blank)
        return bad_note(err, "no blank line before the signatures");
    n->text = s;
    n->text_len = (size_t)(blank - s) + 1;
    n->sigs = blank + 2;
    return WR_OK;
}

/* tlog-checkpoint body: origin, size (decimal, no leading zero), root;
 * extension lines are allowed and carried along but mean nothing here. */
static int parse_body(const note *n, wr_checkpoint *cp, wr_error *err)
{
    const char *p = n->text, *end = n->text + n->text_len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || nl == p || (size_t)(nl - p) >= sizeof cp->origin)
        return bad_note(err, "missing or overlong origin line");
    memcpy(cp->origin, p, (size_t)(nl - p));
    cp->origin[nl - p] = 0;
    p = nl + 1;
    nl = memchr(p, '\n', (size_t)(end - p));
    size_t digits = nl ? strspn(p, "0123456789") : 0;
    if (!nl || digits != (size_t)(nl - p) || digits == 0 || digits > 18 || (digits > 1 && *p == '0'))
        return bad_note(err, "the tree size is not a decimal number without leading zeros");
    cp->size = strtoll(p, NULL, 10);
    p = nl + 1;
    nl = memchr(p, '\n', (size_t)(end - p));
    char b64[64];
    size_t got = 0;
    if (!nl || (size_t)(nl - p) >= sizeof b64)
        return bad_note(err, "missing root hash line");
    memcpy(b64, p, (size_t)(nl - p));
    b64[nl - p] = 0;
    wr_error e = {0};
    if (wr_base64_decode(b64, cp->root, WR_MERKLE_HASH_LEN, &got, &e) != WR_OK || got != WR_MERKLE_HASH_LEN)
        return bad_note(err, "the root hash is not 32 bytes of base64");
    return WR_OK;
}

typedef struct sigline {
    char name[NAME_MAX_LEN];
    unsigned char blob[KEY_HASH_LEN + COSIG_TIME_LEN + crypto_sign_BYTES];
    size_t len;
} sigline;

/* Next "— name base64\n" line; false at the end. Lines that are not of
 * this form make the note invalid; unknown keys are skipped by callers. */
static int next_sig(const char **p, sigline *s, bool *got, wr_error *err)
{
    *got = false;
    if (!**p)
        return WR_OK;
    size_t plen = strlen(SIG_PREFIX);
    const char *nl = strchr(*p, '\n');
    if (strncmp(*p, SIG_PREFIX, plen) != 0 || !nl)
        return bad_note(err, "a signature line does not start with an em dash and a space");
    const char *name = *p + plen, *sp = memchr(name, ' ', (size_t)(nl - name));
    if (!sp || sp == name || memchr(name, '+', (size_t)(sp - name)))
        return bad_note(err, "a signature line has no valid key name");
    char b64[MAX_SIG_B64];
    size_t nlen = (size_t)(sp - name), blen = (size_t)(nl - sp - 1);
    *p = nl + 1;
    /* Names and signatures longer than ours are somebody else's keys. */
    if (nlen >= sizeof s->name || blen >= sizeof b64) {
        s->name[0] = 0;
        s->len = 0;
        *got = true;
        return WR_OK;
    }
    memcpy(s->name, name, nlen);
    s->name[nlen] = 0;
    memcpy(b64, sp + 1, blen);
    b64[blen] = 0;
    wr_error e = {0};
    if (wr_base64_decode(b64, s->blob, sizeof s->blob, &s->len, &e) != WR_OK)
        s->len = 0; /* not ours either */
    *got = true;
    return WR_OK;
}

/* The message a cosignature/v1 signs: header, time line, note text. */
static unsigned char *cosig_message(const note *n, uint64_t t, size_t *len)
{
    char head[64];
    int hlen = snprintf(head, sizeof head, COSIG_HEADER "time %llu\n", (unsigned long long)t);
    unsigned char *m = malloc((size_t)hlen + n->text_len);
    if (m) {
        memcpy(m, head, (size_t)hlen);
        memcpy(m + hlen, n->text, n->text_len);
        *len = (size_t)hlen + n->text_len;
    }
    return m;
}

static uint64_t be64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < COSIG_TIME_LEN; i++)
        v = v << 8 | b[i];
    return v;
}

/* Verifies the line if it is the key's (name and key hash); *matched
 * tells whether it was. A failing signature by a known key rejects. */
static int check_sig(const note *n, const sigline *s, const char *name, unsigned char type,
                     const unsigned char pk[WR_PK_LEN], bool *matched, uint64_t *time_out, wr_error *err)
{
    unsigned char want[KEY_HASH_LEN];
    key_hash(name, type, pk, want);
    size_t expect = KEY_HASH_LEN + (type == SIG_TYPE_COSIG_V1 ? COSIG_TIME_LEN : 0) + crypto_sign_BYTES;
    *matched = strcmp(s->name, name) == 0 && s->len >= KEY_HASH_LEN && memcmp(s->blob, want, KEY_HASH_LEN) == 0;
    if (!*matched)
        return WR_OK;
    if (s->len != expect)
        return wr_errorf(err, WR_E_CRYPTO, "", "the signature by %s has the wrong length", name);
    const unsigned char *sig = s->blob + expect - crypto_sign_BYTES;
    bool ok;
    if (type == SIG_TYPE_COSIG_V1) {
        uint64_t t = be64(s->blob + KEY_HASH_LEN);
        size_t mlen = 0;
        unsigned char *m = t <= INT64_MAX ? cosig_message(n, t, &mlen) : NULL;
        ok = m && crypto_sign_verify_detached(sig, m, mlen, pk) == 0;
        free(m);
        *time_out = t;
    } else {
        ok = crypto_sign_verify_detached(sig, (const unsigned char *)n->text, n->text_len, pk) == 0;
    }
    if (!ok)
        return wr_errorf(err, WR_E_CRYPTO, "", "the signature by %s does not verify: the checkpoint was altered", name);
    return WR_OK;
}

int wr_checkpoint_verify(const char *text, const unsigned char pk[WR_PK_LEN], const unsigned char *witness_pk,
                         wr_checkpoint *out, wr_error *err)
{
    memset(out, 0, sizeof *out);
    note n;
    int rc = split_note(text, &n, err);
    if (rc == WR_OK)
        rc = parse_body(&n, out, err);
    if (rc)
        return rc;
    char origin[WR_ORIGIN_LEN], witness[NAME_MAX_LEN] = "";
    wr_checkpoint_origin(pk, origin);
    if (strcmp(out->origin, origin) != 0)
        return wr_errorf(err, WR_E_CRYPTO, "", "checkpoint of log %.100s, not of this key's log %s", out->origin,
                         origin);
    if (witness_pk)
        key_name(WITNESS_PREFIX, witness_pk, witness);
    bool by_log = false, by_witness = false;
    const char *p = n.sigs;
    for (int count = 0;; count++) {
        sigline s;
        bool got, matched;
        if ((rc = next_sig(&p, &s, &got, err)) != WR_OK || !got)
            break;
        if (count == WR_CHECKPOINT_MAX_SIGS)
            return bad_note(err, "too many signature lines");
        uint64_t t = 0;
        if ((rc = check_sig(&n, &s, origin, SIG_TYPE_ED25519, pk, &matched, &t, err)) != WR_OK)
            return rc;
        by_log |= matched;
        if (witness_pk && (rc = check_sig(&n, &s, witness, SIG_TYPE_COSIG_V1, witness_pk, &matched, &t, err)) != WR_OK)
            return rc;
        if (witness_pk && matched) {
            by_witness = true;
            out->witness_time = (int64_t)t;
        }
    }
    if (rc)
        return rc;
    if (!by_log)
        return wr_errorf(err, WR_E_CRYPTO, "", "the checkpoint carries no signature by the log key %s", origin);
    if (witness_pk && !by_witness)
        return wr_errorf(err, WR_E_CRYPTO, "", "the checkpoint carries no cosignature by the witness %s", witness);
    return WR_OK;
}

int wr_checkpoint_cosign(const char *text, const unsigned char log_pk[WR_PK_LEN], const wr_keypair *witness,
                         const wr_ctx *ctx, char **note_out, wr_error *err)
{
    wr_checkpoint cp;
    int rc = wr_checkpoint_verify(text, log_pk, NULL, &cp, err);
    if (rc)
        return rc;
    note n;
    if ((rc = split_note(text, &n, err)) != WR_OK)
        return rc;
    char name[NAME_MAX_LEN];
    key_name(WITNESS_PREFIX, witness->pk, name);
    uint64_t t = (uint64_t)(wr_now_ms(ctx) / 1000);
    unsigned char blob[KEY_HASH_LEN + COSIG_TIME_LEN + crypto_sign_BYTES];
    key_hash(name, SIG_TYPE_COSIG_V1, witness->pk, blob);
    for (int i = 0; i < COSIG_TIME_LEN; i++)
        blob[KEY_HASH_LEN + i] = (unsigned char)(t >> (8 * (COSIG_TIME_LEN - 1 - i)));
    size_t mlen = 0;
    unsigned char *m = cosig_message(&n, t, &mlen);
    char *note = m ? strdup(text) : NULL;
    if (!note) {
        free(m);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    crypto_sign_detached(blob + KEY_HASH_LEN + COSIG_TIME_LEN, NULL, m, mlen, witness->sk);
    free(m);
    if ((rc = add_signature_line(&note, name, blob, sizeof blob, err)) != WR_OK) {
        free(note);
        return rc;
    }
    *note_out = note;
    return WR_OK;
}

int wr_checkpoint_publish(wr_store *st, const wr_keypair *kp, const wr_ctx *ctx, char **note_out, wr_error *err)
{
    *note_out = NULL;
    wr_tree_head head;
    int64_t have = -1;
    char *latest = NULL;
    int rc = wr_store_tree(st, WR_TREE_ROOT, 0, -1, &head, NULL, err);
    if (rc)
        return rc;
    rc = wr_store_get_checkpoint(st, -1, &have, &latest, err);
    if (rc == WR_OK && have >= head.size) {
        *note_out = latest;
        return WR_OK;
    }
    free(latest);
    if (rc != WR_OK && rc != WR_E_NOTFOUND)
        return rc;
    wr_error_clear(err);
    if ((rc = wr_checkpoint_sign(kp, &head, &latest, err)) != WR_OK)
        return rc;
    rc = wr_store_put_checkpoint(st, head.size, head.root, latest, wr_now_ms(ctx), err);
    if (rc) {
        free(latest);
        return rc;
    }
    /* Another process may have stored one for this size first: use it. */
    free(latest);
    return wr_store_get_checkpoint(st, head.size, &have, note_out, err);
}

int wr_receipt_verify_inclusion(json_object *receipt, const wr_checkpoint *cp, int64_t index, int64_t size,
                                const wr_merkle_proof *p, wr_error *err)
{
    json_object *seq = NULL;
    if (!json_object_object_get_ex(receipt, "seq", &seq) || !json_object_is_type(seq, json_type_int))
        return wr_errorf(err, WR_E_INVALID, "/seq", "the receipt has no seq");
    long long s = (long long)json_object_get_int64(seq);
    if (index != s - 1)
        return wr_errorf(err, WR_E_INVALID, "", "the proof is for leaf %lld, the receipt is seq %lld (leaf %lld)",
                         (long long)index, s, s - 1);
    if (size != cp->size)
        return wr_errorf(err, WR_E_INVALID, "", "the proof is for tree size %lld, the checkpoint has size %lld",
                         (long long)size, (long long)cp->size);
    size_t len = 0;
    char *canon = wr_canonical_json(receipt, false, &len, err);
    if (!canon)
        return err && err->code ? err->code : WR_E_INTERNAL;
    wr_merkle_hash leaf;
    wr_merkle_leaf_hash(canon, len, leaf);
    free(canon);
    return wr_merkle_verify_inclusion(leaf, index, size, p, cp->root, err);
}

/* ---- proof files ------------------------------------------------------------ */

static const char *const proof_types[] = {[WR_TREE_INCLUSION] = "inclusion", [WR_TREE_CONSISTENCY] = "consistency"};
static const char *const proof_arg[] = {[WR_TREE_INCLUSION] = "leaf_index", [WR_TREE_CONSISTENCY] = "old_size"};

json_object *wr_proof_to_json(wr_tree_query kind, int64_t arg, int64_t size, const wr_merkle_proof *p)
{
    json_object *o = json_object_new_object(), *hs = json_object_new_array();
    json_object_object_add(o, "proof_version", json_object_new_string(WR_PROOF_VERSION));
    json_object_object_add(o, "type", json_object_new_string(proof_types[kind]));
    json_object_object_add(o, proof_arg[kind], json_object_new_int64(arg));
    json_object_object_add(o, "tree_size", json_object_new_int64(size));
    for (size_t i = 0; i < p->n; i++) {
        char *b = wr_base64_encode(p->h[i], WR_MERKLE_HASH_LEN);
        json_object_array_add(hs, json_object_new_string(b ? b : ""));
        free(b);
    }
    json_object_object_add(o, "hashes", hs);
    return o;
}

static bool int_member(json_object *o, const char *key, int64_t *v)
{
    json_object *m = NULL;
    if (!json_object_object_get_ex(o, key, &m) || !json_object_is_type(m, json_type_int))
        return false;
    *v = json_object_get_int64(m);
    return *v >= 0;
}

int wr_proof_from_json(json_object *o, wr_tree_query kind, int64_t *arg, int64_t *size, wr_merkle_proof *p,
                       wr_error *err)
{
    p->n = 0;
    const char *v = wr_receipt_str(o, "proof_version"), *t = wr_receipt_str(o, "type");
    json_object *hs = NULL;
    if (!v || strcmp(v, WR_PROOF_VERSION) != 0 || !t || strcmp(t, proof_types[kind]) != 0)
        return wr_errorf(err, WR_E_INVALID, "", "not a %s proof of version %s", proof_types[kind], WR_PROOF_VERSION);
    if (!int_member(o, proof_arg[kind], arg) || !int_member(o, "tree_size", size))
        return wr_errorf(err, WR_E_INVALID, "", "%s proof: %s and tree_size must be non-negative integers",
                         proof_types[kind], proof_arg[kind]);
    if (!json_object_object_get_ex(o, "hashes", &hs) || !json_object_is_type(hs, json_type_array) ||
        json_object_array_length(hs) > WR_MERKLE_MAX_PROOF)
        return wr_errorf(err, WR_E_INVALID, "/hashes", "%s proof: hashes must be an array of at most %d",
                         proof_types[kind], WR_MERKLE_MAX_PROOF);
    for (size_t i = 0; i < json_object_array_length(hs); i++) {
        json_object *h = json_object_array_get_idx(hs, i);
        size_t got = 0;
        wr_error e = {0};
        if (!json_object_is_type(h, json_type_string) ||
            wr_base64_decode(json_object_get_string(h), p->h[i], WR_MERKLE_HASH_LEN, &got, &e) != WR_OK ||
            got != WR_MERKLE_HASH_LEN)
            return wr_errorf(err, WR_E_INVALID, "/hashes", "%s proof: hash %zu is not 32 bytes of base64",
                             proof_types[kind], i);
        p->n++;
    }
    return WR_OK;
}
