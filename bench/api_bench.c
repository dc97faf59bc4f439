/* SPDX-License-Identifier: MIT */
/*
 * API latency benchmark (docs/serve.md, docs/performance.md).
 *
 * Generates (once, unless the file exists) a database of N requests (default
 * 1,000,000) through the real store: 30 endpoints, mixed statuses, log-normal
 * durations per endpoint, spread over one hour. Then starts the real server
 * on a loopback ephemeral port and calls every API behind the page ITERS
 * times each over HTTP, printing p50/p95/max per call in ms.
 *
 *   api_bench [--db FILE] [--requests N] [--iters N] [--live]
 *
 * --live leaves the run open (no end_run: no endpoint/duration indexes), as
 * a dashboard sees a run being traced.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "server.h"
#include "store.h"

#define BASE_NS 1764000000000000000ULL
#define HOUR_NS 3600000000000ULL
#define N_EP 30

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_u64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double uniform(void)
{
	return ((double)(next_u64() >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void)
{
	return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int generate(const char *path, long n, bool live)
{
	static const char *const verbs[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
	struct tg_run_info info = {.started_ns = BASE_NS,
				   .mono_to_epoch_ns = BASE_NS,
				   .targets = "--uvicorn",
				   .kernel = "6.18",
				   .version = "0.1.0"};
	struct tg_request r;
	struct tg_store *s;
	double t0 = now_ms(), t1, median_ms[N_EP];
	char err[256];
	int64_t run;
	long i;
	int e;

	s = tg_store__open(path, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "api_bench: %s\n", err);
		return -1;
	}
	if (tg_store__begin_run(s, &info, &run)) {
		tg_store__close(s);
		return -1;
	}
	for (e = 0; e < N_EP; e++)
		median_ms[e] = 0.5 * pow(1.25, e); /* 0.5 ms .. ~300 ms */
	for (i = 0; i < n; i++) {
		double u = uniform(), d;

		memset(&r, 0, sizeof(r));
		/* Zipf-ish popularity: low endpoint numbers are busier */
		e = (int)(pow(u, 2.0) * N_EP);
		r.conn_id = (uint64_t)i / 8 + 1;
		r.pid = 4242;
		r.tid = 4242;
		r.start_ns = (uint64_t)((double)HOUR_NS * (double)i / (double)n);
		d = median_ms[e] * exp(0.8 * normal()) * 1e6;
		u = uniform();
		r.status = u < 0.93 ? 200 : u < 0.96 ? 404 : u < 0.98 ? 500 : u < 0.99 ? 201 : 0;
		if (r.status) {
			r.end_ns = r.start_ns + (uint64_t)d;
			r.first_resp_ns = r.start_ns + (uint64_t)(d * 0.9);
		} else {
			r.flags = TG_REQ_INCOMPLETE;
		}
		r.req_bytes = 200 + next_u64() % 500;
		r.resp_bytes = 150 + next_u64() % 20000;
		snprintf(r.method, sizeof(r.method), "%s", verbs[e % 6]);
		snprintf(r.route, sizeof(r.route), "/api/v1/res%02d/{id}", e);
		snprintf(r.target, sizeof(r.target), "/api/v1/res%02d/%llu?page=", e,
			 (unsigned long long)(next_u64() % 100000));
		snprintf(r.peer, sizeof(r.peer), "10.0.0.%d:%d", (int)(i % 200) + 1,
			 (int)(i % 60000) + 1024);
		if (tg_store__add_request(s, &r))
			break;
	}
	tg_store__flush(s);
	t1 = now_ms();
	if (!live)
		tg_store__end_run(s, BASE_NS + HOUR_NS, (uint64_t)n * 6, 0);
	tg_store__close(s);
	fprintf(stderr, "api_bench: wrote %ld requests in %.1f s (%.0f rows/s), end_run %.1f s%s\n",
		n, (t1 - t0) / 1e3, (double)n / ((t1 - t0) / 1e3), (now_ms() - t1) / 1e3,
		live ? " (live run: no end_run)" : "");
	return 0;
}

