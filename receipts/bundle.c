/* receipts — evidence bundles: one execution's receipt with everything an
 * auditor needs to check it offline, as a tar.gz (libarchive).
 *
 * Layout (flat, fixed names): receipt.json, contract.json, decision.json,
 * approvals.json, policy.json, stdout, stderr, receipt-signing.pub,
 * SHA256SUMS (`sha256sum -c` format) over all of those, and
 * SHA256SUMS.sig, the server key's Ed25519 signature of SHA256SUMS (base64).
 * The signed manifest catches any changed file, also one that was changed
 * together with its manifest line. Independently, the signed receipt
 * anchors what it names: contract and policy hashes, output hashes and the
 * approvals used, whose artifacts carry their approvers' signatures,
 * checked against the keys of the (hash-bound) policy. The receipt log's
 * newest checkpoint and the receipt's inclusion proof against it
 * (checkpoint, inclusion-proof.json) show it was in the log the server
 * signed; bundles from before the log lack both, and are still read. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "receipts/receipts_internal.h"

#define MANIFEST        "SHA256SUMS"
#define MANIFEST_SIG    "SHA256SUMS.sig"
#define PUBKEY_FILE     "receipt-signing.pub"
#define BUNDLE_FILE_MAX (64u << 20) /* per member; stdout/stderr are capped far below this by policy */

#define CHECKPOINT_FILE "checkpoint"
#define PROOF_FILE      "inclusion-proof.json"

static const char *const bundle_names[] = {"receipt.json",  "contract.json", "decision.json", "approvals.json",
                                           "policy.json",   "stdout",        "stderr",        PUBKEY_FILE,
                                           CHECKPOINT_FILE, PROOF_FILE,      MANIFEST,        MANIFEST_SIG};
#define NFILES (sizeof bundle_names / sizeof bundle_names[0])

typedef struct bfile {
    unsigned char *data; /* NULL when absent */
    size_t len;
} bfile;

/* Indexed like bundle_names. */
typedef struct bundle {
    bfile f[NFILES];
} bundle;

static int name_index(const char *name)
{
    for (size_t i = 0; i < NFILES; i++)
        if (!strcmp(name, bundle_names[i]))
            return (int)i;
    return -1;
}

static bfile *file(bundle *b, const char *name)
{
    return &b->f[name_index(name)];
}

static void bundle_free(bundle *b)
{
    for (size_t i = 0; i < NFILES; i++)
        free(b->f[i].data);
    memset(b, 0, sizeof *b);
}

/* Takes ownership of data. */
static void set_file(bundle *b, const char *name, void *data, size_t len)
{
    bfile *f = file(b, name);
    free(f->data);
    f->data = data;
    f->len = len;
}

static int set_text(bundle *b, const char *name, char *text, wr_error *err)
{
    if (!text)
        return wr_errorf(err, WR_E_NOMEM, name, "out of memory");
    set_file(b, name, text, strlen(text));
    return WR_OK;
}

static int set_json(bundle *b, const char *name, json_object *obj, wr_error *err)
{
    size_t len;
    char *c = wr_canonical_json(obj, false, &len, err);
    if (!c)
        return err && err->code ? err->code : WR_E_INTERNAL;
    set_file(b, name, c, len);
    return WR_OK;
}

/* ---- export ------------------------------------------------------------ */

typedef struct approval_pick {
    json_object *used; /* the receipt's approvals array */
    json_object *out;  /* artifacts found */
    int rc;
    wr_error *err;
} approval_pick;

static bool receipt_used(json_object *used, const char *approval_id)
{
    for (size_t i = 0; i < json_object_array_length(used); i++) {
        const char *id = wr_receipt_str(json_object_array_get_idx(used, i), "approval_id");
        if (id && !strcmp(id, approval_id))
            return true;
    }
    return false;
}

