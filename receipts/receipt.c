/* receipts — build, sign, seal (into the store's chain) and verify one
 * receipt. The signing rule is the CSC reference runner's, byte for byte:
 * Ed25519 over the canonical JSON (lib's wr_canonical_json = Python's
 * json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False))
 * of the receipt with only signature.signature removed. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "receipts/receipts_internal.h"
#include "schemas/schemas.h"

_Static_assert(WR_ED25519_SIG_LEN == crypto_sign_BYTES, "an Ed25519 signature");

const char *wr_receipt_str(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static void put_str(json_object *o, const char *key, const char *val)
{
    if (val)
        json_object_object_add(o, key, json_object_new_string(val));
}

static void put_hash(json_object *o, const char *key, const char *hex)
{
    if (!hex)
        return;
    char buf[8 + WR_SHA256_HEX_LEN];
    snprintf(buf, sizeof buf, "sha256:%s", hex);
    put_str(o, key, buf);
}

static void put_time(json_object *o, const char *key, int64_t ms)
{
    char t[WR_TIME_LEN];
    wr_time_format(ms, t);
    put_str(o, key, t);
}

static json_object *digest_list(const wr_receipt_artifact *list, size_t n)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_new_object();
        put_str(a, "path", list[i].path);
        put_str(a, "sha256", list[i].sha256);
        json_object_array_add(arr, a);
    }
    return arr;
}

static void put_provenance(json_object *r, const wr_receipt_provenance *p, bool ran)
{
    json_object *c = json_object_new_object();
    put_str(c, "name", p->capsule_name);
    put_str(c, "version", p->capsule_version);
    put_str(c, "sha256", p->capsule_sha256);
    put_str(c, "signer_key_id", p->signer_key_id);
    json_object_object_add(r, "capsule", c);
    json_object_object_add(r, "materials", digest_list(p->materials, p->nmaterials));
    if (ran)
        json_object_object_add(r, "products", digest_list(p->products, p->nproducts));
    if (p->reproduces) {
        put_str(r, "reproduces", p->reproduces);
        json_object_object_add(r, "reproduced", json_object_new_boolean(p->reproduced));
    }
}

json_object *wr_receipt_build(const wr_receipt_input *in)
{
    if (!in)
        return NULL;
    json_object *r = json_object_new_object();
    if (!r)
        return NULL;
    /* CSC v0.1 fields */
    put_str(r, "receipt_version", "csc.receipt.v0.1");
    put_str(r, "contract_id", in->contract_id);
    put_str(r, "execution_id", in->execution_id);
    put_str(r, "contract_sha256", in->contract_sha256);
    put_str(r, "status", in->status);
    put_time(r, "started_at", in->started_ms);
    put_time(r, "ended_at", in->ended_ms);
    if (in->has_exit_code)
        json_object_object_add(r, "exit_code", json_object_new_int(in->exit_code));
    put_hash(r, "stdout_hash", in->stdout_hash);
    put_hash(r, "stderr_hash", in->stderr_hash);
    bool ran = in->stdout_hash || in->stderr_hash;
    if (ran) {
        json_object_object_add(r, "stdout_truncated", json_object_new_boolean(in->stdout_truncated));
        json_object_object_add(r, "stderr_truncated", json_object_new_boolean(in->stderr_truncated));
    }
    json_object_object_add(r, "artifacts", digest_list(in->artifacts, in->nartifacts));
    put_str(r, "policy_profile", in->policy_profile);
    put_str(r, "policy_schema_version", in->policy_schema_version);
    put_str(r, "policy_sha256", in->policy_sha256);
    put_str(r, "runner_version", WR_VERSION);
    put_str(r, "execution_mode", "hardened");
    put_str(r, "sandbox_profile_id", in->sandbox_profile_id);
    json_object *eff = json_object_new_object();
    json_object_object_add(eff, "files_written", json_object_new_int64((int64_t)in->nartifacts));
    json_object_object_add(eff, "network_used", json_object_new_boolean(in->network_used));
    json_object_object_add(eff, "secrets_used", json_object_new_int(in->secrets_used > 0 ? in->secrets_used : 0));
    json_object_object_add(r, "effect_summary", eff);
    json_object *done = json_object_new_array();
    for (size_t i = 0; in->completed_command_ids && i < in->completed_command_ids->n; i++)
        json_object_array_add(done, json_object_new_string(in->completed_command_ids->v[i]));
    json_object_object_add(r, "completed_command_ids", done);
    json_object_object_add(r, "failed_command_id",
                           in->failed_command_id ? json_object_new_string(in->failed_command_id) : NULL);
    put_str(r, "error", in->error);

    /* warrant extensions (schemas/warrant.receipt.schema.json) */
    put_str(r, "stdout_stream_sha256", in->stdout_stream_sha256);
    put_str(r, "stderr_stream_sha256", in->stderr_stream_sha256);
    if (ran) {
        json_object_object_add(r, "stdout_bytes", json_object_new_int64((int64_t)in->stdout_bytes));
        json_object_object_add(r, "stderr_bytes", json_object_new_int64((int64_t)in->stderr_bytes));
    }
    put_str(r, "sandbox_profile_sha256", in->sandbox_profile_sha256);
    if (in->network_egress)
        json_object_object_add(r, "network_egress", json_object_get(in->network_egress));
    json_object *iso = NULL; /* a copy: json-c reference counts are not atomic */
    if (in->isolation && json_object_deep_copy(in->isolation, &iso, NULL) == 0)
        json_object_object_add(r, "isolation", iso);
    put_str(r, "decision", in->decision);
    put_str(r, "reason_code", in->reason_code);
    json_object *aps = json_object_new_array();
    for (size_t i = 0; i < in->napprovals; i++) {
        json_object *a = json_object_new_object();
        put_str(a, "approval_id", in->approvals[i].approval_id);
        put_str(a, "identity", in->approvals[i].identity);
        put_str(a, "method", in->approvals[i].method);
        put_str(a, "key_id", in->approvals[i].key_id);
        put_str(a, "attestation", in->approvals[i].attestation);
        json_object_array_add(aps, a);
    }
    json_object_object_add(r, "approvals", aps);
    put_str(r, "agent_id", in->agent_id);
    if (in->provenance)
        put_provenance(r, in->provenance, ran);
    return r;
}

