/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL over TLS: the plaintext the app hands to OpenSSL and gets back
 * from it, tied to the followed connection it travels on.
 *
 * A PostgreSQL client connection turns TLS when the server answers its
 * SSLRequest with a single 'S' (io.bpf.c sets conn_val.tls at that read;
 * later socket events of the connection carry no payload, TG_DATA_CIPHER).
 * libpq (psycopg2, psycopg 3) calls SSL_write/SSL_read on a socket BIO;
 * Python's ssl module (asyncpg, on both loops) calls SSL_write_ex/SSL_read_ex
 * on a memory BIO and moves the ciphertext itself.
 *
 * This file: the bindings and the socket side (included by io.bpf.c before
 * the syscall programs); tls_probes.bpf.h: the OpenSSL probes. Hooks
 * (attached by user/tracer.c to the process's libssl once it has a TLS
 * PostgreSQL connection):
 *  - uprobes on SSL_write, SSL_write_ex, SSL_read, SSL_read_ex and
 *    SSL_do_handshake: remember the call (SSL object, buffer, length or the
 *    _ex out-pointer) in the thread's task storage;
 *  - one uretprobe on all five (tg_ssl_ret): the bytes moved (the return
 *    value, or *written / *readbytes) and TG_EV_TLS with the first
 *    pg_capture_bytes of the plaintext (the handshake only places its
 *    object);
 *  - a uprobe on SSL_free (tg_ssl_free): the object's binding is forgotten
 *    (so is the binding of a connection's object when it closes), since the
 *    next SSL object may get the same address.
 *
 * Which connection an SSL object belongs to (map ssl_fds, (tgid, ssl) -> fd;
 * conn_val.ssl the other way):
 *  1. a socket syscall on a TLS connection made inside the call (socket BIO:
 *     libpq) names it exactly;
 *  2. else a memory-BIO object is fed by the socket read just before it on
 *     the same thread (the event loop reads the ciphertext and the protocol
 *     decrypts it in the same callback): the thread's last TLS connection
 *     read, if within 10 ms, consumed by the first reading call after it
 *     (SSL_read*, SSL_do_handshake), and only when that connection has no
 *     other object yet. The handshake's reads bind an object before any
 *     application data moves.
 * Writes never bind (uvloop writes after the task step, other connections'
 * handshakes in between). Events of an object not bound yet go out with
 * conn_id 0 (only from processes that have a TLS PostgreSQL connection);
 * userspace holds them until an event of the object names its connection.
 *
 * Cost: a uprobe trap on entry and a uretprobe (two traps) per SSL call of
 * the process, any connection (docs/performance.md).
 */
#ifndef TG_TLS_BPF_H
#define TG_TLS_BPF_H

#define TG_TLS_W 1
#define TG_TLS_W_EX 2
#define TG_TLS_R 3
#define TG_TLS_R_EX 4
#define TG_TLS_HS 5
#define TG_TLS_READ_WINDOW_NS 10000000ULL

struct ssl_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ssl_key);
	__type(value, __s32);
} ssl_fds SEC(".maps");

/* Processes with a TLS PostgreSQL connection (tgid -> 1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} tls_procs SEC(".maps");

/* A socket event on the TLS connection fd (called by on_data with the
 * thread's storage): inside an SSL call it names the call's connection
 * (rule 1); a read outside one feeds the next reading call (rule 2). */
static __always_inline void tls_socket_event(struct tstate *s, int fd, __u8 dir)
{
	if (s->tls_ssl) {
		s->tls_fd = fd;
	} else if (dir == TG_DIR_IN) {
		s->tls_in_fd1 = fd + 1;
		s->tls_in_ns = bpf_ktime_get_ns();
	}
}

/* The SSL object ssl of tgid is gone (SSL_free, fd < 0) or the connection
 * fd it was tied to closed: forget its binding, so a new object at the same
 * address is placed anew; on close only if the binding is still to fd (the
 * address may already belong to another connection's object). */
static __always_inline void tls_forget(__u32 tgid, __u64 ssl, int fd)
{
	struct ssl_key k = {.tgid = tgid, .ssl = ssl};
	__s32 *bound;

	if (!ssl)
		return;
	if (fd >= 0) {
		bound = bpf_map_lookup_elem(&ssl_fds, &k);
		if (!bound || *bound != fd)
			return;
	}
	bpf_map_delete_elem(&ssl_fds, &k);
}

#endif /* TG_TLS_BPF_H */