static int pick_approval(void *ud, const char *approval_id, const char *artifact_json, bool revoked)
{
    (void)revoked; /* revoked after use: still the evidence of that use */
    approval_pick *p = ud;
    if (!receipt_used(p->used, approval_id))
        return 0;
    json_object *a = wr_json_parse(artifact_json, strlen(artifact_json), NULL, p->err);
    if (!a) {
        p->rc = p->err && p->err->code ? p->err->code : WR_E_INVALID;
        return 1;
    }
    json_object_array_add(p->out, a);
    return 0;
}

static int collect_approvals(wr_store *st, json_object *receipt, bundle *b, wr_error *err)
{
    json_object *used = NULL;
    if (!json_object_object_get_ex(receipt, "approvals", &used) || !json_object_is_type(used, json_type_array) ||
        json_object_array_length(used) == 0)
        return WR_OK;
    approval_pick p = {.used = used, .out = json_object_new_array(), .err = err};
    int rc = wr_store_list_approvals(st, wr_receipt_str(receipt, "contract_sha256"), pick_approval, &p, err);
    if (rc == WR_OK)
        rc = p.rc;
    if (rc == WR_OK && json_object_array_length(p.out) != json_object_array_length(used))
        rc = wr_errorf(err, WR_E_NOTFOUND, "approvals.json", "the store lacks an approval artifact the receipt used");
    if (rc == WR_OK)
        rc = set_json(b, "approvals.json", p.out, err);
    json_object_put(p.out);
    return rc;
}

/* Adds an optional piece fetched by get (WR_E_NOTFOUND is fine: e.g. a
 * contract refused before it was stored); any other error fails. */
static int add_optional(wr_store *st, const char *key, int (*get)(wr_store *, const char *, char **, wr_error *),
                        bundle *b, const char *name, wr_error *err)
{
    char *text = NULL;
    int rc = get(st, key, &text, err);
    if (rc == WR_E_NOTFOUND) {
        wr_error_clear(err);
        return WR_OK;
    }
    return rc ? rc : set_text(b, name, text, err);
}

/* The newest checkpoint (signed first if the log grew: exporting needs
 * the server key anyway) and the receipt's inclusion proof against it. */
static int collect_log(wr_store *st, json_object *r, bundle *b, wr_error *err)
{
    wr_keypair kp;
    wr_ctx ctx = wr_ctx_system();
    char *note = NULL;
    int rc = wr_server_key_load(wr_store_dir(st), &kp, err);
    if (rc == WR_OK)
        rc = wr_checkpoint_publish(st, &kp, &ctx, &note, err);
    wr_checkpoint cp;
    if (rc == WR_OK)
        rc = wr_checkpoint_verify(note, kp.pk, NULL, &cp, err);
    wr_keypair_wipe(&kp);
    if (rc == WR_OK)
        rc = set_text(b, CHECKPOINT_FILE, note, err);
    else
        free(note);
    wr_tree_head head;
    wr_merkle_proof proof;
    int64_t index = json_object_get_int64(json_object_object_get(r, "seq")) - 1;
    if (rc == WR_OK)
        rc = wr_store_tree(st, WR_TREE_INCLUSION, index, cp.size, &head, &proof, err);
    json_object *pj = rc == WR_OK ? wr_proof_to_json(WR_TREE_INCLUSION, index, head.size, &proof) : NULL;
    if (pj)
        rc = set_json(b, PROOF_FILE, pj, err);
    json_object_put(pj);
    return rc;
}

