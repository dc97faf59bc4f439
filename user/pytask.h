/* SPDX-License-Identifier: MIT */
/*
 * Which HTTP connection an asyncio task serves, read from the task's own
 * objects in the target's memory (process_vm_readv), so CPU samples can be
 * attributed to requests on any event loop (uvloop flushes responses outside
 * the request's task, so the response's task key says nothing there).
 *
 * uvicorn runs each request in a task whose root coroutine is
 * RequestResponseCycle.run_asgi(self, app): its frame's first local is self,
 * self.scope is the ASGI scope dict and scope["client"] is the peer's
 * (host, port) tuple. The peer port (with the pid) names the connection.
 * CPython 3.11 only (x86-64 layouts checked with offsetof() against
 * /usr/include/python3.11/internal); other versions give -ENOTSUP.
 * docs/flamegraph.md.
 */
#ifndef TG_PYTASK_H
#define TG_PYTASK_H

#include <stdint.h>
#include <sys/types.h>

#include "pyruntime.h"

/* The qualified name of the root coroutine of a uvicorn request task. */
#define TG_PYTASK_UVICORN_ROOT "RequestResponseCycle.run_asgi"

/* The peer port of the uvicorn request task whose root coroutine object is
 * at coro in process pid (off: its runtime's offsets). Returns 0 and *port;
 * -ENOENT when the coroutine is not RequestResponseCycle.run_asgi or its
 * scope has no usable "client"; -ENOTSUP for a CPython other than 3.11;
 * -EFAULT/-ESRCH/-EPERM when memory is not readable; -EINVAL on garbage. */
int tg_pytask__peer_port(pid_t pid, const struct tg_py_offsets *off, uint64_t coro, uint16_t *port);

/* The value of attribute name (an ASCII identifier) of the object at obj,
 * from its instance dict (3.11 managed dict: inline values with the type's
 * shared keys, or a materialised dict). Returns 0 and *val (an object
 * address); -ENOENT when absent; errors as above. */
int tg_pytask__getattr(pid_t pid, const struct tg_py_offsets *off, uint64_t obj, const char *name,
		       uint64_t *val);

/* The value of the str key (ASCII) in the dict object at dict. Returns 0 and
 * *val; -ENOENT when absent; errors as above. */
int tg_pytask__dict_get(pid_t pid, const struct tg_py_offsets *off, uint64_t dict, const char *key,
			uint64_t *val);

/* Item i of the tuple object at tuple: 0 and *val, or -ENOENT (i out of
 * range); errors as above. */
int tg_pytask__tuple_item(pid_t pid, uint64_t tuple, uint64_t i, uint64_t *val);

/* The value of the int object at addr when it fits in 0..2^30-1 (one
 * digit): 0 and *val; -ERANGE otherwise; errors as above. */
int tg_pytask__small_int(pid_t pid, uint64_t addr, uint64_t *val);

/* Forget what the reads above remember about process pid (type objects'
 * names, flags and shared keys; which str objects are which names: see
 * user/pytask.c), when it exits or execs. Per thread, like the memory. */
void tg_pytask__forget(pid_t pid);

/* How many reads of target memory this thread's calls above made: each is a
 * process_vm_readv. For statistics and tests. */
uint64_t tg_pytask__reads(void);

#endif
