/* SPDX-License-Identifier: MIT */
/*
 * BPF-side helpers: from a file descriptor of the current task to its TCP
 * socket's addresses, read with CO-RE:
 *   task->files->fdt->fd[fd] -> file->private_data (struct socket *) -> sk
 *   -> __sk_common (family, addresses, ports).
 * Only called for fds a successful accept()/connect() just returned or used,
 * so the file is known to be a socket.
 */
#ifndef TG_SOCK_BPF_H
#define TG_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "timeglass/events.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif
#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif

/* The struct sock behind fd of task, or NULL when fd is out of range. */
static __always_inline struct sock *tg_fd_sock(struct task_struct *task, int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;

	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/* Fill family and local/remote address and port of ev from the TCP socket
 * behind fd. Returns 0, or -1 when fd is not an IPv4/IPv6 TCP socket. */
static __always_inline int tg_fill_conn_addr(struct tg_ev_conn *ev, struct task_struct *task,
					     int fd)
{
	struct sock *sk = tg_fd_sock(task, fd);
	__u16 family;

	if (!sk)
		return -1;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return -1;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return -1;
	ev->family = family;
	ev->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(ev->laddr, &l, 4);
		__builtin_memcpy(ev->raddr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(&ev->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&ev->raddr, sk, __sk_common.skc_v6_daddr);
	}
	return 0;
}

#endif
