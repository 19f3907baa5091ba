/* The seccomp profile, built with libseccomp and handed to bwrap as an
 * exported BPF program (bwrap --seccomp FD loads it right before exec).
 * A deny-list: everything a build or a query tool needs stays allowed; what
 * only serves to escape the sandbox, spy on other processes or change the
 * kernel is refused with EPERM. */
#include "executor/executor_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#define SECCOMP_TREE 2 /* SCMP_FLTATR_CTL_OPTIMIZE: binary tree */

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* Syscalls refused outright: tracing other processes, loading kernel code,
 * kernel key rings, mounting (also the new mount API), swapping, rebooting,
 * joining or making namespaces, raw port I/O, file-handle opens that bypass
 * path checks, and the userfaultfd/perf/bpf attack surface. */
static const char *const denied[] = {
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "swapon",
    "swapoff",
    "reboot",
    "unshare",
    "setns",
    "iopl",
    "ioperm",
    "open_by_handle_at",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "acct",
    "quotactl",
    "lookup_dcookie",
    "vhangup",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "uselib",
    "nfsservctl",
    "vm86",
    "vm86old",
};

/* personality() flags that switch off exploit mitigations (ASLR, NX) or
 * change the address-space layout. libseccomp cannot compare one argument
 * twice in a rule, so each flag is its own rule; the 0xffffffff query has
 * every bit set and is refused with them. */
static const unsigned long personality_flags[] = {
    ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ADDR_COMPAT_LAYOUT, MMAP_PAGE_ZERO, ADDR_LIMIT_32BIT,
    ADDR_LIMIT_3GB,    FDPIC_FUNCPTRS,    SHORT_INODE,        WHOLE_SECONDS,  STICKY_TIMEOUTS};

static int deny(scmp_filter_ctx ctx, int errno_val, const char *name, unsigned n, const struct scmp_arg_cmp *a)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR || nr < 0)
        return 0; /* not a syscall on this architecture (libseccomp pseudo number) */
    return seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(errno_val), nr, n, a);
}

/* The socket families a run may create (a bit per family): everything else
 * fails with EAFNOSUPPORT. */
static uint64_t allowed_families(wr_sock_families fam)
{
    uint64_t a = 1ULL << AF_UNIX;
    if (fam != WR_SOCK_UNIX)
        a |= 1ULL << AF_INET | 1ULL << AF_INET6;
    if (fam == WR_SOCK_INET_ROUTE)
        a |= 1ULL << AF_NETLINK;
    return a;
}

/* Deny rules (the filter allows by default) for every family that is not
 * allowed: each aligned power-of-two block of refused families below the
 * highest allowed one is one masked comparison, and everything above it is
 * one more, which also catches a family with high bits set (the kernel
 * reads an int). Few comparisons keep the program short: the kernel
 * emulates it for every syscall number when bwrap attaches it. */
static int socket_rules(scmp_filter_ctx ctx, wr_sock_families fam)
{
    uint64_t allowed = allowed_families(fam);
    unsigned top = 63 - (unsigned)__builtin_clzll(allowed); /* the highest allowed family */
    int rc = 0;
    for (unsigned af = 0; rc == 0 && af < top;) {
        if (allowed & 1ULL << af) {
            af++;
            continue;
        }
        unsigned size = 1; /* grow while aligned, below top and refused throughout */
        while (af % (2 * size) == 0 && af + 2 * size <= top && !(allowed & (((1ULL << 2 * size) - 1) << af)))
            size *= 2;
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, ~(scmp_datum_t)(size - 1), af);
        rc = deny(ctx, EAFNOSUPPORT, "socket", 1, &a);
        af += size;
    }
    struct scmp_arg_cmp above = SCMP_A0(SCMP_CMP_GE, top + 1);
    if (rc == 0)
        rc = deny(ctx, EAFNOSUPPORT, "socket", 1, &above);
    if (rc == 0 && fam == WR_SOCK_INET_ROUTE) {
        /* Netlink for getaddrinfo's address checks only: NETLINK_ROUTE. */
        struct scmp_arg_cmp nl[2] = {SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE)};
        rc = deny(ctx, EAFNOSUPPORT, "socket", 2, nl);
    }
    /* socketpair only ever makes unix sockets. */
    struct scmp_arg_cmp not_unix = SCMP_A0(SCMP_CMP_NE, AF_UNIX);
    if (rc == 0)
        rc = deny(ctx, EAFNOSUPPORT, "socketpair", 1, &not_unix);
    return rc;
}