/* ---- signing -------------------------------------------------------------- */

/* The signing payload: canonical JSON with only signature.signature left
 * out. The member is detached and put back, so obj is unchanged after. */
static char *signing_payload(json_object *obj, size_t *len, wr_error *err)
{
    json_object *sig = NULL, *value = NULL;
    if (!json_object_object_get_ex(obj, "signature", &sig) || !json_object_is_type(sig, json_type_object)) {
        wr_errorf(err, WR_E_CRYPTO, "/signature", "not signed: no signature object");
        return NULL;
    }
    if (json_object_object_get_ex(sig, "signature", &value)) {
        json_object_get(value);
        json_object_object_del(sig, "signature");
    }
    char *payload = wr_canonical_json(obj, false, len, err);
    if (value)
        json_object_object_add(sig, "signature", value);
    return payload;
}

int wr_receipt_sign(json_object *receipt, const wr_keypair *kp, const wr_ctx *ctx, wr_error *err)
{
    if (!json_object_is_type(receipt, json_type_object) || !kp || !ctx)
        return wr_errorf(err, WR_E_INVALID, "", "sign receipt: not a JSON object, or no key");
    char signed_at[WR_TIME_LEN];
    wr_time_format(wr_now_ms(ctx), signed_at);
    json_object *sig = json_object_new_object();
    put_str(sig, "algorithm", "ed25519");
    put_str(sig, "key_id", kp->key_id);
    put_str(sig, "signed_at", signed_at);
    put_str(receipt, "signing_key_id", kp->key_id);
    json_object_object_add(receipt, "signature", sig);
    size_t len;
    char *payload = signing_payload(receipt, &len, err);
    if (!payload)
        return err && err->code ? err->code : WR_E_INTERNAL;
    char *b64 = wr_sign_b64(kp, payload, len);
    free(payload);
    if (!b64)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    json_object_object_add(sig, "signature", json_object_new_string(b64));
    free(b64);
    return WR_OK;
}

/* The signature object's algorithm and key id, before any hashing. On
 * WR_OK *b64 is the signature value. */
