/* The protocol between the executor and warrant-launch (launcher.c), the
 * process that becomes a command's bwrap. Shared by both sides so that
 * neither can drift.
 *
 * A launcher is started ahead of the run, in the command's fresh cgroups:
 * `warrant-launch PARENT_PID NCG` with the control socket at
 * WR_LAUNCH_SOCK_FD and NCG cgroup.procs files at WR_LAUNCH_CG_FD.. (v1;
 * on v2 it is cloned straight into its cgroup and NCG is 0). It joins
 * them, answers one READY byte (0, or the errno of the join that failed),
 * and waits. The executor writes the run's limits into the cgroups, then
 * sends one wr_launch_msg per pipeline segment (the segment's fds as
 * SCM_RIGHTS with the header, then argv_bytes of NUL-terminated argv):
 * WR_LAUNCH_FORK starts the segment in a child of the executor
 * (CLONE_PARENT) and answers its pid as an int32 (or -errno); without it
 * the launcher itself becomes the segment's bwrap. EOF before that: the
 * pool is closing, it exits. */
#ifndef WR_LAUNCH_PROTO_H
#define WR_LAUNCH_PROTO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#define WR_LAUNCH_NAME    "warrant-launch"
#define WR_LAUNCH_SOCK_FD 3
#define WR_LAUNCH_CG_FD   4
#define WR_LAUNCH_MAGIC   0x77726c31u /* "wrl1" */
/* SCM_MAX_FD: the most descriptors one message carries. */
#define WR_LAUNCH_MAX_FDS 253
#define WR_LAUNCH_MAX_RL  8
/* The argv of one bwrap: the contract's (WR_CONTRACT_MAX_ARGV x
 * WR_CONTRACT_MAX_ARG_BYTES) and the sandbox's own options. */
#define WR_LAUNCH_MAX_ARGV_BYTES (2u * 1024 * 1024)
#define WR_LAUNCH_MAX_ARGS       4096

enum {
    WR_LAUNCH_FORK = 1,      /* start the segment in a child, answer its pid */
    WR_LAUNCH_DROP_ROOT = 2, /* become uid/gid with groups[0..ngroups) */
};

typedef struct wr_launch_msg {
    uint32_t magic;
    uint32_t flags;
    uint32_t nslots; /* fds 0..nslots-1 of the message are installed at those numbers */
    int32_t userns;  /* index of the user namespace to join first (fds after the slots), or -1 */
    int32_t netns;   /* index of the network namespace to join, or -1 */
    uint32_t uid, gid;
    uint32_t groups[1];
    uint32_t ngroups;
    uint32_t umask;
    uint32_t nrl;
    struct {
        int32_t res;
        uint64_t v;
    } rl[WR_LAUNCH_MAX_RL];
    uint32_t argc;
    uint32_t argv_bytes;
} wr_launch_msg;

/* Reads exactly len bytes of the control socket: the launcher a message's
 * header and argv, the executor a pid answer. false on EOF or an error. */
static inline bool wr_launch_read_full(int fd, void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

#endif
