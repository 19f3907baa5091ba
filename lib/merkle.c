/* lib — the RFC 9162 §2.1 Merkle tree: hashing, append into caller-owned
 * storage of complete subtrees, roots, inclusion and consistency proofs and
 * their verification. Written from the RFC's definitions: MTH, PATH and
 * PROOF recurse over D[lo:hi) ranges, and every range they touch is either
 * a complete aligned subtree (read from storage) or splits at the largest
 * power of two below its size into one complete subtree and a smaller
 * range starting at an aligned offset, so storage of complete subtrees is
 * enough for any size up to the current one. */
#include <sodium.h>
#include <string.h>

#include "lib/lib_internal.h"

#define LEAF_PREFIX 0x00
#define NODE_PREFIX 0x01

void wr_merkle_leaf_hash(const void *leaf, size_t len, wr_merkle_hash out)
{
    wr_hasher_merkle_leaf(NULL, leaf, len, out);
}

void wr_hasher_merkle_leaf(wr_hasher *h, const void *leaf, size_t len, wr_merkle_hash out)
{
    static const unsigned char prefix = LEAF_PREFIX;
    wr_sha256_parts(h, &prefix, 1, leaf, len, NULL, 0, out);
}

static void node_hash(wr_hasher *h, const wr_merkle_hash left, const wr_merkle_hash right, wr_merkle_hash out)
{
    static const unsigned char prefix = NODE_PREFIX;
    wr_sha256_parts(h, &prefix, 1, left, WR_MERKLE_HASH_LEN, right, WR_MERKLE_HASH_LEN, out);
}

void wr_merkle_node_hash(const wr_merkle_hash left, const wr_merkle_hash right, wr_merkle_hash out)
{
    node_hash(NULL, left, right, out);
}

/* MTH({}) = SHA-256 of the empty string. */
static void empty_root(wr_merkle_hash out)
{
    crypto_hash_sha256(out, (const unsigned char *)"", 0);
}

static bool is_pow2(int64_t n)
{
    return n > 0 && (n & (n - 1)) == 0;
}

/* The largest power of two strictly below n (n >= 2): RFC 9162's k. */
static int64_t split_point(int64_t n)
{
    return (int64_t)1 << (63 - __builtin_clzll((unsigned long long)(n - 1)));
}

int wr_merkle_append(wr_merkle_read_fn rd, wr_merkle_write_fn wr, void *ud, int64_t index, const wr_merkle_hash leaf,
                     wr_error *err)
{
    if (index < 0)
        return wr_errorf(err, WR_E_INVALID, "", "merkle append: negative leaf index");
    wr_merkle_hash h;
    memcpy(h, leaf, sizeof h);
    int rc = wr(ud, 0, index, h, err);
    /* An odd index completes its parent: the left sibling is stored. */
    for (int level = 0; rc == WR_OK && (index & 1); level++, index >>= 1) {
        wr_merkle_hash left;
        if ((rc = rd(ud, level, index - 1, left, err)) != WR_OK)
            break;
        wr_merkle_node_hash(left, h, h);
        rc = wr(ud, level + 1, index >> 1, h, err);
    }
    return rc;
}

/* MTH(D[lo:hi]) for the ranges RFC 9162's recursions produce (see top). */
static int subtree(wr_merkle_read_fn rd, void *ud, int64_t lo, int64_t hi, wr_merkle_hash out, wr_error *err)
{
    int64_t n = hi - lo;
    if (is_pow2(n)) {
        int level = __builtin_ctzll((unsigned long long)n);
        if (lo & (n - 1))
            return wr_errorf(err, WR_E_INTERNAL, "", "merkle: unaligned subtree [%lld, %lld)", (long long)lo,
                             (long long)hi);
        return rd(ud, level, lo >> level, out, err);
    }
    int64_t k = split_point(n);
    wr_merkle_hash l, r;
    int rc = subtree(rd, ud, lo, lo + k, l, err);
    if (rc == WR_OK && (rc = subtree(rd, ud, lo + k, hi, r, err)) == WR_OK)
        wr_merkle_node_hash(l, r, out);
    return rc;
}

