/* SPDX-License-Identifier: MIT */
/*
 * pytask.h against a real CPython 3.11 child (/usr/bin/python3): it builds
 * uvicorn-like RequestResponseCycle objects (inline values and a
 * materialised __dict__), coroutines of run_asgi and of another method, and
 * a large dict, prints their addresses and waits; the test reads them.
 * Skipped when /usr/bin/python3 is not 3.11.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pytask.h"

static const char script[] =
    "import sys\n"
    "class RequestResponseCycle:\n"
    "    def __init__(self, scope):\n"
    "        self.transport = None\n"
    "        self.scope = scope\n"
    "    async def run_asgi(self, app):\n"
    "        return 1\n"
    "class Other:\n"
    "    async def run_asgi(self, app):\n"
    "        return 1\n"
    "c = RequestResponseCycle({'type': 'http', 'client': ('127.0.0.1', 54321)})\n"
    "d = RequestResponseCycle({'client': ('10.0.0.1', 8080), 'x': 1})\n"
    "d.__dict__['extra'] = 2\n"
    "e = RequestResponseCycle({'type': 'http', 'client': None})\n"
    "o = Other()\n"
    "big = {'k%d' % i: i for i in range(100)}\n"
    "del big['k5']\n"
    "big['huge'] = 2 ** 40\n"
    "cs = [c.run_asgi(None), d.run_asgi(None), e.run_asgi(None), o.run_asgi(None)]\n"
    "print(*[id(x) for x in cs + [c, big, big['huge']]], flush=True)\n"
    "sys.stdin.read()\n"
    "for x in cs: x.close()\n";

struct child {
	pid_t pid;
	FILE *in; /* its stdin: closing it ends the child */
	uint64_t coro_c, coro_d, coro_e, coro_o, obj_c, big, huge;
	struct tg_py_offsets off;
	int skip; /* not CPython 3.11 */
};

static int setup(void **state)
{
	static struct child ch;
	int out[2], in[2];
	char line[512];
	struct tg_pyruntime rt;
	FILE *f;

	if (access("/usr/bin/python3", X_OK) || pipe(out) || pipe(in))
		return -1;
	ch.pid = fork();
	if (ch.pid < 0)
		return -1;
	if (!ch.pid) {
		dup2(out[1], 1);
		dup2(in[0], 0);
		close(out[0]);
		close(in[1]);
		execl("/usr/bin/python3", "python3", "-c", script, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	close(in[0]);
	ch.in = fdopen(in[1], "w");
	f = fdopen(out[0], "r");
	if (!ch.in || !f || !fgets(line, sizeof(line), f) ||
	    sscanf(line,
		   "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
		   " %" SCNu64,
		   &ch.coro_c, &ch.coro_d, &ch.coro_e, &ch.coro_o, &ch.obj_c, &ch.big,
		   &ch.huge) != 7 ||
	    tg_pyruntime__detect(ch.pid, &rt)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	ch.off = rt.off;
	ch.skip = rt.major != 3 || rt.minor != 11;
	*state = &ch;
	return 0;
}

static int teardown(void **state)
{
	struct child *ch = *state;
	int st;

	if (!ch)
		return 0;
	fclose(ch->in);
	waitpid(ch->pid, &st, 0);
	return 0;
}

static void test_not_supported_and_bad_addresses(void **state)
{
	struct child *ch = *state;
	struct tg_py_offsets other = ch->off;
	uint16_t port = 7;
	uint64_t v;

	if (ch->skip)
		skip();
	other.minor = 12;
	assert_int_equal(tg_pytask__peer_port(ch->pid, &other, ch->coro_c, &port), -ENOTSUP);
	assert_int_equal(port, 7);
	assert_int_not_equal(tg_pytask__peer_port(ch->pid, &ch->off, 0, &port), 0);
	assert_int_not_equal(tg_pytask__peer_port(ch->pid, &ch->off, 8, &port), 0);
	assert_int_not_equal(tg_pytask__dict_get(ch->pid, &ch->off, ch->obj_c, "scope", &v), 0);
	assert_int_not_equal(tg_pytask__tuple_item(ch->pid, ch->big, 0, &v), 0);
	assert_int_equal(tg_pytask__small_int(ch->pid, ch->huge, &v), -ERANGE);
	assert_int_equal(port, 7);
}

static void test_peer_ports(void **state)
{
	struct child *ch = *state;
	uint16_t port = 0;

	if (ch->skip)
		skip();
	assert_int_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_c, &port), 0);
	assert_int_equal(port, 54321);
	/* Materialised instance dict. */
	assert_int_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_d, &port), 0);
	assert_int_equal(port, 8080);
	/* client None, and a coroutine of another class. */
	port = 9;
	assert_int_not_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_e, &port), 0);
	assert_int_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_o, &port), -ENOENT);
	assert_int_equal(port, 9);
}

