/* receipts — build, sign, store and verify CSC v0.1 execution receipts,
 * hash-chained per state dir; evidence bundles (libarchive).
 *
 * Signing payload (design.md): canonical JSON of the receipt with only
 * signature.signature removed, so algorithm, key_id and signed_at are
 * signed; Ed25519; byte-for-byte the CSC reference runner's rule. */
#ifndef WR_RECEIPTS_H
#define WR_RECEIPTS_H

#include "lib/lib.h"
#include "store/store.h"

/* The state dir's signing key: DIR/receipt-signing.key, created on first use
 * (dir 0700, key 0600). Refuses a key file that is group/world readable. */
int wr_server_key_load_or_create(const char *state_dir, const wr_ctx *ctx, wr_keypair *kp, wr_error *err);
/* Loads the state dir's signing key; never creates one. */
int wr_server_key_load(const char *state_dir, wr_keypair *kp, wr_error *err);
/* Loads the public half only (for `warrant pubkey`); never creates. */
int wr_server_pubkey_load(const char *state_dir, unsigned char pk[WR_PK_LEN], wr_error *err);

typedef struct wr_receipt_approval {
    const char *approval_id;
    const char *identity;
    const char *method; /* cli | api | manual | ticket | elicitation */
    const char *key_id;
    /* "approver_key" (signed by the approver's own key) or "client" (an
     * in-band answer the server recorded: no human key signed it) */
    const char *attestation;
} wr_receipt_approval;

typedef struct wr_receipt_artifact {
    const char *path;
    const char *sha256;
} wr_receipt_artifact;

/* Provenance of a capsule run, in the spirit of in-toto links: what went
 * in (the capsule file and each file in it) and what came out (each file
 * the run wrote, path relative to its output directory). */
typedef struct wr_receipt_provenance {
    const char *capsule_name, *capsule_version;
    const char *capsule_sha256; /* bare hex, of the .capsule file */
    const char *signer_key_id;  /* NULL: the capsule is unsigned */
    const wr_receipt_artifact *materials;
    size_t nmaterials;
    const wr_receipt_artifact *products; /* recorded only when something ran */
    size_t nproducts;
    const char *reproduces; /* execution id of the receipt this run re-runs, or NULL */
    bool reproduced;        /* with reproduces: the products equal the original's */
} wr_receipt_provenance;

/* Plain values: receipts/ does not depend on executor/ or policies/. */
typedef struct wr_receipt_input {
    const char *execution_id;
    const char *contract_id;
    const char *contract_sha256;
    const char *status; /* success | failed | blocked | expired */
    int64_t started_ms, ended_ms;
    bool has_exit_code;
    int exit_code;
    const char *error;                     /* NULL or text */
    const char *stdout_hash, *stderr_hash; /* bare hex of captured bytes, NULL if not run */
    bool stdout_truncated, stderr_truncated;
    const char *stdout_stream_sha256, *stderr_stream_sha256; /* bare hex, NULL if not run */
    uint64_t stdout_bytes, stderr_bytes;
    const wr_receipt_artifact *artifacts;
    size_t nartifacts;
    const wr_strv *completed_command_ids;
    const char *failed_command_id;
    bool network_used;
    json_object *network_egress; /* the egress proxy's record of hosts and refusals, or NULL */
    int secrets_used;
    const char *policy_profile;
    const char *policy_schema_version;
    const char *policy_sha256;
    const char *sandbox_profile_id; /* NULL when nothing ran */
    const char *sandbox_profile_sha256;
    json_object *isolation; /* wr_exec_isolation facts, or NULL when nothing was planned (borrowed) */
    const char *decision;   /* allow | deny | needs_approval */
    const char *reason_code;
    const wr_receipt_approval *approvals;
    size_t napprovals;
    const char *agent_id;
    const wr_receipt_provenance *provenance; /* NULL: not a capsule run */
} wr_receipt_input;

/* Builds the unsigned receipt JSON (CSC fields + documented extensions). */
json_object *wr_receipt_build(const wr_receipt_input *in);

/* The compiled superset receipt schema (caller frees): long-lived sealers
 * compile it once (~0.1 ms) and pass it to every wr_receipt_seal. */
wr_schema *wr_receipt_schema_new(wr_error *err);

/* Assigns seq and prev_receipt_sha256, signs with kp, checks the result
 * against schema (NULL: compiled for this call), and appends it to the
 * store durably (one transaction, shared with concurrent seals: group
 * commit). On success *signed_out is the signed receipt (new reference) —
 * only then may a caller show it to anyone. */
int wr_receipt_seal(wr_store *st, const wr_keypair *kp, const wr_ctx *ctx, const wr_schema *schema,
                    json_object *unsigned_receipt, const char *execution_id, json_object **signed_out, wr_error *err);
/* The same, with the run's captured output stored in the receipt's
 * transaction (NULL: none), signing unsigned_receipt itself: it takes the
 * caller's reference, which on success is *signed_out (no copy on the run's
 * path). */
int wr_receipt_seal_output(wr_store *st, const wr_keypair *kp, const wr_ctx *ctx, const wr_schema *schema,
                           json_object *unsigned_receipt, const char *execution_id, const wr_store_output *output,
                           json_object **signed_out, wr_error *err);