static int collect(wr_store *st, const char *execution_id, bundle *b, json_object **receipt_out, wr_error *err)
{
    char *text = NULL;
    int rc = wr_store_get_receipt(st, execution_id, &text, err);
    if (rc)
        return rc;
    set_text(b, "receipt.json", text, err);
    json_object *r = *receipt_out = wr_json_parse(text, strlen(text), NULL, err);
    if (!r)
        return err && err->code ? err->code : WR_E_INVALID;
    const char *csha = wr_receipt_str(r, "contract_sha256"), *psha = wr_receipt_str(r, "policy_sha256");
    if (!csha)
        return wr_errorf(err, WR_E_INVALID, "receipt.json", "stored receipt has no contract_sha256");
    rc = add_optional(st, csha, wr_store_get_contract, b, "contract.json", err);
    if (rc == WR_OK)
        rc = add_optional(st, csha, wr_store_get_decision, b, "decision.json", err);
    if (rc == WR_OK && psha)
        rc = add_optional(st, psha, wr_store_get_policy, b, "policy.json", err);
    if (rc == WR_OK)
        rc = collect_approvals(st, r, b, err);
    unsigned char *out = NULL, *errb = NULL;
    size_t out_len = 0, err_len = 0;
    if (rc == WR_OK && (wr_receipt_str(r, "stdout_hash") || wr_receipt_str(r, "stderr_hash"))) {
        rc = wr_store_get_output(st, execution_id, &out, &out_len, &errb, &err_len, err);
        if (rc == WR_OK) {
            set_file(b, "stdout", out, out_len);
            set_file(b, "stderr", errb, err_len);
        }
    }
    unsigned char pk[WR_PK_LEN];
    if (rc == WR_OK)
        rc = wr_server_pubkey_load(wr_store_dir(st), pk, err);
    if (rc == WR_OK)
        rc = set_text(b, PUBKEY_FILE, wr_pubkey_pem(pk), err);
    if (rc == WR_OK)
        rc = collect_log(st, r, b, err);
    return rc;
}

static int make_manifest(bundle *b, wr_error *err)
{
    size_t cap = NFILES * (WR_SHA256_HEX_LEN + 32) + 1, len = 0;
    char *m = malloc(cap);
    if (!m)
        return wr_errorf(err, WR_E_NOMEM, MANIFEST, "out of memory");
    m[0] = 0;
    for (size_t i = 0; i < NFILES; i++) {
        if (!b->f[i].data || !strncmp(bundle_names[i], MANIFEST, strlen(MANIFEST)))
            continue;
        char hex[WR_SHA256_HEX_LEN];
        wr_sha256_hex(b->f[i].data, b->f[i].len, hex);
        len += (size_t)snprintf(m + len, cap - len, "%s  %s\n", hex, bundle_names[i]);
    }
    set_file(b, MANIFEST, m, len);
    return WR_OK;
}

/* Exported by whoever may read the server key: the signature binds the
 * unsigned pieces (decision, contract) to this server, not just to a hash. */
static int sign_manifest(bundle *b, const char *state_dir, wr_error *err)
{
    wr_keypair kp;
    int rc = wr_server_key_load(state_dir, &kp, err);
    if (rc)
        return rc;
    bfile *m = file(b, MANIFEST);
    char *sig = wr_sign_b64(&kp, m->data, m->len);
    wr_keypair_wipe(&kp);
    size_t n = sig ? strlen(sig) : 0;
    char *text = sig ? realloc(sig, n + 2) : NULL;
    if (!text) {
        free(sig);
        return wr_errorf(err, WR_E_NOMEM, MANIFEST_SIG, "out of memory");
    }
    memcpy(text + n, "\n", 2);
    set_file(b, MANIFEST_SIG, text, n + 1);
    return WR_OK;
}

static int write_archive(const bundle *b, const char *path, int64_t mtime_s, wr_error *err)
{
    struct archive *a = archive_write_new();
    if (!a)
        return wr_errorf(err, WR_E_NOMEM, path, "out of memory");
    int rc = WR_OK;
    if (archive_write_add_filter_gzip(a) != ARCHIVE_OK || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_open_filename(a, path) != ARCHIVE_OK)
        rc = wr_errorf(err, WR_E_IO, path, "cannot write bundle %s: %s", path, archive_error_string(a));
    for (size_t i = 0; rc == WR_OK && i < NFILES; i++) {
        if (!b->f[i].data)
            continue;
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, bundle_names[i]);
        archive_entry_set_size(e, (la_int64_t)b->f[i].len);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, mtime_s, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            (b->f[i].len && archive_write_data(a, b->f[i].data, b->f[i].len) != (la_ssize_t)b->f[i].len))
            rc = wr_errorf(err, WR_E_IO, path, "cannot write %s into %s: %s", bundle_names[i], path,
                           archive_error_string(a));
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK && rc == WR_OK)
        rc = wr_errorf(err, WR_E_IO, path, "cannot finish bundle %s: %s", path, archive_error_string(a));
    archive_write_free(a);
    return rc;
}