static int signature_header(json_object *obj, const char *want, const char **b64, wr_error *err)
{
    json_object *sig = NULL;
    if (!json_object_object_get_ex(obj, "signature", &sig) || !json_object_is_type(sig, json_type_object))
        return wr_errorf(err, WR_E_CRYPTO, "/signature", "not signed: no signature object");
    const char *alg = wr_receipt_str(sig, "algorithm");
    if (!alg || strcmp(alg, "ed25519") != 0)
        return wr_errorf(err, WR_E_CRYPTO, "/signature/algorithm", "signature algorithm is not ed25519");
    const char *key_id = wr_receipt_str(sig, "key_id");
    if (!key_id || strcmp(key_id, want) != 0)
        return wr_errorf(err, WR_E_CRYPTO, "/signature/key_id",
                         "signed by key %.64s, not by the given public key (key id %s)", key_id ? key_id : "(none)",
                         want);
    *b64 = wr_receipt_str(sig, "signature");
    if (!*b64)
        return wr_errorf(err, WR_E_CRYPTO, "/signature/signature", "signature value is missing");
    return WR_OK;
}

static int bad_signature(wr_error *err)
{
    return wr_errorf(err, WR_E_CRYPTO, "/signature/signature",
                     "signature does not verify: the content was altered after signing");
}

int wr_signed_object_verify(json_object *obj, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    const char *b64;
    char want[WR_KEY_ID_LEN];
    wr_key_id(pk, want);
    int rc = signature_header(obj, want, &b64, err);
    if (rc)
        return rc;
    size_t len;
    char *payload = signing_payload(obj, &len, err);
    if (!payload)
        return err && err->code ? err->code : WR_E_INTERNAL;
    bool ok = wr_verify_b64(pk, payload, len, b64);
    free(payload);
    return ok ? WR_OK : bad_signature(err);
}

/* Cuts the member "signature":"<b64>" (and one comma beside it) out of a
 * receipt's canonical text in place, leaving the signing payload. In
 * canonical text a match that follows '{' or ',' is a member, not bytes
 * inside a string: its quotes are unescaped (a '"' in a string is written
 * \"), so the first opens a key. Of a schema-valid receipt only the
 * signature object has a "signature" string member (the others are
 * closed); were the cut anywhere else, the payload would hold the very
 * signature made over it. False when the member is not found as such. */
static bool cut_signature(char *text, size_t *len, const char *b64)
{
    char member[128];
    int mlen = snprintf(member, sizeof member, "\"signature\":\"%s\"", b64);
    char *at = mlen > 0 && (size_t)mlen < sizeof member ? memmem(text, *len, member, (size_t)mlen) : NULL;
    if (!at || at == text || (at[-1] != '{' && at[-1] != ','))
        return false;
    size_t start = (size_t)(at - text), cut = (size_t)mlen;
    if (start + cut < *len && text[start + cut] == ',')
        cut++; /* "signature":"…","signed_at":… */
    else if (text[start - 1] == ',')
        start--, cut++; /* …,"signature":"…" last */
    memmove(text + start, text + start + cut, *len - start - cut);
    *len -= cut;
    return true;
}

/* ---- verification ----------------------------------------------------- */

wr_schema *wr_receipt_schema_new(wr_error *err)
{
    return wr_schema_embedded(WR_RECEIPT_SCHEMA, err);
}

int wr_receipt_verifier_init(wr_receipt_verifier *v, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    memset(v, 0, sizeof *v);
    memcpy(v->pk, pk, WR_PK_LEN);
    wr_key_id(pk, v->key_id);
    v->schema = wr_receipt_schema_new(err);
    v->hasher = wr_hasher_new(); /* NULL only costs speed */
    return v->schema ? WR_OK : (err && err->code ? err->code : WR_E_INTERNAL);
}

void wr_receipt_verifier_clear(wr_receipt_verifier *v)
{
    wr_schema_free(v->schema);
    v->schema = NULL;
    wr_hasher_free(v->hasher);
    v->hasher = NULL;
}

/* Signature, chain hash and leaf hash are all over the canonical form: the
 * text the receipt was parsed from when the parser proved that text
 * canonical (stored and exported receipts are), else one serialisation. A
 * signature over non-canonical bytes never counts, even by the log's key:
 * another verifier would not accept it. */