/* Signs a receipt object in place (adds "signature"); no store involved. */
int wr_receipt_sign(json_object *receipt, const wr_keypair *kp, const wr_ctx *ctx, wr_error *err);
/* Checks schema, key id and signature. WR_OK or WR_E_CRYPTO/WR_E_INVALID. */
int wr_receipt_verify(json_object *receipt, const unsigned char pk[WR_PK_LEN], wr_error *err);
/* The same for a key known by another id (a CSC signer names its keys as it
 * likes; CSC's verifier takes that id with --key-id): signature.key_id and
 * signing_key_id must equal key_id instead of pk's warrant key id. */
#define WR_RECEIPT_KEY_ID_MAX 128
int wr_receipt_verify_key_id(json_object *receipt, const unsigned char pk[WR_PK_LEN], const char *key_id,
                             wr_error *err);
/* sha256 (bare hex) of the canonical signed form: what the next receipt links to. */
int wr_receipt_hash(json_object *receipt, char out[WR_SHA256_HEX_LEN], wr_error *err);

/* Walk a chain: every receipt verifies, seq runs 1..n without gap or
 * duplicate, and each links to its predecessor. On failure err names the
 * seq and the reason. count_out may be NULL. */
int wr_chain_verify_store(wr_store *st, const unsigned char pk[WR_PK_LEN], int64_t *count_out, wr_error *err);
int wr_chain_verify_dir(const char *dir, const unsigned char pk[WR_PK_LEN], int64_t *count_out, wr_error *err);
/* Also holds the receipts against anchors (verified checkpoints): receipts
 * 1..size must exist and hash to root. The store walk does the same with
 * the stored checkpoints and the store's own tree. */
int wr_chain_verify_dir_anchored(const char *dir, const unsigned char pk[WR_PK_LEN], const wr_tree_head *anchors,
                                 size_t nanchors, int64_t *count_out, wr_error *err);

/* ---- the transparency log (docs/transparency-log.md) --------------------
 * Checkpoints are C2SP tlog-checkpoint notes (C2SP signed-note) of the
 * store's Merkle tree, signed by the server key; witnesses cosign them
 * (C2SP tlog-cosignature, cosignature/v1). */
#define WR_ORIGIN_LEN          64
#define WR_CHECKPOINT_MAX      16384 /* bytes of one note */
#define WR_CHECKPOINT_MAX_SIGS 32    /* signature lines (signed-note: at least 16) */
#define WR_PROOF_VERSION       "warrant.tlog-proof.v1"

typedef struct wr_checkpoint {
    char origin[WR_ORIGIN_LEN];
    int64_t size;
    wr_merkle_hash root;
    int64_t witness_time; /* of the verified cosignature (Unix seconds), 0 without a witness */
} wr_checkpoint;

/* The log's origin line and key name: "warrant/<key id of pk>". */
void wr_checkpoint_origin(const unsigned char pk[WR_PK_LEN], char out[WR_ORIGIN_LEN]);
/* The note for head, signed with kp (*note_out malloc'd). */
int wr_checkpoint_sign(const wr_keypair *kp, const wr_tree_head *head, char **note_out, wr_error *err);
/* Parses a note and checks the log's signature by pk; with witness_pk, also
 * a cosignature by that witness. WR_E_CRYPTO / WR_E_INVALID say why not. */
int wr_checkpoint_verify(const char *note, const unsigned char pk[WR_PK_LEN], const unsigned char *witness_pk,
                         wr_checkpoint *out, wr_error *err);
/* Checks the log's signature, then appends the witness's cosignature. */
int wr_checkpoint_cosign(const char *note, const unsigned char log_pk[WR_PK_LEN], const wr_keypair *witness,
                         const wr_ctx *ctx, char **note_out, wr_error *err);
/* The newest checkpoint, signing and storing one first when the tree has
 * grown past the newest stored. */
int wr_checkpoint_publish(wr_store *st, const wr_keypair *kp, const wr_ctx *ctx, char **note_out, wr_error *err);

/* Proof files: {"proof_version", "type": "inclusion" | "consistency",
 * "leaf_index" | "old_size", "tree_size", "hashes": [base64...]}. kind is
 * WR_TREE_INCLUSION or WR_TREE_CONSISTENCY; arg the leaf index or old size. */
json_object *wr_proof_to_json(wr_tree_query kind, int64_t arg, int64_t size, const wr_merkle_proof *p);
int wr_proof_from_json(json_object *o, wr_tree_query kind, int64_t *arg, int64_t *size, wr_merkle_proof *p,
                       wr_error *err);

/* Is this (signature-checked) receipt leaf `index` of the checkpoint's
 * tree, by proof p for tree `size`? The leaf is its canonical JSON; index
 * must be seq - 1 and size the checkpoint's. WR_OK or why not. */
int wr_receipt_verify_inclusion(json_object *receipt, const wr_checkpoint *cp, int64_t index, int64_t size,
                                const wr_merkle_proof *p, wr_error *err);

/* Evidence bundle: contract, decision, approvals, receipt, stdout, stderr,
 * policy, public key and a manifest of sha256 sums, as tar.gz. */
int wr_bundle_export(wr_store *st, const char *execution_id, const char *out_path, wr_error *err);
int wr_bundle_verify(const char *path, const unsigned char pk[WR_PK_LEN], wr_error *err);

#endif
