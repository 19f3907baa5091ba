/* capsules/ in-process: the one path rule, messages that cannot carry
 * control bytes, and a pack -> open -> unpack round trip (hashes, modes,
 * signer, trusted key). The CLI, the sandbox and hostile archives are
 * covered by test_capsules.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "capsules/capsules_internal.h"

static void test_path_rule(void **state)
{
    (void)state;
    static const char *const good[] = {"a", "a/b", "a.b/c-d_e", "..a", "a..", ".hidden", "dir/ünï"};
    static const char *const bad[] = {"",    "/a",   "a/",     "a//b", ".",     "..",   "./a",
                                      "a/.", "a/..", "a/../b", "a\nb", "a\x7f", "\xff", NULL};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!wr_capsule_path_ok(good[i]))
            fail_msg("refused a good path '%s'", good[i]);
    for (size_t i = 0; bad[i]; i++)
        if (wr_capsule_path_ok(bad[i]))
            fail_msg("accepted a bad path '%s'", bad[i]);
    assert_false(wr_capsule_path_ok(NULL));
    char longp[WR_CAPSULE_MAX_PATH_BYTES + 2];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    assert_false(wr_capsule_path_ok(longp));
    longp[WR_CAPSULE_MAX_PATH_BYTES] = 0;
    assert_true(wr_capsule_path_ok(longp));
}

static void test_shown(void **state)
{
    (void)state;
    char buf[WR__SHOWN_MAX];
    assert_string_equal(wr__capsule_shown("plain/ünï", buf), "plain/ünï");
    assert_string_equal(wr__capsule_shown("a\nreproduced", buf), "a\\x0areproduced");
    assert_string_equal(wr__capsule_shown("\x1b[2J", buf), "\\x1b[2J");
    assert_string_equal(wr__capsule_shown("bad\xff\xc3\xa9", buf), "bad\\xff\\xc3\\xa9");
    char longs[4 * WR__SHOWN_MAX];
    memset(longs, '\n', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    assert_true(strlen(wr__capsule_shown(longs, buf)) < WR__SHOWN_MAX);
}

static void put(const char *dir, const char *name, const char *text, mode_t mode)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(p, mode);
}

static void test_round_trip(void **state)
{
    (void)state;
    char tmp[] = "/tmp/capsule-unit-XXXXXX", dir[256], out[256], unpacked[256], p[512];
    assert_non_null(mkdtemp(tmp));
    snprintf(dir, sizeof dir, "%s/src", tmp);
    snprintf(out, sizeof out, "%s/c.capsule", tmp);
    snprintf(unpacked, sizeof unpacked, "%s/unpacked", tmp);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0700);
    put(dir, "capsule.yaml", "name: unit\nversion: '2'\nentrypoint: [run.sh]\n", 0600);
    put(dir, "run.sh", "#!/bin/sh\n", 0700);
    put(dir, "sub/data", "payload\n", 0600);

    wr_ctx ctx = wr_ctx_system();
    wr_keypair kp, other;
    wr_error err = {0};
    assert_int_equal(wr_key_generate(&ctx, &kp, &err), WR_OK);
    assert_int_equal(wr_key_generate(&ctx, &other, &err), WR_OK);
    wr_capsule *c = NULL;
    if (wr_capsule_pack(dir, out, &kp, &c, &err) != WR_OK)
        fail_msg("pack: %s", err.message);
    assert_string_equal(c->name, "unit");
    assert_string_equal(c->version, "2");
    assert_int_equal(c->nfiles, 3);
    assert_string_equal(c->files[0].path, "capsule.yaml");
    assert_string_equal(c->files[1].path, "run.sh");
    assert_true(c->files[1].executable);
    assert_false(c->files[2].executable);
    assert_true(c->is_signed);
    assert_string_equal(c->signer_key_id, kp.key_id);
    char sha[WR_SHA256_HEX_LEN];
    snprintf(sha, sizeof sha, "%s", c->sha256);
    wr_capsule_free(c);

    /* Another signer is refused; the right one unpacks exactly the files. */
    c = NULL;
    assert_int_equal(wr_capsule_open(out, other.pk, NULL, &c, &err), WR_E_CRYPTO);
    assert_null(c);
    assert_non_null(strstr(err.message, "not by the trusted key"));
    if (wr_capsule_open(out, kp.pk, unpacked, &c, &err) != WR_OK)
        fail_msg("open: %s", err.message);
    assert_string_equal(c->sha256, sha);
    struct stat st;
    snprintf(p, sizeof p, "%s/sub/data", unpacked);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0444);
    snprintf(p, sizeof p, "%s/run.sh", unpacked);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0555);
    wr_capsule_file *files = NULL;
    size_t n = 0;
    assert_int_equal(wr__capsule_scan(unpacked, &files, &n, &err), WR_OK);
    assert_int_equal(n, c->nfiles);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(files[i].path, c->files[i].path);
        assert_string_equal(files[i].sha256, c->files[i].sha256);
    }
    wr__capsule_files_free(files, n);
    wr_capsule_free(c);

    /* An unpack target that exists is refused: nothing is written over. */
    c = NULL;
    assert_int_equal(wr_capsule_open(out, NULL, unpacked, &c, &err), WR_E_IO);
    wr__capsule_remove_tree(tmp);
    assert_int_not_equal(access(tmp, F_OK), 0);
    wr_keypair_wipe(&kp);
    wr_keypair_wipe(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_rule),
        cmocka_unit_test(test_shown),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