int wr_bundle_export(wr_store *st, const char *execution_id, const char *out_path, wr_error *err)
{
    if (!st || !execution_id || !*execution_id || !out_path || !*out_path)
        return wr_errorf(err, WR_E_INVALID, "", "export: missing store, execution id or output path");
    bundle b = {0};
    json_object *receipt = NULL;
    int rc = collect(st, execution_id, &b, &receipt, err);
    if (rc == WR_OK)
        rc = make_manifest(&b, err);
    if (rc == WR_OK)
        rc = sign_manifest(&b, wr_store_dir(st), err);
    /* The receipt's own end time: the same execution exports to the same bytes. */
    int64_t ended = 0;
    if (rc == WR_OK && wr_receipt_str(receipt, "ended_at"))
        wr_time_parse(wr_receipt_str(receipt, "ended_at"), &ended, NULL);
    char tmp[4096];
    if (rc == WR_OK && snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid()) >= (int)sizeof tmp)
        rc = wr_errorf(err, WR_E_INVALID, out_path, "output path is too long");
    if (rc == WR_OK) {
        rc = write_archive(&b, tmp, ended / 1000, err);
        /* Complete or absent: never a half-written bundle under the real name. */
        if (rc == WR_OK && rename(tmp, out_path) != 0)
            rc = wr_errorf(err, WR_E_IO, out_path, "cannot create %s", out_path);
        if (rc)
            unlink(tmp);
    }
    json_object_put(receipt);
    bundle_free(&b);
    return rc;
}

/* ---- verify ------------------------------------------------------------ */

static int read_bundle(const char *path, bundle *b, wr_error *err)
{
    struct archive *a = archive_read_new();
    if (!a)
        return wr_errorf(err, WR_E_NOMEM, path, "out of memory");
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    int rc = WR_OK;
    /* An unreadable path is bad input (exit 2); an unreadable archive is a
     * rejected bundle (exit 1). */
    if (access(path, R_OK) != 0)
        rc = wr_errorf(err, WR_E_IO, path, "cannot read bundle %s: %s", path, strerror(errno));
    else if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK)
        rc = wr_errorf(err, WR_E_INVALID, path, "not a valid bundle: %s", archive_error_string(a));
    struct archive_entry *e;
    while (rc == WR_OK) {
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar != ARCHIVE_OK) {
            rc = wr_errorf(err, WR_E_INVALID, path, "not a valid bundle: %s", archive_error_string(a));
            break;
        }
        const char *name = archive_entry_pathname(e);
        int idx = name ? name_index(name) : -1;
        la_int64_t size = archive_entry_size(e);
        if (idx < 0)
            rc = wr_errorf(err, WR_E_INVALID, path, "unexpected entry '%.100s' in bundle", name ? name : "");
        else if (archive_entry_filetype(e) != AE_IFREG)
            rc = wr_errorf(err, WR_E_INVALID, name, "%s: not a regular file in the bundle", name);
        else if (b->f[idx].data)
            rc = wr_errorf(err, WR_E_INVALID, name, "%s: appears twice in the bundle", name);
        else if (size < 0 || (uint64_t)size > BUNDLE_FILE_MAX)
            rc = wr_errorf(err, WR_E_LIMIT, name, "%s: too large", name);
        if (rc)
            break;
        unsigned char *data = malloc((size_t)size + 1);
        if (!data) {
            rc = wr_errorf(err, WR_E_NOMEM, name, "out of memory");
            break;
        }
        la_ssize_t got = size ? archive_read_data(a, data, (size_t)size) : 0;
        if (got != size) {
            free(data);
            rc = wr_errorf(err, WR_E_INVALID, name, "%s: truncated or unreadable in the bundle: %s", name,
                           archive_error_string(a));
            break;
        }
        data[size] = 0;
        b->f[idx].data = data;
        b->f[idx].len = (size_t)size;
    }
    archive_read_free(a);
    return rc;
}