/* GET path; returns the body (malloc'd) and sets *status. */
static char *http_get(int port, const char *path, int *status)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	char req[2048], *buf = NULL, *p, *sep;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	*status = 0;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return NULL;
	}
	for (;;) {
		if (len + 65536 > cap) {
			cap = cap ? cap * 2 : 262144;
			p = realloc(buf, cap);
			if (!p)
				break;
			buf = p;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf)
		return NULL;
	buf[len] = '\0';
	sscanf(buf, "HTTP/1.1 %d", status);
	sep = strstr(buf, "\r\n\r\n");
	p = strdup(sep ? sep + 4 : "");
	free(buf);
	return p;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench(int port, const char *name, const char *path, int iters)
{
	double *t = calloc((size_t)iters, sizeof(*t)), t0;
	int i, status = 0;
	char *body;

	for (i = 0; i < iters; i++) {
		t0 = now_ms();
		body = http_get(port, path, &status);
		t[i] = now_ms() - t0;
		free(body);
		if (status != 200) {
			printf("%-28s HTTP %d  %s\n", name, status, path);
			free(t);
			return;
		}
	}
	qsort(t, (size_t)iters, sizeof(*t), cmp_d);
	printf("%-28s p50 %8.2f ms  p95 %8.2f ms  max %8.2f ms  %s\n", name, t[iters / 2],
	       t[(int)ceil(0.95 * iters) - 1], t[iters - 1], path);
	free(t);
}

/* The cursor of page `pages` of path (walking from the first). */
static void deep_cursor(int port, const char *path, int pages, char *out, size_t len)
{
	char url[512], next[64] = "";
	int i, status;

	for (i = 0; i < pages; i++) {
		char *body;
		cJSON *j, *nx;

		snprintf(url, sizeof(url), "%s%s%s", path, next[0] ? "&after=" : "", next);
		body = http_get(port, url, &status);
		j = body ? cJSON_Parse(body) : NULL;
		free(body);
		nx = j ? cJSON_GetObjectItem(j, "next") : NULL;
		if (!cJSON_IsString(nx)) {
			cJSON_Delete(j);
			break;
		}
		snprintf(next, sizeof(next), "%s", nx->valuestring);
		cJSON_Delete(j);
	}
	snprintf(out, len, "%s&after=%s", path, next);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"requests", required_argument, NULL, 'n'},
	    {"iters", required_argument, NULL, 'i'},
	    {"live", no_argument, NULL, 'l'},
	    {0},
	};
	struct tg_server_cfg cfg = {.listen = "127.0.0.1:0", .threads = 2};
	const char *db = "/tmp/tg_api_bench.db";
	long n = 1000000;
	int iters = 50, c, port;
	bool live = false;
	struct tg_server *s;
	char err[256], deep[640], deep_d[640];

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'n':
			n = atol(optarg);
			break;
		case 'i':
			iters = atoi(optarg);
			break;
		case 'l':
			live = true;
			break;
		default:
			fprintf(stderr, "usage: api_bench [--db FILE] [--requests N] [--iters N] "
					"[--live]\n");
			return 2;
		}
	}
	if (iters < 1)
		iters = 1;
	if (access(db, F_OK) != 0 && generate(db, n, live))
		return 1;
	cfg.db_path = db;
	s = tg_server__start(&cfg, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "api_bench: %s\n", err);
		return 1;
	}
	port = tg_server__port(s);
	printf("api_bench: %s, %d calls each\n", db, iters);
	bench(port, "status", "/api/status", iters);
	bench(port, "runs", "/api/runs", iters);
	bench(port, "overview", "/api/overview", iters);
	bench(port, "endpoints", "/api/endpoints", iters);
	bench(port, "endpoints sort=p95", "/api/endpoints?sort=p95", iters);
	bench(port, "requests (live tail)", "/api/requests?sort=start&order=desc", iters);
	bench(port, "requests asc", "/api/requests?sort=start&order=asc", iters);
	deep_cursor(port, "/api/requests?limit=100", 50, deep, sizeof(deep));
	bench(port, "requests page 51", deep, iters);
	bench(port, "requests sort=duration", "/api/requests?sort=duration", iters);
	deep_cursor(port, "/api/requests?sort=duration&limit=100", 20, deep_d, sizeof(deep_d));
	bench(port, "requests dur page 21", deep_d, iters);
	bench(port, "requests status=5xx", "/api/requests?status=5xx", iters);
	bench(port, "requests status=err", "/api/requests?status=err", iters);
	bench(port, "requests endpoint", "/api/requests?method=GET&route=/api/v1/res06/{id}",
	      iters);
	bench(port, "requests endpoint+dur",
	      "/api/requests?method=GET&route=/api/v1/res06/{id}&sort=duration", iters);
	bench(port, "requests rare endpoint", "/api/requests?method=GET&route=/api/v1/res24/{id}",
	      iters);
	bench(port, "requests min_ms=1000", "/api/requests?min_ms=1000", iters);
	bench(port, "requests q=/res07/123", "/api/requests?q=/res07/123", iters);
	bench(port, "requests q (no match)", "/api/requests?q=nomatch", iters);
	bench(port, "requests time window",
	      "/api/requests?from_ns=1764000600000000000&to_ns=1764000660000000000", iters);
	bench(port, "request one", "/api/requests/500000", iters);
	tg_server__stop(s);
	return 0;
}
