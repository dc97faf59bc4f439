/* SPDX-License-Identifier: MIT */
/* Events -> recording -> pipeline -> store (session.h). */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "log.h"
#include "pipeline.h"
#include "profile.h"
#include "query_store.h"
#include "record.h"
#include "scrub.h"
#include "store.h"
#include "tg_version.h"
#include "timeglass/events.h"

uint64_t tg_session__mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t tg_session__mono_to_epoch(void)
{
	struct timespec rt, m1, m2;
	uint64_t mono, real;

	/* Bracket the realtime read with two monotonic reads and take their midpoint. */
	clock_gettime(CLOCK_MONOTONIC, &m1);
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &m2);
	mono = ((uint64_t)m1.tv_sec * 1000000000ULL + (uint64_t)m1.tv_nsec +
		(uint64_t)m2.tv_sec * 1000000000ULL + (uint64_t)m2.tv_nsec) /
	       2;
	real = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec;
	return real - mono;
}

static int64_t on_request(void *ctx, const struct tg_request *req)
{
	struct tg_session *s = ctx;
	int64_t id = 0;

	if (tg_store__add_request_id(s->store, req, &id)) {
		tg_warn("could not queue a request for the database");
		id = 0;
	}
	tg_profile__request(s->prof, req, id);
	return id;
}

static void on_query(void *ctx, const struct tg_query *q)
{
	struct tg_session *s = ctx;

	if (s->store && tg_query_store__add(s->store, q))
		tg_warn("could not queue an SQL statement for the database");
}

/* A stored request's CPU/memory figures became final (taskcpu.h). */
static void on_usage(void *ctx, int64_t request_id, const struct tg_usage *u)
{
	struct tg_session *s = ctx;

	if (s->store && tg_store__update_usage(s->store, request_id, u))
		tg_warn("could not queue a request's usage update for the database");
}

/* A frame symbolised live (profile.h): into the recording only, ahead of the
 * sample being handled, so that replay knows it before the sample. */
static void emit_pysym(void *ctx, uint32_t pid, const char *text)
{
	struct tg_session *s = ctx;
	size_t n = strlen(text) + 1, size = (sizeof(struct tg_ev_text) + n + 7) & ~(size_t)7;
	struct tg_ev_text *e;

	if (!s->rec || size > 65535)
		return;
	e = calloc(1, size);
	if (!e)
		return;
	e->hdr.type = TG_EV_PYSYM;
	e->hdr.size = (uint16_t)size;
	e->hdr.pid = pid;
	e->hdr.tid = pid;
	e->hdr.ts_ns = tg_session__mono_now();
	memcpy(e->text, text, n);
	if (tg_record__write(s->rec, e, size))
		s->record_errors++;
	free(e);
}

static void on_meta(void *ctx, const void *ev, size_t size)
{
	struct tg_session *s = ctx;
	const struct tg_ev_hdr *h = ev;

	(void)size;
	if (h->type == TG_EV_TARGET) {
		const struct tg_ev_text *t = ev;

		tg_store__add_target(s->store, h->pid, t->text, h->ts_ns);
	} else if (h->type == TG_EV_DROPS) {
		const struct tg_ev_drops *d = ev;

		s->emitted = d->emitted;
		s->dropped = d->dropped;
	}
}

