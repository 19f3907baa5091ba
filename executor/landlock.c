/* See landlock.h. Raw syscalls: glibc 2.36 has no wrappers. */
#include "executor/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Rights and rule types of ABI 3..6, absent from older headers. */
#define LL_FS_TRUNCATE         (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV        (1ULL << 15) /* ABI 5 */
#define LL_NET_BIND_TCP        (1ULL << 0)  /* ABI 4 */
#define LL_NET_CONNECT_TCP     (1ULL << 1)  /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)  /* ABI 6 */
#define LL_SCOPE_SIGNAL        (1ULL << 1)  /* ABI 6 */

/* struct landlock_ruleset_attr as of ABI 6; older kernels are given the
 * prefix they know (the size argument says how much). */
struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct ll_path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

/* struct landlock_net_port_attr and LANDLOCK_RULE_NET_PORT (ABI 4). */
#define LL_RULE_NET_PORT 2
struct ll_net_port {
    uint64_t allowed_access;
    uint64_t port;
};

#define LL_READ (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
/* Rights that apply to a non-directory (path_beneath on a file refuses the rest). */
#define LL_FILE_RIGHTS                                                                                                 \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | LL_FS_TRUNCATE |      \
     LL_FS_IOCTL_DEV)

int wr_landlock_abi(const char **why)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        *why = errno == EOPNOTSUPP ? "Landlock is disabled in this kernel (lsm= boot option)"
                                   : "this kernel has no Landlock";
        return 0;
    }
    *why = NULL;
    return abi > WR_LANDLOCK_ABI_MAX ? WR_LANDLOCK_ABI_MAX : (int)abi;
}

/* Every file-system right the ABI knows (all of them are handled: what no
 * rule grants is refused). */
static uint64_t fs_handled(int abi)
{
    uint64_t a = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
    if (abi >= 2)
        a |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        a |= LL_FS_TRUNCATE;
    if (abi >= 5)
        a |= LL_FS_IOCTL_DEV;
    return a;
}

static uint64_t rights(wr_ll_kind kind, uint64_t handled)
{
    switch (kind) {
    case WR_LL_READ:
        return LL_READ;
    case WR_LL_WRITE:
        /* Device nodes cannot be made without CAP_MKNOD anyway; say so. */
        return handled & ~(LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_BLOCK);
    case WR_LL_DEVICES:
        return handled & (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_WRITE_FILE |
                          LL_FS_TRUNCATE | LL_FS_IOCTL_DEV);
    case WR_LL_PROC:
        return LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
    }
    return 0;
}

int wr_landlock_apply(int abi, const wr_ll_rule *rules, int nrules, int tcp, const char **stage)
{
    struct ll_ruleset_attr attr = {.handled_access_fs = fs_handled(abi)};
    size_t size = offsetof(struct ll_ruleset_attr, handled_access_net);
    if (abi >= 4) {
        attr.handled_access_net = tcp == WR_LL_TCP_ANY ? 0 : LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        size = offsetof(struct ll_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
        size = sizeof attr;
    }
    *stage = "landlock ruleset";
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0)
        return -1;
    for (int i = 0; i < nrules; i++) {
        int fd = open(rules[i].path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            *stage = "landlock rule path";
            close(rs);
            return -1;
        }
        struct stat st;
        struct ll_path_beneath pb = {.allowed_access = rights(rules[i].kind, attr.handled_access_fs), .parent_fd = fd};
        if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
            pb.allowed_access &= LL_FILE_RIGHTS;
        pb.allowed_access &= attr.handled_access_fs;
        long r = pb.allowed_access ? syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) : 0;
        int e = errno;
        close(fd);
        if (r != 0) {
            *stage = "landlock rule";
            close(rs);
            errno = e;
            return -1;
        }
    }
    if (abi >= 4 && tcp > 0) {
        struct ll_net_port np = {.allowed_access = LL_NET_CONNECT_TCP, .port = (uint64_t)tcp};
        if (syscall(SYS_landlock_add_rule, rs, LL_RULE_NET_PORT, &np, 0) != 0) {
            int e = errno;
            *stage = "landlock port rule";
            close(rs);
            errno = e;
            return -1;
        }
    }
    *stage = "landlock restrict";
    long r = syscall(SYS_landlock_restrict_self, rs, 0);
    int e = errno;
    close(rs);
    errno = e;
    return r == 0 ? 0 : -1;
}