static void test_dict_and_attrs(void **state)
{
	struct child *ch = *state;
	uint64_t v, w;

	if (ch->skip)
		skip();
	assert_int_equal(tg_pytask__getattr(ch->pid, &ch->off, ch->obj_c, "nope", &v), -ENOENT);
	assert_int_equal(tg_pytask__getattr(ch->pid, &ch->off, ch->obj_c, "transport", &v), 0);
	assert_int_equal(tg_pytask__dict_get(ch->pid, &ch->off, ch->big, "k5", &v), -ENOENT);
	assert_int_equal(tg_pytask__dict_get(ch->pid, &ch->off, ch->big, "k99", &v), 0);
	assert_int_equal(tg_pytask__small_int(ch->pid, v, &w), 0);
	assert_int_equal(w, 99);
	assert_int_equal(tg_pytask__dict_get(ch->pid, &ch->off, ch->big, "k0", &v), 0);
	assert_int_equal(tg_pytask__small_int(ch->pid, v, &w), 0);
	assert_int_equal(w, 0);
	assert_int_equal(tg_pytask__dict_get(ch->pid, &ch->off, ch->big, "huge", &v), 0);
	assert_int_equal(v, ch->huge);
}

/* The second walk of the same coroutine reads less of the target: what
 * repeats (types, the scope's key strings, the qualname) is remembered, and
 * gives the same answers; forgetting the process reads it all again. */
static void test_walks_remember(void **state)
{
	struct child *ch = *state;
	uint64_t r0, first, second, again;
	uint16_t port = 0;

	if (ch->skip)
		skip();
	tg_pytask__forget(ch->pid);
	r0 = tg_pytask__reads();
	assert_int_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_c, &port), 0);
	first = tg_pytask__reads() - r0;
	assert_int_equal(port, 54321);
	port = 0;
	r0 = tg_pytask__reads();
	assert_int_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_c, &port), 0);
	second = tg_pytask__reads() - r0;
	assert_int_equal(port, 54321);
	assert_true(second > 0);
	print_message("reads per walk: %llu first, %llu remembered\n", (unsigned long long)first,
		      (unsigned long long)second);
	assert_true(second * 2 <= first); /* at least half saved */
	/* remembered negatives stay negative, positives of other objects hold */
	assert_int_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_o, &port), -ENOENT);
	assert_int_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_d, &port), 0);
	assert_int_equal(port, 8080);
	tg_pytask__forget(ch->pid);
	r0 = tg_pytask__reads();
	assert_int_equal(tg_pytask__peer_port(ch->pid, &ch->off, ch->coro_c, &port), 0);
	again = tg_pytask__reads() - r0;
	assert_int_equal(again, first);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_not_supported_and_bad_addresses),
	    cmocka_unit_test(test_peer_ports),
	    cmocka_unit_test(test_dict_and_attrs),
	    cmocka_unit_test(test_walks_remember),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
