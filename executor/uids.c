/* Dynamic sandbox uids (sandbox.uid: dynamic), as systemd's DynamicUser:
 * each run takes a uid from a reserved range that no account uses, held
 * through an flock on /run/warrant/uids/UID for as long as the run lasts,
 * so no other run — in this process, another warrantd or a `warrant run` —
 * gets it meanwhile. The lock files stay (removing one could let two
 * processes lock two different files of the same name). */
#include "executor/executor_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define UID_LOCK_PARENT "/run/warrant"
#define UID_LOCK_DIR    UID_LOCK_PARENT "/uids"

/* The lock directory, root's own: a directory anyone else controls could
 * hand two runs the same lock. */
static int lock_dir(wr_error *err)
{
    mkdir(UID_LOCK_PARENT, 0755);
    mkdir(UID_LOCK_DIR, 0700);
    int fd = open(UID_LOCK_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != 0 || (st.st_mode & 022)) {
        if (fd >= 0)
            close(fd);
        return wr_errorf(err, WR_E_DENIED, "sandbox.uid", "dynamic uids: %s is missing or not root's own",
                         UID_LOCK_DIR),
               -1;
    }
    return fd;
}

int wr_uid_lease(int64_t lo, int64_t hi, const wr_ctx *ctx, uid_t *uid, int *lock, wr_error *err)
{
    *lock = -1;
    if (lo < 1 || hi < lo)
        return wr_errorf(err, WR_E_DENIED, "sandbox.dynamic_uid_range", "empty dynamic uid range");
    int dfd = lock_dir(err);
    if (dfd < 0)
        return WR_E_DENIED;
    uint64_t span = (uint64_t)(hi - lo) + 1, start;
    wr_random(ctx, &start, sizeof start); /* spreads concurrent runs over the range */
    for (uint64_t k = 0; k < span; k++) {
        uid_t u = (uid_t)(lo + (int64_t)((start + k) % span));
        if (getpwuid(u) || getgrgid(u))
            continue; /* an account's: never shared with one */
        char name[32];
        snprintf(name, sizeof name, "%u", (unsigned)u);
        int fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            close(dfd);
            *uid = u;
            *lock = fd;
            return WR_OK;
        }
        close(fd);
    }
    close(dfd);
    return wr_errorf(err, WR_E_DENIED, "sandbox.dynamic_uid_range", "no free uid in %lld-%lld", (long long)lo,
                     (long long)hi);
}
