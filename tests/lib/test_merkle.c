/* lib/merkle.c at its edges: the empty tree, sizes that are and are not
 * powers of two, proofs that must fail (wrong index, wrong size, one
 * bit changed, hashes missing or extra, the same size with two roots), and
 * the storage-free range against the stored tree. The full cross-check
 * with an independent implementation is tests/receipts/tlog.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "lib/lib.h"

#define MAX_LEAVES 130
#define MAX_LEVELS 9

/* In-memory storage: every complete subtree by (level, index). */
typedef struct mem {
    wr_merkle_hash h[MAX_LEVELS][MAX_LEAVES];
    bool set[MAX_LEVELS][MAX_LEAVES];
} mem;

static int rd(void *ud, int level, int64_t index, wr_merkle_hash out, wr_error *err)
{
    mem *m = ud;
    if (level >= MAX_LEVELS || index >= MAX_LEAVES || !m->set[level][index])
        return wr_errorf(err, WR_E_NOTFOUND, "", "no hash at %d/%lld", level, (long long)index);
    memcpy(out, m->h[level][index], WR_MERKLE_HASH_LEN);
    return WR_OK;
}

static int wr(void *ud, int level, int64_t index, const wr_merkle_hash h, wr_error *err)
{
    mem *m = ud;
    assert_true(level < MAX_LEVELS && index < MAX_LEAVES);
    assert_false(m->set[level][index]); /* append never rewrites a hash */
    (void)err;
    memcpy(m->h[level][index], h, WR_MERKLE_HASH_LEN);
    m->set[level][index] = true;
    return WR_OK;
}

static void leaf(int i, wr_merkle_hash out)
{
    char text[32];
    int n = snprintf(text, sizeof text, "leaf %d", i);
    wr_merkle_leaf_hash(text, (size_t)n, out);
}

static mem *grow(int n, wr_merkle_range *r)
{
    mem *m = calloc(1, sizeof *m);
    memset(r, 0, sizeof *r);
    for (int i = 0; i < n; i++) {
        wr_merkle_hash h;
        leaf(i, h);
        assert_int_equal(wr_merkle_append(rd, wr, m, i, h, NULL), WR_OK);
        wr_merkle_range_append(r, h);
    }
    return m;
}

static void test_empty_and_one(void **state)
{
    (void)state;
    wr_merkle_range r;
    mem *m = grow(1, &r);
    wr_merkle_hash root, empty, want, l0;
    crypto_hash_sha256(empty, (const unsigned char *)"", 0);
    assert_int_equal(wr_merkle_root(rd, m, 0, root, NULL), WR_OK);
    assert_memory_equal(root, empty, 32);
    /* One leaf: its leaf hash, SHA-256(0x00 || "leaf 0"). */
    unsigned char buf[7] = {0};
    memcpy(buf + 1, "leaf 0", 6);
    crypto_hash_sha256(want, buf, sizeof buf);
    leaf(0, l0);
    assert_memory_equal(l0, want, 32);
    assert_int_equal(wr_merkle_root(rd, m, 1, root, NULL), WR_OK);
    assert_memory_equal(root, want, 32);
    wr_merkle_proof p;
    assert_int_equal(wr_merkle_prove_inclusion(rd, m, 0, 1, &p, NULL), WR_OK);
    assert_int_equal(p.n, 0);
    assert_int_equal(wr_merkle_verify_inclusion(l0, 0, 1, &p, root, NULL), WR_OK);
    assert_int_equal(wr_merkle_prove_inclusion(rd, m, 1, 1, &p, NULL), WR_E_INVALID);
    free(m);
}

static void test_proofs_and_refusals(void **state)
{
    (void)state;
    wr_merkle_range r;
    mem *m = grow(MAX_LEAVES, &r);
    wr_hasher *hasher = wr_hasher_new();
    assert_non_null(hasher);
    for (int64_t n = 1; n <= MAX_LEAVES; n++) {
        wr_merkle_hash root, other, lh;
        wr_merkle_range part = {0}, hashed = {.hasher = hasher};
        for (int i = 0; i < n; i++) {
            leaf(i, lh);
            wr_merkle_range_append(&part, lh);
            wr_merkle_range_append(&hashed, lh);
        }
        assert_int_equal(wr_merkle_root(rd, m, n, root, NULL), WR_OK);
        wr_merkle_range_root(&part, other);
        assert_memory_equal(root, other, 32); /* range == stored tree */
        wr_merkle_range_root(&hashed, other);
        assert_memory_equal(root, other, 32); /* with a reused hasher too */
        for (int64_t i = 0; i < n; i += 7) {
            wr_merkle_proof p;
            leaf((int)i, lh);
            assert_int_equal(wr_merkle_prove_inclusion(rd, m, i, n, &p, NULL), WR_OK);
            assert_int_equal(wr_merkle_verify_inclusion(lh, i, n, &p, root, NULL), WR_OK);
            if (n > 1)
                assert_int_equal(wr_merkle_verify_inclusion(lh, (i + 1) % n, n, &p, root, NULL), WR_E_CRYPTO);
            /* (A wrong size is not always refused: the RFC's path for leaf i
             * may have the same shape in a larger tree. The size is the
             * signed checkpoint's, which callers compare first.) */
            assert_int_equal(wr_merkle_verify_inclusion(lh, i, i, &p, root, NULL), WR_E_CRYPTO);
            if (p.n) {
                p.h[0][31] ^= 1;
                assert_int_equal(wr_merkle_verify_inclusion(lh, i, n, &p, root, NULL), WR_E_CRYPTO);
                p.h[0][31] ^= 1;
                p.n--;
                assert_int_equal(wr_merkle_verify_inclusion(lh, i, n, &p, root, NULL), WR_E_CRYPTO);
                p.n++;
            }
            memcpy(p.h[p.n++], root, 32);
            assert_int_equal(wr_merkle_verify_inclusion(lh, i, n, &p, root, NULL), WR_E_CRYPTO);
        }
        for (int64_t old = 0; old <= n; old += 5) {
            wr_merkle_hash old_root;
            wr_merkle_proof p;
            assert_int_equal(wr_merkle_root(rd, m, old, old_root, NULL), WR_OK);
            assert_int_equal(wr_merkle_prove_consistency(rd, m, old, n, &p, NULL), WR_OK);
            assert_int_equal(wr_merkle_verify_consistency(old, n, old_root, root, &p, NULL), WR_OK);
            if (old == 0 || old == n)
                continue;
            assert_int_equal(wr_merkle_verify_consistency(old, n, root, root, &p, NULL), WR_E_CRYPTO);
            assert_int_equal(wr_merkle_verify_consistency(old, n, old_root, old_root, &p, NULL), WR_E_CRYPTO);
            assert_int_equal(wr_merkle_verify_consistency(old + 1, n, old_root, root, &p, NULL), WR_E_CRYPTO);
            p.h[p.n - 1][0] ^= 1;
            assert_int_equal(wr_merkle_verify_consistency(old, n, old_root, root, &p, NULL), WR_E_CRYPTO);
        }
        /* The same size with another root is never consistent. */
        wr_merkle_proof none = {0};
        wr_merkle_hash forged;
        memcpy(forged, root, 32);
        forged[0] ^= 1;
        assert_int_equal(wr_merkle_verify_consistency(n, n, root, forged, &none, NULL), WR_E_CRYPTO);
        assert_int_equal(wr_merkle_prove_consistency(rd, m, n + 1, n, &none, NULL), WR_E_INVALID);
    }
    wr_hasher_free(hasher);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_one),
        cmocka_unit_test(test_proofs_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