static int check_manifest(bundle *b, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    bfile *m = file(b, MANIFEST), *sig = file(b, MANIFEST_SIG);
    if (!m->data)
        return wr_errorf(err, WR_E_INVALID, MANIFEST, "the bundle has no " MANIFEST);
    if (!sig->data)
        return wr_errorf(err, WR_E_INVALID, MANIFEST_SIG, "the bundle has no " MANIFEST_SIG);
    char b64[128] = "";
    if (sig->len < sizeof b64)
        memcpy(b64, sig->data, sig->len);
    b64[strcspn(b64, "\n")] = 0;
    if (!wr_verify_b64(pk, m->data, m->len, b64))
        return wr_errorf(err, WR_E_CRYPTO, MANIFEST_SIG,
                         MANIFEST_SIG ": the signature of " MANIFEST " does not verify with the trusted key");
    bool listed[NFILES] = {false};
    const char *p = (const char *)m->data, *end = p + m->len;
    for (int line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return wr_errorf(err, WR_E_INVALID, MANIFEST, MANIFEST " line %d: no newline at the end", line);
        char name[32] = "";
        size_t nlen = (size_t)(nl - p) > 66 ? (size_t)(nl - p) - 66 : 0;
        if ((size_t)(nl - p) < 67 || strspn(p, "0123456789abcdef") != 64 || p[64] != ' ' || p[65] != ' ' ||
            nlen >= sizeof name)
            return wr_errorf(err, WR_E_INVALID, MANIFEST, MANIFEST " line %d: not '<sha256>  <name>'", line);
        memcpy(name, p + 66, nlen);
        int idx = name_index(name);
        if (idx < 0 || !strncmp(name, MANIFEST, strlen(MANIFEST)))
            return wr_errorf(err, WR_E_INVALID, MANIFEST, MANIFEST " line %d: unexpected file name '%s'", line, name);
        if (listed[idx])
            return wr_errorf(err, WR_E_INVALID, MANIFEST, MANIFEST " lists %s twice", name);
        listed[idx] = true;
        if (!b->f[idx].data)
            return wr_errorf(err, WR_E_INVALID, name, "%s: listed in " MANIFEST " but missing from the bundle", name);
        char hex[WR_SHA256_HEX_LEN];
        wr_sha256_hex(b->f[idx].data, b->f[idx].len, hex);
        if (memcmp(hex, p, 64) != 0)
            return wr_errorf(err, WR_E_INVALID, name, "%s: sha256 %s does not match " MANIFEST " (%.64s)", name, hex,
                             p);
        p = nl + 1;
    }
    for (size_t i = 0; i < NFILES; i++)
        if (b->f[i].data && !listed[i] && strncmp(bundle_names[i], MANIFEST, strlen(MANIFEST)) != 0)
            return wr_errorf(err, WR_E_INVALID, bundle_names[i], "%s: not listed in " MANIFEST, bundle_names[i]);
    return WR_OK;
}

static json_object *parse_file(bundle *b, const char *name, wr_error *err)
{
    bfile *f = file(b, name);
    if (!f->data) {
        wr_errorf(err, WR_E_INVALID, name, "%s: missing from the bundle", name);
        return NULL;
    }
    wr_error inner = {0};
    json_object *o = wr_json_parse((const char *)f->data, f->len, NULL, &inner);
    if (!o)
        wr_errorf(err, WR_E_INVALID, name, "%s: not valid JSON: %s", name, inner.message);
    return o;
}

/* A hash the signed receipt names must be the hash of the file. */
static int check_hash(const char *name, const char *want, const char *have, wr_error *err)
{
    if (want && have && !strcmp(want, have))
        return WR_OK;
    return wr_errorf(err, WR_E_INVALID, name, "%s: sha256 %s does not match the receipt's %s", name, have,
                     want ? want : "(none)");
}

