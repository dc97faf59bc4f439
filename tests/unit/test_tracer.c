/* SPDX-License-Identifier: MIT */
/*
 * Tests of the tracer against the real kernel: needs root (skipped otherwise),
 * BTF and the io.skel.h skeleton. The test process traces itself: it opens TCP
 * connections over loopback, moves known bytes over them and checks the
 * events that come out of the ring buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "timeglass/events.h"
#include "tracer.h"

#define MAX_EVENTS 256

struct seen {
	void *ev[MAX_EVENTS];
	size_t size[MAX_EVENTS];
	int n;
};

static int collect(void *ctx, const void *ev, size_t size)
{
	struct seen *s = ctx;

	if (s->n >= MAX_EVENTS)
		return 0;
	s->ev[s->n] = malloc(size);
	memcpy(s->ev[s->n], ev, size);
	s->size[s->n++] = size;
	return 0;
}

static void seen_free(struct seen *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->ev[i]);
	s->n = 0;
}

static int need_root(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	return 0;
}

/* A loopback TCP connection: listener, client and accepted server fds. */
struct tcp {
	int lfd, cfd, sfd;
	int family;
	uint16_t lport, cport;
};

static void tcp_open(struct tcp *t, int family)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	int one = 1;

	t->family = family;
	t->lfd = socket(family, SOCK_STREAM, 0);
	assert_true(t->lfd >= 0);
	setsockopt(t->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	}
	assert_int_equal(bind(t->lfd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(t->lfd, 4), 0);
	assert_int_equal(getsockname(t->lfd, (struct sockaddr *)&ss, &sl), 0);
	t->lport = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					   : ((struct sockaddr_in6 *)&ss)->sin6_port);
	t->cfd = socket(family, SOCK_STREAM, 0);
	assert_true(t->cfd >= 0);
	assert_int_equal(connect(t->cfd, (struct sockaddr *)&ss, sl), 0);
	t->sfd = accept(t->lfd, NULL, NULL);
	assert_true(t->sfd >= 0);
	sl = sizeof(ss);
	assert_int_equal(getsockname(t->cfd, (struct sockaddr *)&ss, &sl), 0);
	t->cport = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					   : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void tcp_close(struct tcp *t)
{
	if (t->sfd >= 0)
		close(t->sfd);
	close(t->cfd);
	close(t->lfd);
}

/* Poll until an event of type arrives for fd (or 2 s pass). */
static void poll_until(struct tg_tracer *tr, struct seen *s, int type, int fd)
{
	for (int round = 0; round < 40; round++) {
		assert_true(tg_tracer__poll(tr, 50) >= 0);
		for (int i = 0; i < s->n; i++) {
			const struct tg_ev_hdr *h = s->ev[i];

			if (h->type == type && type == TG_EV_CLOSE &&
			    ((const struct tg_ev_close *)h)->fd == fd)
				return;
			if (h->type == type && type == TG_EV_DATA &&
			    ((const struct tg_ev_data *)h)->fd == fd)
				return;
		}
	}
	fail_msg("no event of type %d for fd %d", type, fd);
}

static const struct tg_ev_conn *find_conn(struct seen *s, int fd, int origin)
{
	for (int i = 0; i < s->n; i++) {
		const struct tg_ev_conn *c = s->ev[i];

		if (c->hdr.type == TG_EV_CONN && c->fd == fd && c->origin == origin)
			return c;
	}
	return NULL;
}

static const struct tg_ev_data *find_data(struct seen *s, int fd, int nth)
{
	for (int i = 0; i < s->n; i++) {
		const struct tg_ev_data *d = s->ev[i];

		if (d->hdr.type == TG_EV_DATA && d->fd == fd && nth-- == 0)
			return d;
	}
	return NULL;
}

static struct tg_tracer *open_tracer(struct seen *s, uint32_t capture)
{
	struct tg_tracer_cfg cfg = {.capture_bytes = capture, .follow_children = 1};
	char err[256] = "";
	struct tg_tracer *tr = tg_tracer__open(&cfg, collect, s, err, sizeof(err));

	if (!tr)
		fail_msg("tg_tracer__open: %s", err);
	return tr;
}