int wr_merkle_root(wr_merkle_read_fn rd, void *ud, int64_t size, wr_merkle_hash out, wr_error *err)
{
    if (size < 0)
        return wr_errorf(err, WR_E_INVALID, "", "merkle root: negative tree size");
    if (size == 0) {
        empty_root(out);
        return WR_OK;
    }
    return subtree(rd, ud, 0, size, out, err);
}

static int push(wr_merkle_proof *p, wr_merkle_read_fn rd, void *ud, int64_t lo, int64_t hi, wr_error *err)
{
    if (p->n == WR_MERKLE_MAX_PROOF)
        return wr_errorf(err, WR_E_LIMIT, "", "merkle proof longer than %d hashes", WR_MERKLE_MAX_PROOF);
    int rc = subtree(rd, ud, lo, hi, p->h[p->n], err);
    if (rc == WR_OK)
        p->n++;
    return rc;
}

/* PATH(m, D[lo:hi]): the sibling subtrees from the leaf up. */
static int path(wr_merkle_read_fn rd, void *ud, int64_t m, int64_t lo, int64_t hi, wr_merkle_proof *p, wr_error *err)
{
    if (hi - lo <= 1)
        return WR_OK;
    int64_t k = split_point(hi - lo);
    int rc = m < k ? path(rd, ud, m, lo, lo + k, p, err) : path(rd, ud, m - k, lo + k, hi, p, err);
    if (rc)
        return rc;
    return m < k ? push(p, rd, ud, lo + k, hi, err) : push(p, rd, ud, lo, lo + k, err);
}

int wr_merkle_prove_inclusion(wr_merkle_read_fn rd, void *ud, int64_t index, int64_t size, wr_merkle_proof *out,
                              wr_error *err)
{
    out->n = 0;
    if (index < 0 || index >= size)
        return wr_errorf(err, WR_E_INVALID, "", "inclusion proof: leaf %lld is not in a tree of size %lld",
                         (long long)index, (long long)size);
    return path(rd, ud, index, 0, size, out, err);
}

/* SUBPROOF(m, D[lo:hi], b). */
static int subproof(wr_merkle_read_fn rd, void *ud, int64_t m, int64_t lo, int64_t hi, bool whole, wr_merkle_proof *p,
                    wr_error *err)
{
    int64_t n = hi - lo;
    if (m == n)
        return whole ? WR_OK : push(p, rd, ud, lo, hi, err);
    int64_t k = split_point(n);
    int rc =
        m <= k ? subproof(rd, ud, m, lo, lo + k, whole, p, err) : subproof(rd, ud, m - k, lo + k, hi, false, p, err);
    if (rc)
        return rc;
    return m <= k ? push(p, rd, ud, lo + k, hi, err) : push(p, rd, ud, lo, lo + k, err);
}

int wr_merkle_prove_consistency(wr_merkle_read_fn rd, void *ud, int64_t old_size, int64_t size, wr_merkle_proof *out,
                                wr_error *err)
{
    out->n = 0;
    if (old_size < 0 || old_size > size)
        return wr_errorf(err, WR_E_INVALID, "", "consistency proof: size %lld does not extend size %lld",
                         (long long)size, (long long)old_size);
    /* Every tree extends the empty one and itself: nothing to prove. */
    if (old_size == 0 || old_size == size)
        return WR_OK;
    return subproof(rd, ud, old_size, 0, size, true, out, err);
}

static int mismatch(wr_error *err, const char *what)
{
    return wr_errorf(err, WR_E_CRYPTO, "", "%s", what);
}

/* Right-shifts fn and sn until fn's low bit is set or fn is 0 (both RFC
 * verification algorithms do this after hashing in a left sibling). */