scmp_filter_ctx wr_seccomp_filter(wr_sock_families fam, wr_error *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        wr_errorf(err, WR_E_INTERNAL, "", "seccomp_init failed");
        return NULL;
    }
    /* A binary tree of syscall numbers rather than a chain: bwrap's attach
     * makes the kernel run the program for every syscall number of the
     * architecture (its action cache), 460 walks down a chain of ~50
     * comparisons; the tree halves the attach (docs/performance.md). */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, SECCOMP_TREE);
    for (size_t i = 0; rc == 0 && i < sizeof denied / sizeof *denied; i++)
        rc = deny(ctx, EPERM, denied[i], 0, NULL);
    /* clone3 passes its flags in memory a filter cannot read: refuse it with
     * ENOSYS so libc falls back to clone(), whose flags are checked. io_uring
     * runs socket, open and connect operations no filter sees (IORING_OP_SOCKET
     * made any socket family): ENOSYS, so programs fall back to syscalls. */
    static const char *const absent[] = {"clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"};
    for (size_t i = 0; rc == 0 && i < sizeof absent / sizeof *absent; i++)
        rc = deny(ctx, ENOSYS, absent[i], 0, NULL);
    static const unsigned long ns_flags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
                                             CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME};
    for (size_t i = 0; rc == 0 && i < sizeof ns_flags / sizeof *ns_flags; i++) {
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
        rc = deny(ctx, EPERM, "clone", 1, &a);
    }
    /* TIOCSTI/TIOCLINUX push keystrokes into a terminal's input queue: a
     * command could type into the user's shell. The request is an int, so
     * compare the low 32 bits only. */
    static const unsigned long tty_inject[] = {TIOCSTI, TIOCLINUX};
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, tty_inject[i]);
        rc = deny(ctx, EPERM, "ioctl", 1, &a);
    }
    for (size_t i = 0; rc == 0 && i < sizeof personality_flags / sizeof *personality_flags; i++) {
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, personality_flags[i], personality_flags[i]);
        rc = deny(ctx, EPERM, "personality", 1, &a);
    }
    if (rc == 0)
        rc = socket_rules(ctx, fam);
    if (rc != 0) {
        wr_errorf(err, WR_E_INTERNAL, "", "seccomp rule: %s", strerror(-rc));
        seccomp_release(ctx);
        return NULL;
    }
    return ctx;
}

int wr_seccomp_export(wr_sock_families fam, unsigned char **bpf, size_t *len, wr_error *err)
{
    *bpf = NULL;
    *len = 0;
    scmp_filter_ctx ctx = wr_seccomp_filter(fam, err);
    if (!ctx)
        return err ? err->code : WR_E_INTERNAL;
    int rc = WR_OK;
    int fd = memfd_create("wr-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        rc = wr_errorf(err, WR_E_IO, "", "memfd_create: %s", strerror(errno));
        goto out;
    }
    int e = seccomp_export_bpf(ctx, fd);
    off_t size = lseek(fd, 0, SEEK_CUR);
    if (e != 0 || size <= 0) {
        rc = wr_errorf(err, WR_E_INTERNAL, "", "seccomp_export_bpf: %s", strerror(e ? -e : EIO));
        goto out;
    }
    *bpf = malloc((size_t)size);
    if (!*bpf) {
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        goto out;
    }
    if (pread(fd, *bpf, (size_t)size, 0) != size) {
        free(*bpf);
        *bpf = NULL;
        rc = wr_errorf(err, WR_E_IO, "", "reading the seccomp program back failed");
        goto out;
    }
    *len = (size_t)size;
out:
    if (fd >= 0)
        close(fd);
    seccomp_release(ctx);
    return rc;
}