static int check_output(bundle *b, json_object *r, const char *name, const char *field, wr_error *err)
{
    const char *want = wr_receipt_str(r, field);
    bfile *f = file(b, name);
    if (!want && f->data)
        return wr_errorf(err, WR_E_INVALID, name, "%s: in the bundle, but the receipt has no %s", name, field);
    if (!want)
        return WR_OK;
    if (!f->data)
        return wr_errorf(err, WR_E_INVALID, name, "%s: missing from the bundle", name);
    char have[8 + WR_SHA256_HEX_LEN] = "sha256:";
    wr_sha256_hex(f->data, f->len, have + 7);
    return check_hash(name, want, have, err);
}

/* drop_nulls: contract hashes drop null members first, policy hashes do not (design.md). */
static int check_json_hash(bundle *b, const char *name, const char *want, bool drop_nulls, wr_error *err)
{
    json_object *o = parse_file(b, name, err);
    if (!o)
        return err && err->code ? err->code : WR_E_INVALID;
    char have[WR_SHA256_HEX_LEN];
    int rc = wr_canonical_sha256(o, drop_nulls, have, err);
    if (rc == WR_OK)
        rc = check_hash(name, want, have, err);
    json_object_put(o);
    return rc;
}

static int check_decision(bundle *b, json_object *r, wr_error *err)
{
    json_object *d = parse_file(b, "decision.json", err);
    if (!d)
        return err && err->code ? err->code : WR_E_INVALID;
    int rc = WR_OK;
    /* The decision is not signed by itself: it must agree with the receipt
     * on everything both state (and the manifest signature covers it). */
    static const char *const bound[] = {"contract_sha256", "contract_id", "decision", "policy_profile"};
    for (size_t i = 0; rc == WR_OK && i < sizeof bound / sizeof bound[0]; i++) {
        const char *dv = wr_receipt_str(d, bound[i]), *rv = wr_receipt_str(r, bound[i]);
        if (dv && rv && strcmp(dv, rv) != 0)
            rc = wr_errorf(err, WR_E_INVALID, "decision.json",
                           "decision.json: %s '%.80s' does not match the receipt's '%.80s'", bound[i], dv, rv);
    }
    json_object *codes = NULL;
    const char *code = wr_receipt_str(r, "reason_code");
    if (rc == WR_OK && code && json_object_object_get_ex(d, "reason_codes", &codes)) {
        bool found = false;
        for (size_t i = 0; json_object_is_type(codes, json_type_array) && i < json_object_array_length(codes); i++) {
            json_object *c = json_object_array_get_idx(codes, i);
            found |= json_object_is_type(c, json_type_string) && !strcmp(json_object_get_string(c), code);
        }
        if (!found)
            rc = wr_errorf(err, WR_E_INVALID, "decision.json",
                           "decision.json: reason_codes do not include the receipt's reason_code '%.80s'", code);
    }
    json_object_put(d);
    return rc;
}

/* The approver's key: one the (hash-checked) policy lists for that
 * identity, or the server key itself for an in-band elicitation. */
static int approver_key(json_object *policy, json_object *artifact, const unsigned char server_pk[WR_PK_LEN],
                        unsigned char pk[WR_PK_LEN])
{
    json_object *sig = NULL, *approver = NULL, *list = NULL;
    json_object_object_get_ex(artifact, "signature", &sig);
    json_object_object_get_ex(artifact, "approver", &approver);
    const char *key_id = wr_receipt_str(sig, "key_id"), *identity = wr_receipt_str(approver, "identity");
    if (!key_id || !identity)
        return WR_E_NOTFOUND;
    char id[WR_KEY_ID_LEN];
    if (policy && json_object_object_get_ex(policy, "approvers", &list) && json_object_is_type(list, json_type_array))
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            json_object *a = json_object_array_get_idx(list, i);
            const char *ident = wr_receipt_str(a, "identity"), *text = wr_receipt_str(a, "public_key");
            if (!ident || !text || strcmp(ident, identity) != 0 || wr_pubkey_parse(text, pk, NULL) != WR_OK)
                continue;
            wr_key_id(pk, id);
            if (!strcmp(id, key_id))
                return WR_OK;
        }
    const char *method = wr_receipt_str(approver, "method");
    wr_key_id(server_pk, id);
    if (method && !strcmp(method, "elicitation") && !strcmp(id, key_id)) {
        memcpy(pk, server_pk, WR_PK_LEN);
        return WR_OK;
    }
    return WR_E_NOTFOUND;
}