static void test_null_and_bad_args(void **state)
{
	struct tg_tracer_counters c = {1, 1, 1};
	struct tg_tracer_cfg cfg = {.ring_bytes = 5000};
	struct seen s = {0};
	char err[256] = "";

	(void)state;
	tg_tracer__close(NULL);
	tg_tracer__counters(NULL, &c);
	assert_int_equal(c.emitted, 0);
	assert_int_equal(c.dropped, 0);
	assert_int_equal(c.oncpu_misses, 0);
	assert_int_equal(tg_tracer__poll(NULL, 0), -EINVAL);
	assert_int_equal(tg_tracer__add_pid(NULL, 1), -EINVAL);

	errno = 0;
	assert_null(tg_tracer__open(NULL, NULL, NULL, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);

	errno = 0;
	assert_null(tg_tracer__open(&cfg, collect, &s, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "power of two"));
}

static void test_add_pid_missing_process(void **state)
{
	struct seen s = {0};
	struct tg_tracer *tr = open_tracer(&s, 0);

	(void)state;
	assert_int_equal(tg_tracer__add_pid(tr, 0), -EINVAL);
	assert_int_equal(tg_tracer__add_pid(tr, 0x3ffffff0), -ESRCH);
	assert_int_equal(tg_tracer__remove_pid(tr, -1), -EINVAL);
	tg_tracer__close(tr);
	seen_free(&s);
}

static void check_accept_read_writev_close(int family)
{
	struct seen s = {0};
	struct tg_tracer *tr = open_tracer(&s, 32);
	struct tg_tracer_counters cnt;
	const struct tg_ev_conn *ca, *cc;
	const struct tg_ev_data *in, *out;
	char msg[100], buf[200], body[300];
	struct iovec iov[3] = {{"HTTP/1.1 200 OK\r\n", 17}, {body, sizeof(body)}, {"0\r\n\r\n", 5}};
	uint64_t bpf_events = 0;
	struct tcp t;

	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (char)('a' + i % 26);
	memset(body, 'b', sizeof(body));
	assert_int_equal(tg_tracer__add_pid(tr, getpid()), 0);
	tcp_open(&t, family);
	assert_int_equal(write(t.cfd, msg, sizeof(msg)), sizeof(msg));
	assert_int_equal(read(t.sfd, buf, sizeof(buf)), sizeof(msg));
	assert_int_equal(writev(t.sfd, iov, 3), 322);
	assert_int_equal(read(t.cfd, buf, sizeof(buf)), sizeof(buf));
	assert_int_equal(close(t.sfd), 0);
	poll_until(tr, &s, TG_EV_CLOSE, t.sfd);

	/* the accepted connection, with both ends' addresses */
	ca = find_conn(&s, t.sfd, TG_ORIGIN_ACCEPT);
	assert_non_null(ca);
	assert_int_equal(ca->role, TG_ROLE_SERVER);
	assert_int_equal(ca->family, family);
	assert_int_equal(ca->lport, t.lport);
	assert_int_equal(ca->rport, t.cport);
	assert_int_equal(ca->hdr.pid, getpid());
	assert_int_equal(ca->conn_id & TG_CONN_ID_USER_BIT, 0);
	if (family == AF_INET) {
		assert_memory_equal(ca->laddr, "\x7f\0\0\x01", 4);
		assert_memory_equal(ca->raddr, "\x7f\0\0\x01", 4);
	} else {
		assert_memory_equal(ca->laddr, &in6addr_loopback, 16);
	}
	/* connect() is announced; the client side (not PostgreSQL) is followed
	 * for its timing only: when and how much, no payload (network waits) */
	cc = find_conn(&s, t.cfd, TG_ORIGIN_CONNECT);
	assert_non_null(cc);
	assert_int_equal(cc->role, TG_ROLE_CLIENT);
	assert_int_equal(cc->lport, t.cport);
	assert_int_equal(cc->rport, t.lport);
	assert_true(cc->conn_id != ca->conn_id);
	out = find_data(&s, t.cfd, 0);
	assert_non_null(out);
	assert_int_equal(out->conn_id, cc->conn_id);
	assert_int_equal(out->dir, TG_DIR_OUT);
	assert_int_equal(out->len, sizeof(msg));
	assert_int_equal(out->head_len, 0);
	assert_int_equal(out->tail_len, 0);
	assert_int_equal(out->flags & (TG_DATA_TIMING | TG_DATA_HEAD_TRUNC), TG_DATA_TIMING);
	in = find_data(&s, t.cfd, 1);
	assert_non_null(in);
	assert_int_equal(in->dir, TG_DIR_IN);
	assert_int_equal(in->len, sizeof(buf));
	assert_int_equal(in->head_len + in->tail_len, 0);

	/* read: head of 32 bytes, tail of the last 16 */
	in = find_data(&s, t.sfd, 0);
	assert_non_null(in);
	assert_int_equal(in->conn_id, ca->conn_id);
	assert_int_equal(in->seq, 0);
	assert_int_equal(in->dir, TG_DIR_IN);
	assert_int_equal(in->sys, TG_SYS_READ);
	assert_int_equal(in->len, 100);
	assert_int_equal(in->head_len, 32);
	assert_int_equal(in->tail_len, TG_TAIL_MAX);
	assert_int_equal(in->flags, TG_DATA_HEAD_TRUNC);
	assert_int_equal(in->hdr.size, sizeof(struct tg_ev_data) + 32 + 16);
	assert_int_equal(in->task_key, 0); /* reads carry no task key */
	assert_memory_equal(in->data, msg, 32);
	assert_memory_equal(in->data + 32, msg + 100 - 16, 16);

	/* writev: head spans the first two iovecs, tail the last two */
	out = find_data(&s, t.sfd, 1);
	assert_non_null(out);
	assert_int_equal(out->seq, 1);
	assert_int_equal(out->dir, TG_DIR_OUT);
	assert_int_equal(out->sys, TG_SYS_WRITEV);
	assert_int_equal(out->len, 322);
	assert_int_equal(out->head_len, 32);
	assert_int_equal(out->tail_len, TG_TAIL_MAX);
	assert_memory_equal(out->data, "HTTP/1.1 200 OK\r\nbbbbbbbbbbbbbbb", 32);
	assert_memory_equal(out->data + 32, "bbbbbbbbbbb0\r\n\r\n", 16);
	assert_true(out->hdr.ts_ns >= in->hdr.ts_ns);
	assert_true(out->hdr.oncpu_ns >= in->hdr.oncpu_ns);
	assert_true(out->hdr.oncpu_ns > 0);

	/* every event is sized as announced; the counters match what came */
	for (int i = 0; i < s.n; i++) {
		const struct tg_ev_hdr *h = s.ev[i];

		assert_int_equal(h->size, s.size[i]);
		assert_int_equal(h->size % 8, 0);
		bpf_events++;
	}
	tg_tracer__counters(tr, &cnt);
	assert_int_equal(cnt.dropped, 0);
	assert_int_equal(cnt.emitted, bpf_events);
	t.sfd = -1;
	tcp_close(&t);
	tg_tracer__close(tr);
	seen_free(&s);
}

/* The nth data event of fd: made by syscall sys in direction dir, carrying
 * all of its len bytes, head (len 0: a transfer whose bytes are not read). */
static const struct tg_ev_data *expect_data(struct seen *s, int fd, int nth, int sys, int dir,
					    const char *head, uint32_t len)
{
	const struct tg_ev_data *d = find_data(s, fd, nth);

	assert_non_null(d);
	assert_int_equal(d->sys, sys);
	assert_int_equal(d->dir, dir);
	assert_int_equal(d->head_len, len);
	if (len) {
		assert_int_equal(d->len, len);
		assert_memory_equal(d->data, head, len);
	}
	return d;
}

/* The other syscalls of the socket's I/O on a server connection: recvfrom,
 * sendto, recvmsg, sendmsg (the filter looks the fd up before reading the
 * msghdr) and sendfile, each an event with its payload's head. */
static void test_msg_syscalls(void **state)
{
	struct seen s = {0};
	struct tg_tracer *tr = open_tracer(&s, 64);
	char buf[200], file_path[] = "/tmp/tg-test-sendfile-XXXXXX";
	struct iovec iov[2] = {{"HTTP/1.1 ", 9}, {"204 No Content\r\n\r\n", 19}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	struct iovec riov = {buf, sizeof(buf)};
	struct msghdr rmh = {.msg_iov = &riov, .msg_iovlen = 1};
	const struct tg_ev_data *d;
	int file_fd;
	struct tcp t;

	(void)state;
	file_fd = mkstemp(file_path);
	assert_true(file_fd >= 0);
	assert_int_equal(write(file_fd, "file body!", 10), 10);
	assert_int_equal(tg_tracer__add_pid(tr, getpid()), 0);
	tcp_open(&t, AF_INET);
	assert_int_equal(send(t.cfd, "GET /a HTTP/1.1\r\n\r\n", 20, 0), 20);
	assert_int_equal(recvfrom(t.sfd, buf, sizeof(buf), 0, NULL, NULL), 20);
	assert_int_equal(sendmsg(t.sfd, &mh, 0), 28);
	assert_int_equal(recv(t.cfd, buf, sizeof(buf), 0), 28);
	assert_int_equal(send(t.cfd, "GET /b HTTP/1.1\r\n\r\n", 20, 0), 20);
	assert_int_equal(recvmsg(t.sfd, &rmh, 0), 20);
	assert_int_equal(sendto(t.sfd, "HTTP/1.1 200 OK\r\n", 17, 0, NULL, 0), 17);
	assert_int_equal(sendfile(t.sfd, file_fd, &(off_t){0}, 10), 10);
	assert_int_equal(recv(t.cfd, buf, 27, MSG_WAITALL), 27);
	assert_int_equal(close(t.sfd), 0);
	poll_until(tr, &s, TG_EV_CLOSE, t.sfd);

	expect_data(&s, t.sfd, 0, TG_SYS_RECVFROM, TG_DIR_IN, "GET /a HTTP/1.1\r\n\r\n", 20);
	expect_data(&s, t.sfd, 1, TG_SYS_SENDMSG, TG_DIR_OUT, "HTTP/1.1 204 No Content\r\n\r\n",
		    28);
	expect_data(&s, t.sfd, 2, TG_SYS_RECVMSG, TG_DIR_IN, "GET /b HTTP/1.1\r\n\r\n", 20);
	expect_data(&s, t.sfd, 3, TG_SYS_SENDTO, TG_DIR_OUT, "HTTP/1.1 200 OK\r\n", 17);
	d = expect_data(&s, t.sfd, 4, TG_SYS_SENDFILE, TG_DIR_OUT, "", 0);
	assert_int_equal(d->len, 10); /* a file's bytes are counted, not captured */
	assert_null(find_data(&s, t.sfd, 5));
	t.sfd = -1;
	tcp_close(&t);
	close(file_fd);
	unlink(file_path);
	tg_tracer__close(tr);
	seen_free(&s);
}

static void test_accept_read_writev_close_ipv4(void **state)
{
	(void)state;
	check_accept_read_writev_close(AF_INET);
}

static void test_accept_read_writev_close_ipv6(void **state)
{
	(void)state;
	check_accept_read_writev_close(AF_INET6);
}

static void test_existing_connection_is_announced_and_followed(void **state)
{
	struct seen s = {0};
	struct tg_tracer *tr = open_tracer(&s, 0);
	const struct tg_ev_conn *srv, *cli;
	const struct tg_ev_data *d;
	char buf[16];
	struct tcp t;

	(void)state;
	tcp_open(&t, AF_INET); /* before the process is traced */
	assert_int_equal(tg_tracer__add_pid(tr, getpid()), 0);
	srv = find_conn(&s, t.sfd, TG_ORIGIN_EXISTING);
	cli = find_conn(&s, t.cfd, TG_ORIGIN_EXISTING);
	assert_non_null(srv);
	assert_non_null(cli);
	assert_int_equal(srv->role, TG_ROLE_SERVER);
	assert_int_equal(cli->role, TG_ROLE_CLIENT);
	assert_true(srv->conn_id & TG_CONN_ID_USER_BIT);
	assert_int_equal(srv->lport, t.lport);
	assert_int_equal(srv->rport, t.cport);
	assert_int_equal(srv->hdr.size, sizeof(struct tg_ev_conn));

	assert_int_equal(send(t.cfd, "ping", 4, 0), 4);
	assert_int_equal(recv(t.sfd, buf, sizeof(buf), 0), 4);
	poll_until(tr, &s, TG_EV_DATA, t.sfd);
	d = find_data(&s, t.sfd, 0);
	assert_int_equal(d->conn_id, srv->conn_id);
	assert_int_equal(d->seq, 0);
	assert_int_equal(d->sys, TG_SYS_RECVFROM);
	assert_int_equal(d->len, 4);
	assert_int_equal(d->head_len, 4);
	assert_int_equal(d->tail_len, 0);
	assert_memory_equal(d->data, "ping", 4);

	/* after remove_pid nothing more comes */
	assert_int_equal(tg_tracer__remove_pid(tr, getpid()), 0);
	seen_free(&s);
	assert_int_equal(send(t.sfd, "pong", 4, 0), 4);
	assert_true(tg_tracer__poll(tr, 100) >= 0);
	assert_null(find_data(&s, t.sfd, 0));
	tcp_close(&t);
	tg_tracer__close(tr);
	seen_free(&s);
}

/* Burn about ms milliseconds of this thread's CPU. */
static void burn_cpu(long ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L < ms);
}

/* The on-CPU time two data events of this thread carry, 20 ms of CPU apart,
 * from a tracer opened with cfg. */
static void oncpu_of_two_events(const struct tg_tracer_cfg *cfg, uint64_t *first, uint64_t *second)
{
	struct seen s = {0};
	char err[256] = "", buf[16];
	struct tg_tracer *tr = tg_tracer__open(cfg, collect, &s, err, sizeof(err));
	const struct tg_ev_data *d;
	struct tcp t;

	if (!tr)
		fail_msg("tg_tracer__open: %s", err);
	assert_int_equal(tg_tracer__add_pid(tr, getpid()), 0);
	tcp_open(&t, AF_INET);
	assert_int_equal(send(t.cfd, "one", 3, 0), 3);
	assert_int_equal(recv(t.sfd, buf, sizeof(buf), 0), 3);
	burn_cpu(20);
	assert_int_equal(send(t.cfd, "two", 3, 0), 3);
	assert_int_equal(recv(t.sfd, buf, sizeof(buf), 0), 3);
	for (int round = 0; round < 40 && !find_data(&s, t.sfd, 1); round++)
		assert_true(tg_tracer__poll(tr, 50) >= 0);
	d = find_data(&s, t.sfd, 0);
	assert_non_null(d);
	*first = d->hdr.oncpu_ns;
	d = find_data(&s, t.sfd, 1);
	assert_non_null(d);
	*second = d->hdr.oncpu_ns;
	tcp_close(&t);
	tg_tracer__close(tr);
	seen_free(&s);
}

/* Events carry the thread's on-CPU time, except with the task probes off
 * (--no-task-cpu), where the scheduler programs are not loaded. */
static void test_oncpu_only_with_task_probes(void **state)
{
	struct tg_tracer_cfg cfg = {.follow_children = 1};
	uint64_t a, b;

	(void)state;
	oncpu_of_two_events(&cfg, &a, &b);
	assert_true(b >= a + 15 * 1000000ULL); /* the 20 ms burnt between them */
	cfg.no_task_probes = 1;
	oncpu_of_two_events(&cfg, &a, &b);
	assert_int_equal(a, 0);
	assert_int_equal(b, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_null_and_bad_args, need_root),
	    cmocka_unit_test_setup(test_add_pid_missing_process, need_root),
	    cmocka_unit_test_setup(test_existing_connection_is_announced_and_followed, need_root),
	    cmocka_unit_test_setup(test_accept_read_writev_close_ipv4, need_root),
	    cmocka_unit_test_setup(test_accept_read_writev_close_ipv6, need_root),
	    cmocka_unit_test_setup(test_msg_syscalls, need_root),
	    cmocka_unit_test_setup(test_oncpu_only_with_task_probes, need_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
