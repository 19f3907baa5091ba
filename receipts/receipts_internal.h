/* receipts — private helpers shared by receipt.c, chain.c and bundle.c. */
#ifndef WR_RECEIPTS_INTERNAL_H
#define WR_RECEIPTS_INTERNAL_H

#include "receipts/receipts.h"

#define WR_RECEIPT_SCHEMA "warrant.receipt.schema.json"

/* Everything needed to check many receipts against one key: the schema is
 * compiled once (a chain of 100 000 receipts must not recompile it). */
typedef struct wr_receipt_verifier {
    wr_schema *schema;
    unsigned char pk[WR_PK_LEN];
    char key_id[WR_RECEIPT_KEY_ID_MAX + 1]; /* the signature's key_id must be this */
} wr_receipt_verifier;

int wr_receipt_verifier_init(wr_receipt_verifier *v, const unsigned char pk[WR_PK_LEN], wr_error *err);
void wr_receipt_verifier_clear(wr_receipt_verifier *v);
/* Schema, key id and signature of one receipt; hash_out (may be NULL)
 * receives its chain hash (wr_receipt_hash), leaf_out (may be NULL, else
 * WR_MERKLE_HASH_LEN bytes) its Merkle leaf hash. text (may be NULL) is the
 * text receipt was parsed from: when it is the canonical signed form, as
 * stored and exported receipts are, no re-serialisation is needed. */
int wr_receipt_verifier_check(const wr_receipt_verifier *v, json_object *receipt, const char *text, size_t text_len,
                              char hash_out[WR_SHA256_HEX_LEN], unsigned char *leaf_out, wr_error *err);

/* Verifies obj's Ed25519 signature object (receipt or approval artifact:
 * the payload is the canonical JSON of obj without signature.signature)
 * with pk. WR_E_CRYPTO with a precise reason on failure. */
int wr_signed_object_verify(json_object *obj, const unsigned char pk[WR_PK_LEN], wr_error *err);

/* wr_chain_verify_store with a given number of worker threads (0 = one per
 * online CPU), so the benchmark can show the single-threaded rate too. */
int wr_chain_verify_store_workers(wr_store *st, const unsigned char pk[WR_PK_LEN], int workers, int64_t *count_out,
                                  wr_error *err);

/* Member accessors that tolerate a missing or mistyped member (NULL / 0). */
const char *wr_receipt_str(json_object *obj, const char *key);

#endif