static int check_one_approval(json_object *used, json_object *artifacts, json_object *policy, json_object *r,
                              const unsigned char server_pk[WR_PK_LEN], wr_error *err)
{
    const char *id = wr_receipt_str(used, "approval_id");
    json_object *art = NULL;
    for (size_t j = 0; id && j < json_object_array_length(artifacts); j++) {
        const char *aid = wr_receipt_str(json_object_array_get_idx(artifacts, j), "approval_id");
        if (aid && !strcmp(id, aid))
            art = json_object_array_get_idx(artifacts, j);
    }
    if (!art)
        return wr_errorf(err, WR_E_INVALID, "approvals.json",
                         "approvals.json: approval '%.80s' used by the receipt is missing", id ? id : "");
    const char *csha = wr_receipt_str(art, "contract_sha256");
    if (!csha || strcmp(csha, wr_receipt_str(r, "contract_sha256")) != 0)
        return wr_errorf(err, WR_E_INVALID, "approvals.json",
                         "approvals.json: approval '%.80s' is for another contract", id);
    unsigned char pk[WR_PK_LEN];
    if (approver_key(policy, art, server_pk, pk) != WR_OK)
        return wr_errorf(err, WR_E_CRYPTO, "approvals.json",
                         "approvals.json: approval '%.80s' is not signed by a key the policy lists for its approver",
                         id);
    wr_error inner = {0};
    if (wr_signed_object_verify(art, pk, &inner) != WR_OK)
        return wr_errorf(err, WR_E_CRYPTO, "approvals.json", "approvals.json: approval '%.80s': %s", id, inner.message);
    json_object *sig = NULL;
    json_object_object_get_ex(art, "signature", &sig);
    const char *rk = wr_receipt_str(used, "key_id");
    if (rk && strcmp(rk, wr_receipt_str(sig, "key_id")) != 0)
        return wr_errorf(err, WR_E_INVALID, "approvals.json",
                         "approvals.json: approval '%.80s' is signed by another key than the receipt records", id);
    return WR_OK;
}

static int check_approvals(bundle *b, json_object *r, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    json_object *used = NULL;
    json_object_object_get_ex(r, "approvals", &used);
    size_t n = json_object_is_type(used, json_type_array) ? json_object_array_length(used) : 0;
    if (n == 0 && !file(b, "approvals.json")->data)
        return WR_OK;
    json_object *arts = parse_file(b, "approvals.json", err);
    if (!arts)
        return err && err->code ? err->code : WR_E_INVALID;
    json_object *policy = file(b, "policy.json")->data ? parse_file(b, "policy.json", err) : NULL;
    int rc = WR_OK;
    if (!json_object_is_type(arts, json_type_array) || json_object_array_length(arts) != n)
        rc = wr_errorf(err, WR_E_INVALID, "approvals.json",
                       "approvals.json: holds other artifacts than the %zu approval(s) the receipt used", n);
    for (size_t i = 0; rc == WR_OK && i < n; i++)
        rc = check_one_approval(json_object_array_get_idx(used, i), arts, policy, r, pk, err);
    json_object_put(policy);
    json_object_put(arts);
    return rc;
}

/* Both or neither (a bundle from before the log); the signed manifest
 * already vouches for which files the exporter put in. */