static void shift_to_set_bit(int64_t *fn, int64_t *sn)
{
    while (!(*fn & 1) && *fn != 0) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

int wr_merkle_verify_inclusion(const wr_merkle_hash leaf, int64_t index, int64_t size, const wr_merkle_proof *p,
                               const wr_merkle_hash root, wr_error *err)
{
    if (index < 0 || index >= size)
        return mismatch(err, "inclusion proof: the leaf index is not below the tree size");
    int64_t fn = index, sn = size - 1;
    wr_merkle_hash r;
    memcpy(r, leaf, sizeof r);
    for (size_t i = 0; i < p->n; i++) {
        if (sn == 0)
            return mismatch(err, "inclusion proof: too many hashes for this index and size");
        if ((fn & 1) || fn == sn) {
            wr_merkle_node_hash(p->h[i], r, r);
            shift_to_set_bit(&fn, &sn);
        } else {
            wr_merkle_node_hash(r, p->h[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return mismatch(err, "inclusion proof: too few hashes for this index and size");
    if (sodium_memcmp(r, root, WR_MERKLE_HASH_LEN) != 0)
        return mismatch(err, "inclusion proof: the path does not lead to the checkpoint's root hash");
    return WR_OK;
}

int wr_merkle_verify_consistency(int64_t old_size, int64_t size, const wr_merkle_hash old_root,
                                 const wr_merkle_hash root, const wr_merkle_proof *p, wr_error *err)
{
    if (old_size < 0 || old_size > size)
        return mismatch(err, "consistency proof: the new tree is smaller than the old one");
    if (old_size == 0 || old_size == size) {
        if (p->n != 0)
            return mismatch(err, "consistency proof: expected no hashes between these sizes");
        if (old_size == size && sodium_memcmp(old_root, root, WR_MERKLE_HASH_LEN) != 0)
            return mismatch(err, "consistency proof: two different root hashes for the same tree size");
        return WR_OK;
    }
    if (p->n == 0)
        return mismatch(err, "consistency proof: no hashes");
    /* An old tree that is a complete subtree is its own first node. */
    const unsigned char *first = is_pow2(old_size) ? old_root : p->h[0];
    size_t next = is_pow2(old_size) ? 0 : 1;
    int64_t fn = old_size - 1, sn = size - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    wr_merkle_hash fr, sr;
    memcpy(fr, first, sizeof fr);
    memcpy(sr, first, sizeof sr);
    for (size_t i = next; i < p->n; i++) {
        if (sn == 0)
            return mismatch(err, "consistency proof: too many hashes for these sizes");
        if ((fn & 1) || fn == sn) {
            wr_merkle_node_hash(p->h[i], fr, fr);
            wr_merkle_node_hash(p->h[i], sr, sr);
            shift_to_set_bit(&fn, &sn);
        } else {
            wr_merkle_node_hash(sr, p->h[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return mismatch(err, "consistency proof: too few hashes for these sizes");
    if (sodium_memcmp(fr, old_root, WR_MERKLE_HASH_LEN) != 0)
        return mismatch(err, "consistency proof: the old tree's root hash does not match (a different history)");
    if (sodium_memcmp(sr, root, WR_MERKLE_HASH_LEN) != 0)
        return mismatch(err, "consistency proof: the new tree's root hash does not match");
    return WR_OK;
}

void wr_merkle_range_append(wr_merkle_range *r, const wr_merkle_hash leaf)
{
    memcpy(r->h[r->n++], leaf, WR_MERKLE_HASH_LEN);
    /* Each trailing 1 bit of the old size is a subtree the new leaf completes. */
    for (int64_t s = r->size; s & 1; s >>= 1, r->n--)
        node_hash(r->hasher, r->h[r->n - 2], r->h[r->n - 1], r->h[r->n - 2]);
    r->size++;
}

void wr_merkle_range_root(const wr_merkle_range *r, wr_merkle_hash out)
{
    if (r->n == 0) {
        empty_root(out);
        return;
    }
    memcpy(out, r->h[r->n - 1], WR_MERKLE_HASH_LEN);
    for (int i = r->n - 2; i >= 0; i--)
        node_hash(r->hasher, r->h[i], out, out);
}
