/* lib — the foundation every warrant module shares: errors, the context that
 * carries time and randomness, bounded JSON parsing, canonical JSON and
 * hashes, base64, Ed25519 keys, RFC 3339 time and the JSON Schema validator.
 *
 * Conventions (docs/architecture.md): functions that can fail return an
 * `int` status (WR_OK or a wr_code) and fill a caller-owned wr_error; strings
 * returned as `char *` are malloc'd and owned by the caller. */
#ifndef WR_LIB_H
#define WR_LIB_H

#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------ */
enum wr_code {
    WR_OK = 0,
    WR_E_INVALID, /* bad input: syntax, schema, limits */
    WR_E_NOMEM,
    WR_E_IO, /* file or database I/O */
    WR_E_NOTFOUND,
    WR_E_DENIED,   /* refused by policy, permissions or authentication */
    WR_E_CONFLICT, /* already exists / already consumed / concurrent change */
    WR_E_LIMIT,    /* a size, depth or count limit was exceeded */
    WR_E_CRYPTO,   /* signature or key problem */
    WR_E_VERSION,  /* written by a newer version */
    WR_E_INTERNAL,
};

typedef struct wr_error {
    int code;          /* enum wr_code */
    char path[256];    /* JSON pointer or file path of the failing item, may be "" */
    char message[768]; /* one human line, no trailing newline */
} wr_error;

/* Sets err (if not NULL) and returns code, so callers can
 * `return wr_errorf(err, WR_E_INVALID, "/commands/0", "…", …);` */