int wr_receipt_verifier_prepare(const wr_receipt_verifier *v, json_object *receipt, char *text, size_t text_len,
                                char hash_out[WR_SHA256_HEX_LEN], unsigned char *leaf_out, wr_receipt_pending *p,
                                wr_error *err)
{
    memset(p, 0, sizeof *p);
    if (!json_object_is_type(receipt, json_type_object))
        return wr_errorf(err, WR_E_INVALID, "", "a receipt is a JSON object");
    int rc = wr_schema_validate(v->schema, receipt, err);
    if (rc) {
        wr_error_prefix(err, "receipt does not match %s", WR_RECEIPT_SCHEMA);
        return rc;
    }
    const char *b64;
    if ((rc = signature_header(receipt, v->key_id, &b64, err)) != WR_OK)
        return rc;
    size_t len = text_len;
    if (!text && !(text = p->owned = wr_canonical_json(receipt, false, &len, err)))
        return err && err->code ? err->code : WR_E_INTERNAL;
    if (hash_out)
        wr_hasher_sha256_hex(v->hasher, text, len, hash_out);
    if (leaf_out)
        wr_hasher_merkle_leaf(v->hasher, text, len, leaf_out);
    size_t n = 0;
    p->decoded = wr_base64_decode(b64, p->sig, sizeof p->sig, &n, NULL) == WR_OK && n == WR_ED25519_SIG_LEN;
    if (cut_signature(text, &len, b64)) {
        p->payload = (const unsigned char *)text;
        p->len = len;
    }
    /* signing_key_id is signed too; it must name the same key. */
    const char *sk = wr_receipt_str(receipt, "signing_key_id");
    if (sk && strcmp(sk, v->key_id) != 0)
        snprintf(p->stray_key_id, sizeof p->stray_key_id, "%.64s", sk);
    return WR_OK;
}

int wr_receipt_pending_finish(const wr_receipt_verifier *v, wr_receipt_pending *p, wr_error *err)
{
    bool ok = p->payload && p->decoded && crypto_sign_verify_detached(p->sig, p->payload, p->len, v->pk) == 0;
    wr_receipt_pending_clear(p);
    if (!ok)
        return bad_signature(err);
    if (p->stray_key_id[0])
        return wr_errorf(err, WR_E_CRYPTO, "/signing_key_id", "signing_key_id %s differs from signature.key_id %s",
                         p->stray_key_id, v->key_id);
    return WR_OK;
}

void wr_receipt_pending_clear(wr_receipt_pending *p)
{
    free(p->owned);
    p->owned = NULL;
    p->payload = NULL;
}

int wr_receipt_verifier_check(const wr_receipt_verifier *v, json_object *receipt, wr_error *err)
{
    wr_receipt_pending p;
    int rc = wr_receipt_verifier_prepare(v, receipt, NULL, 0, NULL, NULL, &p, err);
    if (rc == WR_OK)
        return wr_receipt_pending_finish(v, &p, err);
    wr_receipt_pending_clear(&p);
    return rc;
}

int wr_receipt_verify_key_id(json_object *receipt, const unsigned char pk[WR_PK_LEN], const char *key_id, wr_error *err)
{
    if (key_id && (!key_id[0] || strlen(key_id) > WR_RECEIPT_KEY_ID_MAX))
        return wr_errorf(err, WR_E_INVALID, "", "a key id has 1 to %d characters", WR_RECEIPT_KEY_ID_MAX);
    wr_receipt_verifier v;
    int rc = wr_receipt_verifier_init(&v, pk, err);
    if (rc == WR_OK && key_id)
        snprintf(v.key_id, sizeof v.key_id, "%s", key_id);
    if (rc == WR_OK)
        rc = wr_receipt_verifier_check(&v, receipt, err);
    wr_receipt_verifier_clear(&v);
    return rc;
}

int wr_receipt_verify(json_object *receipt, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    return wr_receipt_verify_key_id(receipt, pk, NULL, err);
}

int wr_receipt_hash(json_object *receipt, char out[WR_SHA256_HEX_LEN], wr_error *err)
{
    return wr_canonical_sha256(receipt, false, out, err);
}

/* ---- sealing into the chain --------------------------------------------- */

typedef struct seal_state {
    json_object *receipt;
    const wr_keypair *kp;
    const wr_ctx *ctx;
    const wr_schema *schema;
} seal_state;