static int check_log(bundle *b, json_object *r, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    bfile *cf = file(b, CHECKPOINT_FILE);
    if (!cf->data && !file(b, PROOF_FILE)->data)
        return WR_OK;
    json_object *pj = parse_file(b, PROOF_FILE, err);
    if (!pj)
        return err && err->code ? err->code : WR_E_INVALID;
    wr_checkpoint cp;
    wr_merkle_proof proof;
    int64_t index = 0, size = 0;
    char *note = cf->data ? strndup((const char *)cf->data, cf->len) : NULL;
    int rc = note ? wr_checkpoint_verify(note, pk, NULL, &cp, err) : wr_errorf(err, WR_E_INVALID, "", "missing");
    if (rc)
        wr_error_prefix(err, CHECKPOINT_FILE);
    if (rc == WR_OK && (rc = wr_proof_from_json(pj, WR_TREE_INCLUSION, &index, &size, &proof, err)) == WR_OK)
        rc = wr_receipt_verify_inclusion(r, &cp, index, size, &proof, err);
    if (rc && note)
        wr_error_prefix(err, PROOF_FILE);
    free(note);
    json_object_put(pj);
    return rc;
}

static int check_contents(bundle *b, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    bfile *kf = file(b, PUBKEY_FILE);
    if (!kf->data)
        return wr_errorf(err, WR_E_INVALID, PUBKEY_FILE, PUBKEY_FILE ": missing from the bundle");
    unsigned char bpk[WR_PK_LEN];
    char want[WR_KEY_ID_LEN], have[WR_KEY_ID_LEN];
    wr_key_id(pk, want);
    if (wr_pubkey_parse((const char *)kf->data, bpk, NULL) != WR_OK)
        return wr_errorf(err, WR_E_INVALID, PUBKEY_FILE, PUBKEY_FILE ": not a public key");
    wr_key_id(bpk, have);
    if (memcmp(bpk, pk, WR_PK_LEN) != 0)
        return wr_errorf(err, WR_E_CRYPTO, PUBKEY_FILE, PUBKEY_FILE ": key id %s is not the trusted key %s", have,
                         want);

    json_object *r = parse_file(b, "receipt.json", err);
    if (!r)
        return err && err->code ? err->code : WR_E_INVALID;
    wr_error inner = {0};
    int rc = wr_receipt_verify(r, pk, &inner);
    if (rc)
        wr_errorf(err, rc, "receipt.json", "receipt.json: %s%s%s", inner.path, inner.path[0] ? ": " : "",
                  inner.message);
    /* A decision was made, so the gate had stored the contract and decision. */
    bool decided = wr_receipt_str(r, "decision") != NULL;
    if (rc == WR_OK && (decided || file(b, "contract.json")->data))
        rc = check_json_hash(b, "contract.json", wr_receipt_str(r, "contract_sha256"), true, err);
    if (rc == WR_OK && (decided || file(b, "decision.json")->data))
        rc = check_decision(b, r, err);
    if (rc == WR_OK && (wr_receipt_str(r, "policy_sha256") || file(b, "policy.json")->data))
        rc = check_json_hash(b, "policy.json", wr_receipt_str(r, "policy_sha256"), false, err);
    if (rc == WR_OK)
        rc = check_output(b, r, "stdout", "stdout_hash", err);
    if (rc == WR_OK)
        rc = check_output(b, r, "stderr", "stderr_hash", err);
    if (rc == WR_OK)
        rc = check_approvals(b, r, pk, err);
    if (rc == WR_OK)
        rc = check_log(b, r, pk, err);
    json_object_put(r);
    return rc;
}

int wr_bundle_verify(const char *path, const unsigned char pk[WR_PK_LEN], wr_error *err)
{
    if (!path || !*path || !pk)
        return wr_errorf(err, WR_E_INVALID, "", "verify bundle: missing path or key");
    bundle b = {0};
    int rc = read_bundle(path, &b, err);
    if (rc == WR_OK)
        rc = check_manifest(&b, pk, err);
    if (rc == WR_OK)
        rc = check_contents(&b, pk, err);
    bundle_free(&b);
    return rc;
}
