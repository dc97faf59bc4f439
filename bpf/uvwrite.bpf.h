/* SPDX-License-Identifier: MIT */
/*
 * Which asyncio task wrote to a PostgreSQL connection, on uvloop.
 *
 * uvloop (0.17) does not write inside the task: UVStream.write() appends the
 * bytes to the stream's buffer and adds the stream to the loop's
 * _queued_streams set; the loop writes every queued stream after the ready
 * callbacks ran, outside any task's Context. So the write syscall of an
 * asyncpg statement carries the loop's own Context, shared by all requests
 * (docs/postgres.md). The one exported function on that path is CPython's
 * PySet_Add(set, stream), which Cython calls for `self._queued_streams.add()`.
 * The same holds for every client connection (a call to another service,
 * whose wait the request is charged with): the probe serves them all.
 *
 * Hook: uprobes on the instructions of uvloop's module that call PySet_Add
 * through its PLT (tg_set_add; user/pltcalls.c finds them, and of them the
 * call in Loop._queue_write when it can be told), attached per CPython
 * process by user/tracer.c; at a call the arguments are in their registers
 * as at the function's entry. Fallback when the calls are not found: a
 * uprobe on PySet_Add itself, which every set display of the process hits. For a key that is a
 * uvloop stream whose fd is a followed client connection (PostgreSQL or another service), it stores
 * the thread's current Context (read from the thread state, as for data events) in the connection's
 * conns entry (writer_ctx). The next write on that connection (io.bpf.c, on_data) takes writer_ctx
 * as its task key instead of the writing thread's Context, and clears it. Every other key (a
 * TimerHandle when all of uvloop's calls are probed) costs the trap and up to three reads.
 *
 * The same is done for the app's server (HTTP) connections: their
 * responses are queued too, so the response's write carries the Context of
 * the task that wrote it, as on the stdlib loop. A request is then found
 * from its response (docs/attribution.md), not guessed from the reads around
 * its task's creation, which sometimes swapped the CPU of two requests read
 * in the same loop iteration (tests/e2e/test_usage.py, docs/attribution.md);
 * and
 * with the task probes off (--no-task-cpu) it is what ties a request to its
 * statements.
 *
 * Recognising a stream: UVHandle's first field after the Cython vtable
 * pointer is `uv_handle_t *_handle` (uv_handle_off), uvloop sets
 * handle->data to the Python object (checked: a key that is not a stream
 * fails this), and a TCP or pipe handle's fd is libuv's io_watcher.fd
 * (uv_fd_off, part of libuv 1.x's ABI: uv_stream_t is allocated by its
 * users). Offsets are tunables so userspace can adapt them.
 */
#ifndef TG_UVWRITE_BPF_H
#define TG_UVWRITE_BPF_H

const volatile __u32 uv_handle_off = 24; /* offsetof(UVHandle object, _handle), x86-64 */
const volatile __u32 uv_fd_off = 184;	 /* offsetof(uv_stream_t, io_watcher.fd), x86-64 */

SEC("uprobe")
int BPF_KPROBE(tg_set_add, void *set, void *key)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn_key ck = {.tgid = pid_tgid >> 32};
	struct conn_val *val;
	__u64 handle = 0, data = 0, writer;

	(void)set;
	if (bpf_probe_read_user(&handle, sizeof(handle), (const __u8 *)key + uv_handle_off) ||
	    !handle)
		return 0;
	if (bpf_probe_read_user(&data, sizeof(data), (const void *)handle) || data != (__u64)key)
		return 0;
	if (bpf_probe_read_user(&ck.fd, sizeof(ck.fd), (const __u8 *)handle + uv_fd_off))
		return 0;
	val = bpf_map_lookup_elem(&conns, &ck);
	if (!val || val->tls)
		return 0; /* TLS: the task's key rides on its SSL_write (tls.bpf.h) */
	writer = py_task_key(bpf_task_storage_get(&tstates, bpf_get_current_task_btf(), 0, 0),
			     ck.tgid, (__u32)pid_tgid);
	if (writer)
		val->writer_ctx = writer;
	return 0;
}

#endif /* TG_UVWRITE_BPF_H */
