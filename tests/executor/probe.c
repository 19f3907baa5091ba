/* wr_probe: what an attacker's program inside the sandbox would try, one
 * probe per run, each printing one line "NAME: ok" or "NAME: errno N".
 *   uring                 io_uring_setup, then IORING_OP_SOCKET for AF_INET
 *                         and AF_VSOCK (raw syscalls: no liburing needed)
 *   socket FAMILY [PROTO] socket(FAMILY, SOCK_STREAM or SOCK_RAW, PROTO)
 *   tcp-bind              bind a TCP socket to 127.0.0.1, any port
 *   read PATH / write PATH / list PATH */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int say(const char *what, int rc)
{
    if (rc < 0)
        printf("%s: errno %d\n", what, errno);
    else
        printf("%s: ok\n", what);
    return 0;
}

/* One IORING_OP_SOCKET through a fresh ring; returns the CQE result. */
static int uring_socket(int ring, struct io_uring_params *p, int family)
{
    size_t sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    size_t cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes = mmap(NULL, p->sq_entries * sizeof *sqes, PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
        return -errno;
    unsigned *tail = (unsigned *)(sq + p->sq_off.tail), *mask = (unsigned *)(sq + p->sq_off.ring_mask);
    unsigned *array = (unsigned *)(sq + p->sq_off.array);
    unsigned idx = *tail & *mask;
    memset(&sqes[idx], 0, sizeof sqes[idx]);
    sqes[idx].opcode = IORING_OP_SOCKET;
    sqes[idx].fd = family;
    sqes[idx].off = SOCK_STREAM;
    array[idx] = idx;
    __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
    if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
        return -errno;
    unsigned *head = (unsigned *)(cq + p->cq_off.head), *cmask = (unsigned *)(cq + p->cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
    int res = cqes[*head & *cmask].res;
    __atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
    return res;
}

static int probe_uring(void)
{
    static const struct {
        const char *name;
        int family;
    } fam[] = {{"uring socket inet", AF_INET}, {"uring socket vsock", AF_VSOCK}};
    for (size_t i = 0; i < 2; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        int ring = (int)syscall(SYS_io_uring_setup, 4, &p);
        if (ring < 0)
            return say("io_uring_setup", -1);
        int res = uring_socket(ring, &p, fam[i].family);
        errno = -res;
        say(fam[i].name, res);
        close(ring);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *what = argv[1], *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(what, "uring"))
        return probe_uring();
    if (!strcmp(what, "socket")) {
        int family = atoi(arg), proto = argc > 3 ? atoi(argv[3]) : 0;
        return say("socket",
                   socket(family, family == AF_NETLINK || family == AF_PACKET ? SOCK_RAW : SOCK_STREAM, proto));
    }
    if (!strcmp(what, "tcp-bind")) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        return say("tcp-bind", s < 0 ? s : bind(s, (struct sockaddr *)&a, sizeof a));
    }
    if (!strcmp(what, "read")) {
        char buf[64];
        int fd = open(arg, O_RDONLY);
        return say("read", fd < 0 ? fd : (int)read(fd, buf, sizeof buf));
    }
    if (!strcmp(what, "write")) {
        int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        return say("write", fd < 0 ? fd : (int)write(fd, "x", 1));
    }
    if (!strcmp(what, "list")) {
        DIR *d = opendir(arg);
        return say("list", d ? 0 : -1);
    }
    return 2;
}