int wr_errorf(wr_error *err, int code, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void wr_error_clear(wr_error *err);
/* Prefixes err->message with "prefix: " (for adding context on the way up). */
void wr_error_prefix(wr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *wr_code_name(int code);

/* ---- context: time, randomness, logging --------------------------------
 * No module reads the clock or the RNG directly: tests fix them here. */
enum wr_log_level {
    WR_LOG_DEBUG = 0,
    WR_LOG_INFO,
    WR_LOG_NOTICE,
    WR_LOG_WARNING,
    WR_LOG_ERROR
};

typedef struct wr_ctx {
    int64_t (*now_ms)(void *ud);                     /* Unix time, milliseconds */
    void (*random)(void *ud, void *buf, size_t len); /* cryptographic randomness */
    void *ud;
    int log_level; /* messages below this level are dropped */
    bool log_json; /* one JSON object per line instead of a human line */
} wr_ctx;

/* The real clock, libsodium's RNG, log level info. */
wr_ctx wr_ctx_system(void);
int64_t wr_now_ms(const wr_ctx *ctx);
void wr_random(const wr_ctx *ctx, void *buf, size_t len);
/* What a log line is about, for log shippers; any member may be NULL.
 * Never put a token, a secret or command output here. */
typedef struct wr_log_fields {
    const char *event;        /* dotted name: "run.sealed", "http.refused" */
    const char *identity;     /* the authenticated client or approver */
    const char *request_id;   /* JSON-RPC id or approval request id */
    const char *execution_id; /* the receipt's execution */
    const char *outcome;      /* status, decision or refusal cause */
} wr_log_fields;

/* One line on stderr: `ts level component: message [key=value ...]`, or with
 * ctx->log_json one JSON object {time, level, component, event, identity,
 * request_id, execution_id, outcome, message}. */
void wr_log(const wr_ctx *ctx, int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void wr_log_event(const wr_ctx *ctx, int level, const char *component, const wr_log_fields *fields, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

/* An unguessable identifier: prefix followed by 32 lowercase hex digits
 * (128 random bits). out must hold strlen(prefix) + 33 bytes. */
#define WR_ID_MAX 64
void wr_random_id(const wr_ctx *ctx, const char *prefix, char *out, size_t outlen);

/* ---- time (RFC 3339) --------------------------------------------------- */
#define WR_TIME_LEN 32
/* "2026-11-22T05:03:14.123Z" (UTC, milliseconds). */
void wr_time_format(int64_t unix_ms, char out[WR_TIME_LEN]);
/* Accepts RFC 3339 date-time with 'Z' or ±hh:mm offset and optional
 * fraction; rejects anything else (also invalid dates like 02-30). */
int wr_time_parse(const char *s, int64_t *unix_ms, wr_error *err);

/* ---- bounded JSON parsing ---------------------------------------------- */
typedef struct wr_json_limits {
    size_t max_bytes; /* whole document */
    int max_depth;    /* nesting of arrays/objects */
} wr_json_limits;
#define WR_JSON_DEFAULT_MAX_BYTES (4u * 1024u * 1024u)
#define WR_JSON_DEFAULT_MAX_DEPTH 64

/* Parses exactly one JSON value from buf (surrounding whitespace allowed,
 * anything else after it is an error). Rejects invalid UTF-8, NUL bytes,
 * documents over the limits and objects with duplicate keys (json-c would
 * silently keep the last one: a parser differential an attacker could use).
 * limits may be NULL for the defaults. Returns a new reference or NULL. */
json_object *wr_json_parse(const char *buf, size_t len, const wr_json_limits *limits, wr_error *err);
/* The same, for many documents in turn by one thread: the parser keeps its
 * buffers and json-c tokener between documents (a session's messages). */
typedef struct wr_json_parser wr_json_parser;
wr_json_parser *wr_json_parser_new(const wr_json_limits *limits, wr_error *err);
json_object *wr_json_parser_parse(wr_json_parser *p, const char *buf, size_t len, wr_error *err);
void wr_json_parser_free(wr_json_parser *p);
/* Gives back a tree that p returned, for p to read its next document into
 * where the two have the same shape (keys, types, lengths) instead of
 * building another: a chain walk parses thousands of receipts alike, and
 * building and freeing json-c's objects was most of each parse. The caller
 * must hold the only reference to tree and keep no pointer into it; the
 * next parse (or wr_json_parser_free) consumes it, used or not. */
void wr_json_parser_recycle(wr_json_parser *p, json_object *tree);
/* wr_json_parser_parse that also sets *canonical when buf is byte for
 * byte wr_canonical_json(result, false), so that a signed document kept in
 * that form can be hashed and verified as read. Decided from the tokens and
 * conservatively: "false" may also mean "not proven" (a fraction, an
 * escape in a key), never the other way round. */
json_object *wr_json_parser_parse_canonical(wr_json_parser *p, const char *buf, size_t len, bool *canonical,
                                            wr_error *err);
/* Reads a file (refusing more than limits->max_bytes) and parses it. */
json_object *wr_json_read_file(const char *path, const wr_json_limits *limits, wr_error *err);
/* Reads a whole file into a NUL-terminated buffer, refusing more than max_bytes. */
int wr_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, wr_error *err);
/* The same for name in the directory open as dirfd (no walk down the
 * directory's own path for each of many files; errors name it as path),
 * into *buf of *cap bytes, grown as needed and kept by the caller for the
 * next file (who frees it, whatever the outcome). */
int wr_read_file_into(int dirfd, const char *name, const char *path, size_t max_bytes, char **buf, size_t *cap,
                      size_t *len, wr_error *err);
/* Writes a file atomically: temp file in the same directory, fsync, rename,
 * fsync of the directory. mode is the new file's permission bits. */
int wr_write_file_atomic(const char *path, const void *buf, size_t len, unsigned mode, wr_error *err);
bool wr_utf8_valid(const char *s, size_t len);

/* ---- canonical JSON and hashes -----------------------------------------
 * The one canonical form (design.md): keys sorted by code point, no spaces,
 * literal UTF-8, short escapes, \u00XX lowercase for other controls, "/"
 * unescaped — byte-identical to Python's
 * json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False).
 * drop_nulls removes object members whose value is null (contract hashing). */
char *wr_canonical_json(json_object *obj, bool drop_nulls, size_t *len_out, wr_error *err);
#define WR_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */
void wr_sha256_hex(const void *data, size_t len, char out[WR_SHA256_HEX_LEN]);
/* SHA-256 for many inputs in turn by one thread: OpenSSL's digest fetched
 * once and one context reused (EVP_sha256() makes OpenSSL 3 fetch it again
 * on every call). Functions taking a wr_hasher accept NULL: a one-shot
 * hash, as when wr_hasher_new found no memory. */
typedef struct wr_hasher wr_hasher;
wr_hasher *wr_hasher_new(void);
void wr_hasher_free(wr_hasher *h);
void wr_hasher_sha256_hex(wr_hasher *h, const void *data, size_t len, char out[WR_SHA256_HEX_LEN]);
int wr_canonical_sha256(json_object *obj, bool drop_nulls, char out[WR_SHA256_HEX_LEN], wr_error *err);
/* Compact serialisation for the wire (json-c, no escaping of "/"). */
const char *wr_json_compact(json_object *obj);

/* Compact JSON text written piece by piece: answers that are only ever
 * sent are written so, not built as a json-c tree that is then printed
 * and freed (that was a tenth of a `check`). Strings are escaped as the
 * canonical form and wr_json_compact both escape them. A failed
 * allocation sets oom; the writes after it do nothing. */
typedef struct wr_jtext {
    char *p;
    size_t len, cap;
    bool oom;
} wr_jtext;
void wr_jtext_put(wr_jtext *t, const char *s, size_t n);
void wr_jtext_lit(wr_jtext *t, const char *s); /* JSON text (syntax, a value) as it is */
void wr_jtext_str(wr_jtext *t, const char *s); /* s as a JSON string */
/* The NUL-terminated text for the caller to free, or NULL after a failed
 * allocation; t is empty again either way. */
char *wr_jtext_take(wr_jtext *t);
/* A json-c value that wr_json_compact (and any json-c serialisation)
 * writes as text, which is compact JSON already (from wr_jtext_take; the
 * value owns it from here on, a run's output is not copied again, and
 * wr_json_compact returns it as is); NULL without memory (text freed). For
 * answers that are only sent: its type and contents are not the JSON's
 * (wr_canonical_json refuses it). */
json_object *wr_json_raw(char *text);

/* ---- Merkle tree (RFC 9162 §2.1) ---------------------------------------
 * Leaf hash SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right),
 * the empty tree's hash SHA-256(""). Leaves are numbered from 0. Storage is
 * the caller's: it keeps the hash of every complete, aligned subtree (level
 * l, index i covers leaves [i·2^l, (i+1)·2^l)), which is all a root or proof
 * of any size up to the tree's needs (the model of Go's tlog storage). */
#define WR_MERKLE_HASH_LEN  32
#define WR_MERKLE_MAX_PROOF 64 /* ample for any tree below 2^62 leaves */
typedef unsigned char wr_merkle_hash[WR_MERKLE_HASH_LEN];
typedef struct wr_merkle_proof {
    size_t n;
    wr_merkle_hash h[WR_MERKLE_MAX_PROOF];
} wr_merkle_proof;

/* Reads the stored hash of the complete subtree (level, index). */
typedef int (*wr_merkle_read_fn)(void *ud, int level, int64_t index, wr_merkle_hash out, wr_error *err);
typedef int (*wr_merkle_write_fn)(void *ud, int level, int64_t index, const wr_merkle_hash h, wr_error *err);

void wr_merkle_leaf_hash(const void *leaf, size_t len, wr_merkle_hash out);
void wr_hasher_merkle_leaf(wr_hasher *h, const void *leaf, size_t len, wr_merkle_hash out);
void wr_merkle_node_hash(const wr_merkle_hash left, const wr_merkle_hash right, wr_merkle_hash out);
/* Adds leaf number index (the tree holds leaves 0..index-1): writes its
 * hash and those of the subtrees it completes, at most log2(n) + 1 writes
 * and log2(n) reads, so a batch of appends in one transaction stays cheap. */
int wr_merkle_append(wr_merkle_read_fn rd, wr_merkle_write_fn wr, void *ud, int64_t index, const wr_merkle_hash leaf,
                     wr_error *err);
int wr_merkle_root(wr_merkle_read_fn rd, void *ud, int64_t size, wr_merkle_hash out, wr_error *err);
/* RFC 9162 §2.1.3.1 PATH(index, D[size]) and §2.1.4.1 PROOF(old, D[size]). */
int wr_merkle_prove_inclusion(wr_merkle_read_fn rd, void *ud, int64_t index, int64_t size, wr_merkle_proof *out,
                              wr_error *err);
int wr_merkle_prove_consistency(wr_merkle_read_fn rd, void *ud, int64_t old_size, int64_t size, wr_merkle_proof *out,
                                wr_error *err);
/* RFC 9162 §2.1.3.2 and §2.1.4.2: WR_OK, or WR_E_CRYPTO saying what failed. */
int wr_merkle_verify_inclusion(const wr_merkle_hash leaf, int64_t index, int64_t size, const wr_merkle_proof *p,
                               const wr_merkle_hash root, wr_error *err);
int wr_merkle_verify_consistency(int64_t old_size, int64_t size, const wr_merkle_hash old_root,
                                 const wr_merkle_hash root, const wr_merkle_proof *p, wr_error *err);

/* The root of leaves appended one by one, without storage (a verifier
 * walking an exported directory): one hash per set bit of the size.
 * hasher (NULL: one-shot hashes) hashes the nodes, one per leaf on average. */
typedef struct wr_merkle_range {
    int64_t size;
    int n;
    wr_merkle_hash h[WR_MERKLE_MAX_PROOF];
    wr_hasher *hasher;
} wr_merkle_range;
void wr_merkle_range_append(wr_merkle_range *r, const wr_merkle_hash leaf);
void wr_merkle_range_root(const wr_merkle_range *r, wr_merkle_hash out);

/* ---- base64 (standard alphabet, padded) -------------------------------- */
char *wr_base64_encode(const unsigned char *data, size_t len);
/* Accepts padded or unpadded standard base64; ignores nothing else. */
int wr_base64_decode(const char *b64, unsigned char *out, size_t outmax, size_t *outlen, wr_error *err);

/* ---- Ed25519 keys ------------------------------------------------------
 * Files are PEM (PKCS#8 private, SubjectPublicKeyInfo public) so that
 * `openssl pkey` reads them; raw base64 (32-byte seed or public key, or the
 * 64-byte libsodium secret key) is accepted on input too. */
#define WR_PK_LEN     32
#define WR_SK_LEN     64
#define WR_KEY_ID_LEN 17 /* 16 hex digits + NUL */
typedef struct wr_keypair {
    unsigned char pk[WR_PK_LEN];
    unsigned char sk[WR_SK_LEN]; /* libsodium form: seed || pk */
    char key_id[WR_KEY_ID_LEN];
} wr_keypair;

/* key_id = first 16 hex digits of sha256(raw 32-byte public key). */
void wr_key_id(const unsigned char pk[WR_PK_LEN], char out[WR_KEY_ID_LEN]);
int wr_key_generate(const wr_ctx *ctx, wr_keypair *kp, wr_error *err);
/* Writes NAME.key (0600, PKCS#8 PEM) and NAME.pub (0644, SPKI PEM). */
int wr_key_write_pair(const wr_keypair *kp, const char *name, wr_error *err);
int wr_key_write_secret(const wr_keypair *kp, const char *path, wr_error *err);
/* Loads a private key file; refuse_loose_perms refuses a file that is group
 * or world readable (the server key). */
int wr_key_load_secret(const char *path, bool refuse_loose_perms, wr_keypair *kp, wr_error *err);
/* Parses a public key given as PEM text or raw base64. */
int wr_pubkey_parse(const char *text, unsigned char pk[WR_PK_LEN], wr_error *err);
/* A public key file: PEM, base64, or the 32 raw bytes (as CSC keeps them). */
int wr_pubkey_load(const char *path, unsigned char pk[WR_PK_LEN], wr_error *err);
char *wr_pubkey_pem(const unsigned char pk[WR_PK_LEN]);
/* Detached signature, base64-encoded. */
char *wr_sign_b64(const wr_keypair *kp, const void *msg, size_t len);
bool wr_verify_b64(const unsigned char pk[WR_PK_LEN], const void *msg, size_t len, const char *sig_b64);
/* Wipes secret material. */
void wr_keypair_wipe(wr_keypair *kp);

/* ---- JSON Schema (draft 2020-12 subset) --------------------------------
 * Keywords: type, enum, const, required, properties, additionalProperties,
 * patternProperties, minProperties, maxProperties,
 * items, prefixItems, minItems, maxItems, uniqueItems, minLength, maxLength,
 * pattern (PCRE2, compiled once), minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum, multipleOf, anyOf, oneOf, allOf, not, if/then/else,
 * $ref ("#<JSON pointer>" in the current resource, "URI#..." to a subschema
 * of this document whose $id is URI: embedded resources resolve their own
 * "#/$defs/..."), format date-time. Unknown keywords are annotations;
 * other standard assertion keywords (contains, dependentRequired, ...) make
 * wr_schema_new fail rather than being silently ignored.
 * Network $refs are never dereferenced. */
typedef struct wr_schema wr_schema;
/* Compiles a schema document (takes its own reference to root). */
wr_schema *wr_schema_new(json_object *root, wr_error *err);
wr_schema *wr_schema_parse(const char *text, wr_error *err);
void wr_schema_free(wr_schema *s);
/* WR_OK, or WR_E_INVALID with err->path = JSON pointer of the failing value
 * and err->message naming the keyword, e.g. "/commands/0/timeout_sec: 0 is
 * less than minimum 1". */
int wr_schema_validate(const wr_schema *s, json_object *instance, wr_error *err);

/* ---- small string vectors ---------------------------------------------- */
typedef struct wr_strv {
    char **v;
    size_t n;
} wr_strv;
int wr_strv_push(wr_strv *sv, const char *s);
bool wr_strv_contains(const wr_strv *sv, const char *s);
void wr_strv_free(wr_strv *sv);
/* Copies a JSON array of strings; fails on any non-string element. */
int wr_strv_from_json(json_object *arr, wr_strv *out, wr_error *err);
json_object *wr_strv_to_json(const wr_strv *sv);

#endif
