/* capsules — signed, deterministic code + data bundles that anyone can
 * verify and re-run under policy (docs/capsules.md).
 *
 * A .capsule is a gzip'd POSIX tar written by libarchive with a canonical
 * layout, so the same tree packs to the same bytes on any machine:
 *   MANIFEST.json   canonical JSON (schemas/warrant.capsule.schema.json):
 *                   the author's capsule.yaml plus every file's size, sha256
 *                   and executable bit
 *   MANIFEST.sig    optional: Ed25519 signature of MANIFEST.json's bytes
 *   data/PATH       each file, sorted by path (byte order)
 * Entries are regular files only, owned by 0:0 with empty owner names,
 * modes 0644/0755, mtime 0, no extended attributes; gzip without name or
 * timestamp. Reading refuses anything else with one line: other entry types
 * (symlinks, devices, directories), absolute or non-normalised names,
 * duplicates, members out of order, sizes over the limits, and any
 * disagreement between the manifest and the members.
 *
 * Runs go through the gate like any contract: capsules/ only builds the
 * contract (the capsule directory read-only, the output directory writable,
 * the declared network and timeout) and records provenance. */
#ifndef WR_CAPSULES_H
#define WR_CAPSULES_H

#include <limits.h>

#include "gate/gate.h"

#define WR_CAPSULE_FORMAT          "warrant.capsule.v1"
#define WR_CAPSULE_MAX_FILES       10000
#define WR_CAPSULE_MAX_FILE_BYTES  (1ull << 30)
#define WR_CAPSULE_MAX_TOTAL_BYTES (4ull << 30)
#define WR_CAPSULE_MAX_PATH_BYTES  1024
#define WR_CAPSULE_MANIFEST_MAX    (4u << 20)
#define WR_CAPSULE_SPEC            "capsule.yaml" /* the author's description in DIR */
#define WR_CAPSULE_ENTRYPOINT_ID   "entrypoint"   /* command id of the entrypoint; steps keep theirs */

typedef struct wr_capsule_file {
    char *path; /* relative to the capsule root */
    uint64_t size;
    bool executable;
    char sha256[WR_SHA256_HEX_LEN];
} wr_capsule_file;

typedef struct wr_capsule {
    json_object *manifest; /* validated (owned) */
    const char *name, *version;
    wr_capsule_file *files; /* sorted by path */
    size_t nfiles;
    char sha256[WR_SHA256_HEX_LEN];          /* of the .capsule file */
    char manifest_sha256[WR_SHA256_HEX_LEN]; /* of MANIFEST.json */
    bool is_signed;
    char signer_key_id[WR_KEY_ID_LEN];
} wr_capsule;

/* Whether a relative member path is acceptable: non-empty, at most
 * WR_CAPSULE_MAX_PATH_BYTES, valid UTF-8 without control characters, no
 * leading "/", no empty, "." or ".." component. The one rule for archive
 * members, manifest files and declared outputs. */
bool wr_capsule_path_ok(const char *rel);

/* Packs DIR (which holds capsule.yaml) into out_path, atomically. signer may
 * be NULL (unsigned). Refuses symlinks, devices, FIFOs and sockets in DIR,
 * and files or totals over the limits. info (may be NULL) gets the result. */
int wr_capsule_pack(const char *dir, const char *out_path, const wr_keypair *signer, wr_capsule **info, wr_error *err);

/* Reads and checks a capsule in one pass: structure, every hash, and the
 * signature (against its embedded key; with trusted_pk, the signer must be
 * that key). With unpack_dir (which must not exist), the files are written
 * there as they are checked (directories created as needed); the caller
 * removes it on failure. WR_E_IO: the file could not be read; any other
 * error: the capsule is rejected. */
int wr_capsule_open(const char *path, const unsigned char *trusted_pk, const char *unpack_dir, wr_capsule **out,
                    wr_error *err);
void wr_capsule_free(wr_capsule *c);

typedef struct wr_capsule_run_opts {
    const char *capsule_path;
    const unsigned char *trusted_pk; /* NULL: any signer, or unsigned */
    const char *out_dir;             /* NULL: a fresh private directory */
    const char *agent_id;            /* actor.agent_id of the contract; NULL: "warrant-capsule" */
    const char *client_identity;     /* as wr_run_request (NULL: local CLI) */
    json_object *const *approvals;
    size_t napprovals;
    int64_t wait_for_approval_ms;
    wr_gate_output_fn on_output;
    void *ud;
    int cancel_fd;
    /* warrant reproduce: the original signed receipt (already verified by
     * the caller); its capsule sha256 must match, its products are compared. */
    json_object *original;
} wr_capsule_run_opts;

typedef struct wr_capsule_outcome {
    wr_run_outcome run;
    char out_dir[PATH_MAX]; /* where the products are */
    /* With opts->original: whether the products equal the original's, and
     * otherwise one line per difference ("differs PATH", "missing PATH",
     * "extra PATH"). */
    bool reproduced;
    wr_strv differences;
} wr_capsule_outcome;

/* Verifies and unpacks (into a private, read-only, content-addressed
 * directory), builds the contract and runs it through the gate, which seals
 * a receipt with the capsule, its materials and, when it ran, its products.
 * Returns WR_OK whenever a receipt was sealed; otherwise err says why
 * (WR_E_IO: unreadable input; other codes: the capsule or a path was
 * refused before anything was evaluated). */
int wr_capsule_run(wr_gate *g, const wr_capsule_run_opts *o, wr_capsule_outcome *out, wr_error *err);
void wr_capsule_outcome_clear(wr_capsule_outcome *o);

#endif
