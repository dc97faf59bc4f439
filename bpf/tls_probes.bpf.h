/* SPDX-License-Identifier: MIT */
/*
 * The OpenSSL probes of PostgreSQL over TLS; what they do and how an SSL
 * object is tied to its connection is described in tls.bpf.h. Included by
 * io.bpf.c after the syscall programs (it uses on_data's helpers).
 */
#ifndef TG_TLS_PROBES_BPF_H
#define TG_TLS_PROBES_BPF_H

#include "tls.bpf.h"

static __always_inline int tls_enter(__u64 ssl, __u64 buf, __u64 aux, __u8 op)
{
	struct tstate *s;

	if (!pid_traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	s = bpf_task_storage_get(&tstates, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->tls_ssl = ssl;
	s->tls_buf = buf;
	s->tls_aux = aux;
	s->tls_op = op;
	s->tls_fd = -1;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tg_ssl_write, void *ssl, const void *buf)
{
	return tls_enter((__u64)ssl, (__u64)buf, 0, TG_TLS_W);
}

SEC("uprobe")
int BPF_KPROBE(tg_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	(void)num;
	return tls_enter((__u64)ssl, (__u64)buf, (__u64)written, TG_TLS_W_EX);
}

SEC("uprobe")
int BPF_KPROBE(tg_ssl_read, void *ssl, void *buf)
{
	return tls_enter((__u64)ssl, (__u64)buf, 0, TG_TLS_R);
}

SEC("uprobe")
int BPF_KPROBE(tg_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	(void)num;
	return tls_enter((__u64)ssl, (__u64)buf, (__u64)readbytes, TG_TLS_R_EX);
}

/* The followed TLS connection of an SSL call by rules 1-2 (tls.bpf.h), or
 * NULL; binds the object to it. fd: the connection named by a syscall inside
 * the call (-1: none); in_fd: the thread's last TLS read (-1: none, or not a
 * reading call). */
static __always_inline struct conn_val *tls_place(__u32 tgid, __u64 ssl, int fd, int in_fd,
						  __u64 in_ns, __u64 now)
{
	struct ssl_key k = {.tgid = tgid, .ssl = ssl};
	struct conn_key ck = {.tgid = tgid};
	struct conn_val *val;
	__s32 *known;

	if (fd < 0) {
		known = bpf_map_lookup_elem(&ssl_fds, &k);
		if (known) {
			fd = *known;
		} else if (in_fd >= 0 && now - in_ns < TG_TLS_READ_WINDOW_NS) {
			ck.fd = in_fd;
			val = bpf_map_lookup_elem(&conns, &ck);
			if (!val || !val->tls || (val->ssl && val->ssl != ssl))
				return NULL; /* the connection has its own object */
			fd = in_fd;
			goto bind;
		} else {
			return NULL;
		}
	}
	ck.fd = fd;
	val = bpf_map_lookup_elem(&conns, &ck);
	if (!val || !val->tls)
		return NULL; /* not a followed TLS PostgreSQL connection */
bind:
	if (val->ssl != ssl) {
		val->ssl = ssl;
		bpf_map_update_elem(&ssl_fds, &k, &fd, BPF_ANY);
	}
	return val;
}

SEC("uretprobe")
int BPF_KRETPROBE(tg_ssl_ret, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
	__u32 tgid = pid_tgid >> 32, zero_cpu, head;
	struct tstate *s = bpf_task_storage_get(&tstates, bpf_get_current_task_btf(), 0, 0);
	__u64 ssl, buf, aux, n = 0, conn_id = 0;
	struct conn_val *val;
	struct tg_ev_tls *ev;
	struct scratch *sc;
	int in_fd = -1;
	__u8 op, dir, flags = 0;
	__u32 size;

	if (!s || !s->tls_ssl)
		return 0;
	ssl = s->tls_ssl;
	buf = s->tls_buf;
	aux = s->tls_aux;
	op = s->tls_op;
	s->tls_ssl = 0;
	dir = op == TG_TLS_W || op == TG_TLS_W_EX ? TG_DIR_OUT : TG_DIR_IN;
	if (dir == TG_DIR_IN) {
		in_fd = (int)s->tls_in_fd1 - 1; /* consumed by the first reading call after it */
		s->tls_in_fd1 = 0;
	}
	val = tls_place(tgid, ssl, s->tls_fd, in_fd, s->tls_in_ns, now);
	if (op == TG_TLS_HS)
		return 0;
	if (op == TG_TLS_W || op == TG_TLS_R) {
		if ((int)ret > 0)
			n = (__u64)(int)ret;
	} else if ((int)ret == 1 && aux) {
		bpf_probe_read_user(&n, sizeof(n), (const void *)aux);
	}
	if (!n || n > 0xffffffffULL)
		return 0;
	if (val)
		conn_id = val->conn_id;
	else if (!bpf_map_lookup_elem(&tls_procs, &tgid))
		return 0;
	zero_cpu = bpf_get_smp_processor_id();
	sc = bpf_map_lookup_elem(&scratch_map, &zero_cpu);
	if (!sc) {
		count(dropped);
		return 0;
	}
	ev = (struct tg_ev_tls *)sc->buf;
	head = clamp_head(n < pg_capture_bytes ? (__u32)n : pg_capture_bytes);
	if (bpf_probe_read_user(ev->data, head, (const void *)buf))
		head = 0;
	if (n > head)
		flags |= TG_DATA_HEAD_TRUNC;
	size = (sizeof(*ev) + head + 7) & ~7U;
	BOUND(size, sizeof(*ev) + TG_HEAD_MAX);
	fill_hdr_s(&ev->hdr, TG_EV_TLS, size, pid_tgid, s);
	ev->ssl = ssl;
	ev->conn_id = conn_id;
	ev->task_key = dir == TG_DIR_OUT ? py_task_key(s, tgid, (__u32)pid_tgid) : 0;
	ev->len = (__u32)n;
	ev->head_len = head;
	ev->dir = dir;
	ev->flags = flags;
	if (bpf_ringbuf_output(&events, ev, size, rb_flags()))
		count(dropped);
	else
		count(emitted);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tg_ssl_handshake, void *ssl)
{
	return tls_enter((__u64)ssl, 0, 0, TG_TLS_HS);
}

SEC("uprobe")
int BPF_KPROBE(tg_ssl_free, void *ssl)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (pid_traced(tgid))
		tls_forget(tgid, (__u64)ssl, -1);
	return 0;
}

#endif /* TG_TLS_PROBES_BPF_H */
