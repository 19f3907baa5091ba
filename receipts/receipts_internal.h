/* receipts — private helpers shared by receipt.c, chain.c and bundle.c. */
#ifndef WR_RECEIPTS_INTERNAL_H
#define WR_RECEIPTS_INTERNAL_H

#include "receipts/receipts.h"

#define WR_RECEIPT_SCHEMA  "warrant.receipt.schema.json"
#define WR_ED25519_SIG_LEN 64

/* Everything needed to check many receipts against one key: the schema is
 * compiled once (a chain of 100 000 receipts must not recompile it). One
 * thread at a time: the hasher is reused from receipt to receipt. */
typedef struct wr_receipt_verifier {
    wr_schema *schema;
    wr_hasher *hasher;
    unsigned char pk[WR_PK_LEN];
    char key_id[WR_RECEIPT_KEY_ID_MAX + 1]; /* the signature's key_id must be this */
} wr_receipt_verifier;

int wr_receipt_verifier_init(wr_receipt_verifier *v, const unsigned char pk[WR_PK_LEN], wr_error *err);
void wr_receipt_verifier_clear(wr_receipt_verifier *v);
/* Schema, key id and signature of one receipt. */
int wr_receipt_verifier_check(const wr_receipt_verifier *v, json_object *receipt, wr_error *err);

/* The same check in two steps, so that a chain walk verifies a batch's
 * Ed25519 signatures back to back: interleaved with parsing and schema
 * checks, each verification runs markedly slower than in libsodium's own
 * loop (the other work evicts it from the caches). prepare checks all but
 * the signature and fills p; finish verifies it (and clears p, as clear
 * does when prepare failed or finish is not called). hash_out (may be
 * NULL) receives the receipt's chain hash (wr_receipt_hash), leaf_out (may
 * be NULL, else WR_MERKLE_HASH_LEN bytes) its Merkle leaf hash. text (may
 * be NULL) is the text receipt was parsed from, given only when
 * wr_json_parser_parse_canonical found it canonical: it is hashed as it is and the
 * signing payload is cut out of it in place. */
typedef struct wr_receipt_pending {
    const unsigned char *payload; /* the signing payload (in text or owned), NULL if the member was not found */
    size_t len;
    unsigned char sig[WR_ED25519_SIG_LEN + 1]; /* room for one byte too many, to refuse it */
    bool decoded;                              /* sig holds exactly WR_ED25519_SIG_LEN bytes */
    char *owned;                               /* the canonical form, when no text was given */
    char stray_key_id[65]; /* a signing_key_id naming another key, reported once the signature holds */
} wr_receipt_pending;

int wr_receipt_verifier_prepare(const wr_receipt_verifier *v, json_object *receipt, char *text, size_t text_len,
                                char hash_out[WR_SHA256_HEX_LEN], unsigned char *leaf_out, wr_receipt_pending *p,
                                wr_error *err);
int wr_receipt_pending_finish(const wr_receipt_verifier *v, wr_receipt_pending *p, wr_error *err);
void wr_receipt_pending_clear(wr_receipt_pending *p);

/* Verifies obj's Ed25519 signature object (receipt or approval artifact:
 * the payload is the canonical JSON of obj without signature.signature)
 * with pk. WR_E_CRYPTO with a precise reason on failure. */
int wr_signed_object_verify(json_object *obj, const unsigned char pk[WR_PK_LEN], wr_error *err);

/* wr_chain_verify_store and wr_chain_verify_dir_anchored with a given
 * number of worker threads (0 = one per online CPU), so the benchmark can
 * set the single-threaded rate beside single-threaded libsodium. */
int wr_chain_verify_store_workers(wr_store *st, const unsigned char pk[WR_PK_LEN], int workers, int64_t *count_out,
                                  wr_error *err);
int wr_chain_verify_dir_workers(const char *dir, const unsigned char pk[WR_PK_LEN], const wr_tree_head *anchors,
                                size_t nanchors, int workers, int64_t *count_out, wr_error *err);

/* Member accessors that tolerate a missing or mistyped member (NULL / 0). */
const char *wr_receipt_str(json_object *obj, const char *key);

#endif