/* Runs inside the store's write transaction, so seq and prev are exactly
 * the chain head the row is appended to. */
static int seal_cb(void *ud, int64_t seq, const char prev[WR_SHA256_HEX_LEN], char **json_out,
                   char sha_out[WR_SHA256_HEX_LEN], wr_error *err)
{
    seal_state *s = ud;
    json_object_object_add(s->receipt, "seq", json_object_new_int64(seq));
    put_str(s->receipt, "prev_receipt_sha256", prev);
    int rc = wr_receipt_sign(s->receipt, s->kp, s->ctx, err);
    /* Nothing that our own verifier would reject may enter the chain. */
    if (rc == WR_OK && (rc = wr_schema_validate(s->schema, s->receipt, err)) != WR_OK)
        wr_error_prefix(err, "refusing to seal a receipt that does not match %s", WR_RECEIPT_SCHEMA);
    if (rc)
        return rc;
    size_t len;
    *json_out = wr_canonical_json(s->receipt, false, &len, err);
    if (!*json_out)
        return err && err->code ? err->code : WR_E_INTERNAL;
    wr_sha256_hex(*json_out, len, sha_out);
    return WR_OK;
}

int wr_receipt_seal(wr_store *st, const wr_keypair *kp, const wr_ctx *ctx, const wr_schema *schema,
                    json_object *unsigned_receipt, const char *execution_id, json_object **signed_out, wr_error *err)
{
    json_object *own = NULL;
    if (json_object_is_type(unsigned_receipt, json_type_object) &&
        json_object_deep_copy(unsigned_receipt, &own, NULL) != 0) {
        if (signed_out)
            *signed_out = NULL;
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    return wr_receipt_seal_output(st, kp, ctx, schema, own, execution_id, NULL, signed_out, err);
}

/* The checks before a seal: the receipt is the one for execution_id. */
static int seal_args(wr_store *st, const wr_keypair *kp, const wr_ctx *ctx, json_object *receipt,
                     const char *execution_id, json_object **signed_out, wr_error *err)
{
    if (!st || !kp || !ctx || !signed_out || !json_object_is_type(receipt, json_type_object))
        return wr_errorf(err, WR_E_INVALID, "", "seal receipt: missing store, key, context or receipt");
    const char *rid = wr_receipt_str(receipt, "execution_id");
    if (!execution_id || !rid || strcmp(rid, execution_id) != 0)
        return wr_errorf(err, WR_E_INVALID, "/execution_id", "seal receipt: execution_id does not match '%s'",
                         execution_id ? execution_id : "(null)");
    if (!wr_receipt_str(receipt, "status"))
        return wr_errorf(err, WR_E_INVALID, "/status", "seal receipt: the receipt has no status");
    return WR_OK;
}

int wr_receipt_seal_output(wr_store *st, const wr_keypair *kp, const wr_ctx *ctx, const wr_schema *schema,
                           json_object *unsigned_receipt, const char *execution_id, const wr_store_output *output,
                           json_object **signed_out, wr_error *err)
{
    if (signed_out)
        *signed_out = NULL;
    int rc = seal_args(st, kp, ctx, unsigned_receipt, execution_id, signed_out, err);
    if (rc != WR_OK) {
        json_object_put(unsigned_receipt);
        return rc;
    }
    seal_state s = {.receipt = unsigned_receipt, .kp = kp, .ctx = ctx};
    const char *status = wr_receipt_str(s.receipt, "status");
    /* A receipt is sealed once: stale chain or signature members from a
     * caller's copy would otherwise be signed as if they were ours. */
    json_object_object_del(s.receipt, "signature");
    wr_schema *own = schema ? NULL : wr_receipt_schema_new(err);
    s.schema = schema ? schema : own;
    rc = s.schema ? WR_OK : (err && err->code ? err->code : WR_E_INTERNAL);
    if (rc == WR_OK)
        rc = wr_store_append_receipt(st, execution_id, wr_receipt_str(s.receipt, "contract_id"), status, output,
                                     seal_cb, &s, NULL, err);
    wr_schema_free(own);
    if (rc) {
        json_object_put(s.receipt);
        return rc;
    }
    *signed_out = s.receipt;
    return WR_OK;
}