int tg_session__open(struct tg_session *s, const struct tg_session_cfg *cfg, char *err,
		     size_t errlen)
{
	struct tg_pipeline_cfg pcfg = {.keep_query_values = cfg->keep_query_values,
				       .on_request = on_request,
				       .on_meta = on_meta,
				       .ctx = s};
	struct tg_run_info info = {0};
	struct tg_profile_cfg pfcfg = {0};
	struct utsname u;
	int ret;

	memset(s, 0, sizeof(*s));
	pcfg.keep_sql_values = cfg->keep_sql_values;
	pcfg.on_query = on_query;
	pcfg.on_usage = on_usage;
	for (size_t i = 0; cfg->pg_ports && i < cfg->npg_ports && i < TG_PIPELINE_MAX_PG_PORTS; i++)
		pcfg.pg_ports[pcfg.npg_ports++] = cfg->pg_ports[i];
	s->mono_to_epoch_ns = cfg->mono_to_epoch_ns;
	s->keep_query_values = cfg->keep_query_values;
	s->store = tg_store__open(cfg->db_path, err, errlen);
	if (!s->store)
		return -errno;
	uname(&u);
	info.started_ns = cfg->started_ns;
	info.mono_to_epoch_ns = cfg->mono_to_epoch_ns;
	info.targets = cfg->targets;
	info.kernel = u.release;
	info.version = TG_VERSION;
	ret = tg_store__begin_run(s->store, &info, &s->run_id);
	if (ret) {
		snprintf(err, errlen, "%s: cannot start a run: %s", cfg->db_path, strerror(-ret));
		return ret;
	}
	s->pipe = tg_pipeline__new(&pcfg);
	if (!s->pipe) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (cfg->record_path) {
		s->rec = tg_record__create(cfg->record_path, cfg->mono_to_epoch_ns);
		if (!s->rec) {
			ret = -errno;
			snprintf(err, errlen, "%s: cannot create the recording: %s",
				 cfg->record_path, strerror(errno));
			return ret;
		}
	}
	pfcfg.store = s->store;
	pfcfg.live = cfg->live_symbols;
	pfcfg.sample_hz = cfg->sample_hz;
	pfcfg.emit = emit_pysym;
	pfcfg.ctx = s;
	pfcfg.contexts_known = cfg->contexts_known;
	pfcfg.contexts_ctx = cfg->contexts_ctx;
	s->prof = tg_profile__new(&pfcfg);
	if (!s->prof) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Write ev to the recording, data and TLS plaintext events scrubbed of
 * secrets first. */
static int record_event(struct tg_session *s, const void *ev, size_t size)
{
	const struct tg_ev_data *d = ev;
	const struct tg_ev_tls *t = ev;

	if (size >= sizeof(*t) && t->hdr.type == TG_EV_TLS &&
	    size >= sizeof(*t) + (size_t)t->head_len) {
		struct tg_ev_tls *copy = (struct tg_ev_tls *)s->scrub_buf;

		memcpy(copy, ev, size); /* size <= 65535: hdr.size is 16 bits */
		if (copy->dir == TG_DIR_OUT)
			tg_scrub__pg(copy->data, copy->head_len);
		return tg_record__write(s->rec, copy, size);
	}
	if (size < sizeof(*d) || d->hdr.type != TG_EV_DATA ||
	    size < sizeof(*d) + (size_t)d->head_len + d->tail_len)
		return tg_record__write(s->rec, ev, size);
	{
		struct tg_ev_data *copy = (struct tg_ev_data *)s->scrub_buf;

		memcpy(copy, ev, size);
		tg_scrub__http(copy->data, copy->head_len, s->keep_query_values);
		if (copy->dir == TG_DIR_OUT)
			tg_scrub__pg(copy->data, copy->head_len);
		return tg_record__write(s->rec, copy, size);
	}
}

int tg_session__event(struct tg_session *s, const void *ev, size_t size)
{
	const struct tg_ev_hdr *h = ev;

	/* Samples first: symbolising one live may record TG_EV_PYSYM events it needs. */
	if (s->prof && size >= sizeof(*h) &&
	    (h->type == TG_EV_SAMPLE || h->type == TG_EV_PYSYM || h->type == TG_EV_PROC))
		tg_profile__event(s->prof, ev, size);
	if (s->rec && record_event(s, ev, size))
		s->record_errors++;
	if (size >= sizeof(*h) && h->type < 64)
		s->kernel_events++;
	if (size >= sizeof(*h) && h->type == TG_EV_ROUTES && h->size == size) {
		uint32_t *n = realloc(s->routed_pids, (s->nrouted + 1) * sizeof(*n));

		if (n) {
			s->routed_pids = n;
			s->routed_pids[s->nrouted++] = h->pid;
		}
	}
	return tg_pipeline__event(s->pipe, ev, size);
}

int tg_session__text_event(struct tg_session *s, uint16_t type, uint32_t pid, const char *text)
{
	size_t n = strlen(text) + 1, size = (sizeof(struct tg_ev_text) + n + 7) & ~(size_t)7;
	struct tg_ev_text *e;
	int ret;

	if (size > 65535)
		return -E2BIG;
	e = calloc(1, size);
	if (!e)
		return -ENOMEM;
	e->hdr.type = type;
	e->hdr.size = (uint16_t)size;
	e->hdr.pid = pid;
	e->hdr.tid = pid;
	e->hdr.ts_ns = tg_session__mono_now();
	memcpy(e->text, text, n);
	ret = tg_session__event(s, e, size);
	free(e);
	return ret;
}

int tg_session__drops_event(struct tg_session *s, uint64_t emitted, uint64_t dropped)
{
	struct tg_ev_drops e = {.hdr = {.type = TG_EV_DROPS, .size = sizeof(e)}};

	e.hdr.ts_ns = tg_session__mono_now();
	e.emitted = emitted;
	e.dropped = dropped;
	return tg_session__event(s, &e, sizeof(e));
}

int tg_session__close(struct tg_session *s)
{
	struct timespec rt;
	uint64_t ended;
	size_t i;
	int ret = 0, r;

	if (s->pipe) {
		struct tg_pipeline_stats ps;

		tg_pipeline__finish(s->pipe, tg_session__mono_now());
		tg_pipeline__stats(s->pipe, &ps);
		if (ps.tls_dropped)
			tg_warn(
			    "%llu TLS plaintext events of PostgreSQL connections could not be tied "
			    "to their connection: their statements are missing",
			    (unsigned long long)ps.tls_dropped);
		if (s->store)
			for (i = 0; i < s->nrouted; i++) {
				const struct tg_routes *t =
				    tg_pipeline__routes(s->pipe, s->routed_pids[i]);

				if (t)
					tg_store__reroute(s->store, s->routed_pids[i], t);
			}
	}
	tg_profile__finish(s->prof);
	if (s->store) {
		clock_gettime(CLOCK_REALTIME, &rt);
		ended = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec;
		ret = tg_store__end_run(s->store, ended, s->kernel_events, s->dropped);
		tg_store__close(s->store);
		s->store = NULL;
	}
	tg_profile__free(s->prof);
	s->prof = NULL;
	tg_pipeline__free(s->pipe);
	s->pipe = NULL;
	r = tg_record__close(s->rec);
	s->rec = NULL;
	if (!ret)
		ret = r;
	free(s->routed_pids);
	s->routed_pids = NULL;
	return ret;
}
