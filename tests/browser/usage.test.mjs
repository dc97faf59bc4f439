// SPDX-License-Identifier: MIT
// Browser tests of the per-request resources views (issue #4): the request
// page's Resources panel and timeline waterfall, the CPU column of the
// requests list, the CPU/GC means of the endpoints table, the overview's RSS
// chart, and how all of them stay hidden on a run without usage data.
//
// The data is made here, independent of the tracer: TG_DB is copied twice
// (sqlite3 .backup) into a temp dir, each copy served by its own
// `$TIMEGLASS serve` (which upgrades it to schema v5 once). In "usage.db" a
// few requests get known usage columns, timelines and process_stats rows
// (written with the sqlite3 CLI while the server runs; it reads each call in
// a new transaction); in "plain.db" every usage column is NULL. Expected
// values are computed from those numbers, never read back from the API.
//
//   TG_DB      a database made by scripts/demo.sh (SQL statements make the SQL lane testable)
//   TIMEGLASS  the binary (default build/timeglass)

import {test, before, after, afterEach} from 'node:test';
import assert from 'node:assert/strict';
import {execFileSync, spawn} from 'node:child_process';
import {mkdirSync, mkdtempSync, chmodSync, rmSync} from 'node:fs';
import {createServer} from 'node:net';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const SRC_DB = process.env.TG_DB;
const TG = process.env.TIMEGLASS || path.join(repo, 'build', 'timeglass');
const ART = process.env.TG_ARTIFACTS || path.join(here, '..', 'artifacts', 'browser');
if (!SRC_DB)
	throw new Error('TG_DB must name a database made by scripts/demo.sh');

// ---- Formatting as web/util.js does it (what the page must show).
const fmtMsExact = (v) => v.toFixed(3) + ' ms';
function fmtMs(v) {
	if (v >= 10000)
		return (v / 1000).toFixed(1) + ' s';
	if (v >= 1000)
		return (v / 1000).toFixed(2) + ' s';
	if (v >= 100)
		return v.toFixed(0) + ' ms';
	if (v >= 10)
		return v.toFixed(1) + ' ms';
	return v.toFixed(2) + ' ms';
}
function fmtBytes(v) {
	if (v < 1024)
		return v + ' B';
	if (v < 1024 * 1024)
		return (v / 1024).toFixed(1) + ' KiB';
	return (v / 1024 / 1024).toFixed(1) + ' MiB';
}
const fmtInt = (v) => new Intl.NumberFormat('en-US').format(v);

// ---- Databases and servers.
const work = mkdtempSync(path.join(tmpdir(), 'tg-usage-'));
chmodSync(work, 0o777); // run as root, `serve` drops to nobody and must upgrade the copy
const DB = {usage: path.join(work, 'usage.db'), plain: path.join(work, 'plain.db')};

function sql(db, q) {
	const out = execFileSync('sqlite3', ['-json', db, q], {encoding: 'utf8'});
	return out.trim() ? JSON.parse(out) : [];
}
const one = (db, q) => {
	const r = sql(db, q)[0];
	return r ? Object.values(r)[0] : undefined;
};

function freePort() {
	return new Promise((ok) => {
		const s = createServer();
		s.listen(0, '127.0.0.1', () => {
			const p = s.address().port;
			s.close(() => ok(p));
		});
	});
}

const servers = [];
async function serve(db) {
	const port = await freePort();
	const p = spawn(TG, ['serve', '--db', db, '--listen', `127.0.0.1:${port}`], {stdio: ['ignore', 'ignore', 'pipe']});
	let err = '';
	p.stderr.on('data', (d) => { err += d; });
	servers.push(p);
	const base = `http://127.0.0.1:${port}/`;
	for (let i = 0; i < 100; i++) {
		if (p.exitCode !== null)
			throw new Error(`timeglass serve ${db} exited: ${err}`);
		try {
			if ((await fetch(base + 'api/status')).ok)
				return base;
		} catch {
			// not listening yet
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`timeglass serve ${db} did not answer: ${err}`);
}

// 20-byte little-endian timeline records (docs/schema.md, version 5).
const KINDS = {run: 1, gc: 2, pool_wait: 3, net_wait: 4};
function blob(spans) {
	const b = Buffer.alloc(spans.length * 20);
	spans.forEach((s, i) => {
		b.writeUInt32LE(s.start_us, i * 20);
		b.writeUInt32LE(s.dur_us, i * 20 + 4);
		b.writeUInt32LE(s.cpu_us, i * 20 + 8);
		b.writeUInt32LE(s.tid, i * 20 + 12);
		b.writeUInt8(KINDS[s.kind], i * 20 + 16);
	});
	return "X'" + b.toString('hex') + "'";
}

const USAGE_COLS = ['cpu_ns', 'cpu_pool_ns', 'runq_ns', 'pool_wait_ns', 'lock_ns', 'net_ns', 'minflt', 'majflt',
		    'heap_bytes', 'gc_count', 'gc_ns', 'usage_flags', 'timeline'];
let RUN; // the latest run
let A; // the request with a full usage record (and the most SQL statements)
let SPANS; // its timeline
let NULL_ID; // a request of the run without usage
let PIDS; // process_stats: {pid: [[ts, rss, cpu_ns]]}
let skipAll = null; // why every test skips (the binary has no schema v5)
const base = {};

function makeData() {
	const db = DB.usage;
	RUN = one(db, 'SELECT max(id) FROM runs');
	const W = `run_id = ${RUN}`;
	const hasQueries = one(db, "SELECT count(*) FROM sqlite_master WHERE name = 'queries'") > 0 &&
		one(db, `SELECT count(*) FROM queries WHERE ${W} AND request_id IS NOT NULL`) > 0;
	const aId = hasQueries
		? one(db, `SELECT request_id FROM queries WHERE ${W} AND request_id IS NOT NULL
			   GROUP BY request_id ORDER BY count(*) DESC, request_id LIMIT 1`)
		: one(db, `SELECT id FROM requests WHERE ${W} AND duration_ns > 1000000 ORDER BY duration_ns DESC LIMIT 1`);
	A = sql(db, `SELECT id, tid, duration_ns, method, route FROM requests WHERE id = ${aId}`)[0];
	A.nsql = hasQueries ? Math.min(1000, one(db, `SELECT count(*) FROM queries WHERE request_id = ${aId}`)) : 0;
	const D = Math.max(1000, Math.floor(A.duration_ns / 1000)); // µs
	const loop = A.tid || 4242;
	const at = (f) => Math.floor(D * f);
	SPANS = [
		{kind: 'run', start_us: 0, dur_us: at(0.1), cpu_us: at(0.08), tid: loop},
		{kind: 'pool_wait', start_us: at(0.1), dur_us: at(0.1), cpu_us: 0, tid: loop + 1000},
		{kind: 'run', start_us: at(0.2), dur_us: at(0.25), cpu_us: at(0.2), tid: loop + 1000},
		{kind: 'run', start_us: at(0.5), dur_us: at(0.1), cpu_us: at(0.1), tid: loop},
		{kind: 'gc', start_us: at(0.52), dur_us: at(0.03), cpu_us: 0, tid: loop},
		{kind: 'run', start_us: at(0.6), dur_us: at(0.3), cpu_us: at(0.15), tid: loop + 1001},
		{kind: 'net_wait', start_us: at(0.62), dur_us: at(0.2), cpu_us: 0, tid: loop},
	];
	const runs = SPANS.filter((s) => s.kind === 'run');
	A.cpu_ns = runs.reduce((a, s) => a + s.cpu_us, 0) * 1000;
	A.cpu_pool_ns = runs.filter((s) => s.tid !== loop).reduce((a, s) => a + s.cpu_us, 0) * 1000;
	A.runq_ns = at(0.05) * 1000;
	A.pool_wait_ns = at(0.1) * 1000;
	A.lock_ns = at(0.04) * 1000;
	A.net_ns = at(0.2) * 1000;
	A.gc_ns = at(0.03) * 1000;
	A.loop = loop;
	// Every request of the run but one in five gets a CPU time (distinct, so
	// the CPU order is unique) and a small GC share; A gets everything.
	// The tracer's own figures (TG_DB has usage since the tracer records
	// it) are replaced: one request in five gets none.
	execFileSync('sqlite3', [db, `
		UPDATE requests SET ${USAGE_COLS.map((c) => c + ' = NULL').join(', ')} WHERE ${W};
		DELETE FROM process_stats;
		UPDATE requests SET cpu_ns = ((id * 7919) % 100003) * 1000, cpu_pool_ns = 0, runq_ns = 0,
			pool_wait_ns = 0, minflt = id % 50, majflt = 0, heap_bytes = 0, gc_count = id % 2,
			gc_ns = (id % 2) * 250000, usage_flags = 1
		WHERE ${W} AND id % 5 != 0 AND id != ${A.id};
		UPDATE requests SET cpu_ns = ${A.cpu_ns}, cpu_pool_ns = ${A.cpu_pool_ns}, runq_ns = ${A.runq_ns},
			pool_wait_ns = ${A.pool_wait_ns}, lock_ns = ${A.lock_ns}, net_ns = ${A.net_ns}, minflt = 1234, majflt = 5, heap_bytes = ${3 * 1048576 + 12345},
			gc_count = 2, gc_ns = ${A.gc_ns}, usage_flags = 15, timeline = ${blob(SPANS)}
		WHERE id = ${A.id};
		UPDATE rollup_endpoint SET
			usage_count = (SELECT count(usage_flags) FROM requests r WHERE r.run_id = rollup_endpoint.run_id
				AND r.method = rollup_endpoint.method AND coalesce(r.route, '') = rollup_endpoint.route),
			sum_cpu_ns = (SELECT coalesce(sum(cpu_ns), 0) FROM requests r WHERE r.run_id = rollup_endpoint.run_id
				AND r.method = rollup_endpoint.method AND coalesce(r.route, '') = rollup_endpoint.route),
			sum_gc_ns = (SELECT coalesce(sum(gc_ns), 0) FROM requests r WHERE r.run_id = rollup_endpoint.run_id
				AND r.method = rollup_endpoint.method AND coalesce(r.route, '') = rollup_endpoint.route),
			sum_gc_count = (SELECT coalesce(sum(gc_count), 0) FROM requests r WHERE r.run_id = rollup_endpoint.run_id
				AND r.method = rollup_endpoint.method AND coalesce(r.route, '') = rollup_endpoint.route)
		WHERE ${W};`]);
	NULL_ID = one(db, `SELECT id FROM requests WHERE ${W} AND usage_flags IS NULL ORDER BY id LIMIT 1`);

	// Two target processes sampled every second over the run: RSS grows.
	const t0 = BigInt(one(db, `SELECT min(start_ns) FROM requests WHERE ${W}`));
	PIDS = {};
	const rows = [];
	for (const [k, pid] of [4101, 4102].entries()) {
		PIDS[pid] = [];
		for (let i = 0; i < 30; i++) {
			const ts = (t0 + BigInt(i) * 1000000000n).toString();
			const rss = (40 + 10 * k) * 1048576 + i * (k + 1) * 262144;
			const cpu = i * (k + 1) * 150000000; // 15 % / 30 % of a core
			PIDS[pid].push([ts, rss, cpu]);
			rows.push(`(${RUN}, ${pid}, ${ts}, ${rss}, ${cpu}, 4)`);
		}
	}
	execFileSync('sqlite3', [db, `INSERT INTO process_stats (run_id, pid, ts, rss_bytes, cpu_ns, threads)
		VALUES ${rows.join(',')};`]);

	// plain.db: no usage at all, whatever TG_DB had.
	execFileSync('sqlite3', [DB.plain, `
		UPDATE requests SET ${USAGE_COLS.map((c) => c + ' = NULL').join(', ')};
		UPDATE rollup_endpoint SET usage_count = 0, sum_cpu_ns = 0, sum_gc_ns = 0, sum_gc_count = 0;
		DELETE FROM process_stats;`]);
}

let browser;
let page;
let problems;

before(async () => {
	mkdirSync(ART, {recursive: true});
	for (const f of Object.values(DB)) {
		execFileSync('sqlite3', [SRC_DB, `.backup '${f}'`]);
		chmodSync(f, 0o666);
	}
	base.usage = await serve(DB.usage);
	base.plain = await serve(DB.plain);
	const cols = sql(DB.usage, "SELECT name FROM pragma_table_info('requests')").map((r) => r.name);
	if (!cols.includes('cpu_ns') || !cols.includes('timeline')) {
		skipAll = `${TG} does not have schema v5 (requests.cpu_ns, timeline): build it from the current tree`;
		return;
	}
	makeData();
	browser = await chromium.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
		       '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
	});
});

after(async () => {
	if (browser)
		await browser.close();
	for (const p of servers) {
		p.kill('SIGTERM');
		if (p.exitCode === null)
			await new Promise((r) => p.once('exit', r));
	}
	rmSync(work, {recursive: true, force: true});
});

async function open(which, hash, opts = {}) {
	problems = [];
	page = await browser.newPage({viewport: {width: 1280, height: 900}, colorScheme: opts.scheme || 'light'});
	page.setDefaultTimeout(10000);
	page.on('console', (m) => {
		if (m.type() === 'error')
			problems.push(`console: ${m.text()}`);
	});
	page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
	await page.goto(base[which] + hash);
	return page;
}

afterEach(async () => {
	if (page) {
		await page.close();
		page = null;
	}
	if (problems)
		assert.deepEqual(problems, [], 'no console errors');
	problems = null;
});

const shot = (name) => page.screenshot({path: path.join(ART, name + '.png'), fullPage: true});
const text = async (sel) => (await page.textContent(sel)).trim();
const t = (name, fn) => test(name, (ctx) => (skipAll ? ctx.skip(skipAll) : fn(ctx)));

t('request: the Resources panel shows CPU, the off-CPU split, memory, GC and the partial badge', async () => {
	await open('usage', `#/requests/${A.id}`);
	await page.waitForSelector('#resources');
	assert.equal(await text('#resources [data-field="cpu"] .value'), fmtMsExact(A.cpu_ns / 1e6));
	const cpuSub = await text('#resources [data-field="cpu"]');
	assert.ok(cpuSub.includes(`${fmtMsExact(A.cpu_pool_ns / 1e6)} in the thread pool`), cpuSub);
	assert.ok(cpuSub.includes(`${fmtMsExact((A.cpu_ns - A.cpu_pool_ns) / 1e6)} on the event loop`), cpuSub);
	assert.equal(await text('#resources [data-field="faults"] .value'), '1,234 / 5');
	assert.equal(await text('#resources [data-field="heap"] .value'), fmtBytes(3 * 1048576 + 12345));
	assert.equal(await text('#resources [data-field="gc"] .value'), fmtMsExact(A.gc_ns / 1e6));
	assert.ok((await text('#resources [data-field="gc"]')).includes('2 collections'));
	// usage_flags 15: valid, partial, spans truncated, events lost.
	assert.ok(await page.isVisible('#u-partial'), 'partial badge');
	assert.ok(await page.isVisible('#u-lost'), 'lost events badge');

	// The off-CPU legend names the six parts with the database's figures.
	const legend = await page.$$eval('#u-waits li', (ls) => ls.map((l) => [l.dataset.part, l.textContent]));
	assert.deepEqual(legend.map((l) => l[0]),
			 ['sql_ms', 'net_wait_ms', 'runq_ms', 'pool_wait_ms', 'lock_wait_ms', 'other_wait_ms']);
	assert.equal(legend[1][1], 'Other services ' + fmtMs(A.net_ns / 1e6));
	assert.equal(legend[2][1], 'CPU contention ' + fmtMs(A.runq_ns / 1e6));
	assert.equal(legend[3][1], 'Thread-pool queue ' + fmtMs(A.pool_wait_ns / 1e6));
	assert.equal(legend[4][1], 'Lock (GIL) waits ' + fmtMs(A.lock_ns / 1e6));
	// The stacked bar: one segment per non-zero part, CPU contention and pool queue in proportion.
	const segs = await page.$$eval('#u-waitbar .seg', (ss) => ss.map((s) => [s.dataset.part, s.getBoundingClientRect().width]));
	assert.ok(segs.length >= 2, 'at least two segments');
	const w = Object.fromEntries(segs);
	assert.ok(Math.abs(w.pool_wait_ms / w.runq_ms - A.pool_wait_ns / A.runq_ns) < 0.15,
		  `segment widths in proportion: ${JSON.stringify(w)}`);
	const barW = await page.$eval('#u-waitbar', (b) => b.getBoundingClientRect().width);
	assert.ok(segs.reduce((a, s) => a + s[1], 0) <= barW + 1, 'segments fit in the bar');
	await shot('request-resources');
});

t('request: the timeline waterfall has one lane per thread, plus SQL; spans by kind; hover details', async () => {
	await open('usage', `#/requests/${A.id}`);
	await page.waitForSelector('#usage-timeline');
	const tids = [...new Set(SPANS.map((s) => s.tid))];
	const lanes = await page.$$eval('#usage-timeline li[data-tid]', (ls) => ls.map((l) => Number(l.dataset.tid)));
	assert.deepEqual(lanes, tids, 'one lane per tid, the event loop first');
	assert.match(await text(`#usage-timeline li[data-tid="${A.loop}"] .tl-label`), /event loop/);
	const count = (sel) => page.locator('#usage-timeline ' + sel).count();
	assert.equal(await count('.tl-span[data-kind="run"]'), SPANS.filter((s) => s.kind === 'run').length);
	assert.equal(await count('.tl-span[data-kind="gc"]'), 1);
	assert.equal(await count('#u-spans-truncated'), 1, 'the spans-truncated note');
	assert.equal(await count('.tl-span[data-kind="pool_wait"]'), 1);
	assert.equal(await count(`li[data-tid="${A.loop + 1000}"] .tl-span[data-kind="pool_wait"]`), 1);
	// A network wait sits on the lane of the thread that wrote the call.
	assert.equal(await count(`li[data-tid="${A.loop}"] .tl-span[data-kind="net_wait"]`), 1);
	assert.equal(await count('.legend .key.u-netq'), 1, 'its legend key');
	// A run span's fill is its CPU share of its wall time (the first one: 80 %).
	const fill = await page.$eval(`li[data-tid="${A.loop}"] .tl-span[data-kind="run"] .tl-cpu`,
				      (c) => c.getBoundingClientRect().height / c.parentElement.clientHeight);
	assert.ok(Math.abs(fill - 0.8) < 0.05, `CPU fill ${fill}`);
	// Spans are placed on the request's time axis: the third-thread run starts at 60 %.
	const pos = await page.$eval(`li[data-tid="${A.loop + 1001}"] .tl-span`, (s) => {
		const tr = s.parentElement.getBoundingClientRect();
		return (s.getBoundingClientRect().left - tr.left) / tr.width;
	});
	assert.ok(Math.abs(pos - 0.6) < 0.02, `position ${pos}`);
	if (A.nsql) {
		assert.equal(await count('li[data-lane="sql"]'), 1, 'a SQL lane');
		assert.equal(await count('li[data-lane="sql"] .tl-span'), A.nsql, 'one bar per statement');
	} else {
		assert.equal(await count('li[data-lane="sql"]'), 0, 'no SQL lane without statements');
	}
	// Hover: the tooltip gives the span's kind, thread and CPU.
	await page.hover(`li[data-tid="${A.loop + 1000}"] .tl-span[data-kind="run"]`);
	await page.waitForSelector('#tl-tip:not([hidden])');
	const tip = await text('#tl-tip');
	assert.ok(tip.includes(`Run on thread ${A.loop + 1000}`), tip);
	assert.ok(tip.includes('CPU ' + fmtMsExact(SPANS[2].cpu_us / 1000)), tip);
	await shot('request-timeline');
});

t('request: the waterfall in dark mode', async () => {
	await open('usage', `#/requests/${A.id}`, {scheme: 'dark'});
	await page.waitForSelector('#usage-timeline .tl-span');
	const bg = await page.$eval('#usage-timeline', (e) => getComputedStyle(e).backgroundColor);
	assert.notEqual(bg, 'rgb(255, 255, 255)', 'dark panel');
	await shot('request-timeline-dark');
});

t('request without usage: one muted line, no panel, no chart', async () => {
	assert.ok(NULL_ID, 'a request without usage');
	await open('usage', `#/requests/${NULL_ID}`);
	await page.waitForSelector('#usage-none');
	assert.match(await text('#usage-none'), /CPU per request needs a CPython target with task tracking/);
	assert.equal(await page.locator('#resources, #usage-timeline').count(), 0);
});

t('requests list: the CPU column sorts by CPU time, most first', async () => {
	const want = sql(DB.usage, `SELECT id FROM requests WHERE run_id = ${RUN} AND cpu_ns IS NOT NULL
				    ORDER BY cpu_ns DESC, id DESC LIMIT 50`).map((r) => r.id);
	await open('usage', '#/requests');
	await page.waitForSelector('#requests-table tbody tr');
	await page.waitForSelector('#requests-table:not(.no-cpu) th.col-cpu');
	await page.click('#requests-table button.sort[data-sort="cpu"]');
	await page.waitForFunction(() => location.hash.includes('sort=cpu'));
	await page.waitForFunction((id) => {
		const r = document.querySelector('#requests-table tbody tr');
		return r && Number(r.dataset.id) === id;
	}, want[0]).catch(() => {});
	const ids = await page.$$eval('#requests-table tbody tr', (rs) => rs.map((r) => Number(r.dataset.id)));
	assert.deepEqual(ids, want);
	assert.equal(await page.getAttribute('#requests-table th[aria-sort="descending"] button', 'data-sort'), 'cpu');
	const top = one(DB.usage, `SELECT cpu_ns FROM requests WHERE id = ${want[0]}`);
	assert.equal(await text('#requests-table tbody tr:first-child td.col-cpu'), fmtMs(top / 1e6));
	// Ascending by keyboard.
	await page.focus('#requests-table button.sort[data-sort="cpu"]');
	await page.keyboard.press('Enter');
	await page.waitForFunction(() => location.hash.includes('order=asc'));
	const low = one(DB.usage, `SELECT id FROM requests WHERE run_id = ${RUN} AND cpu_ns IS NOT NULL
				   ORDER BY cpu_ns ASC, id ASC LIMIT 1`);
	await page.waitForFunction((id) => Number(document.querySelector('#requests-table tbody tr')?.dataset.id) === id, low);
	await shot('requests-cpu');
});

t('endpoints: mean CPU and mean GC columns; sorting by CPU', async () => {
	const eps = sql(DB.usage, `SELECT method, route, 1.0 * sum_cpu_ns / usage_count AS cpu FROM rollup_endpoint
				   WHERE run_id = ${RUN} AND usage_count > 0 ORDER BY cpu DESC`);
	await open('usage', '#/endpoints');
	await page.waitForSelector('#endpoints-table tbody tr');
	const heads = await page.$$eval('#endpoints-table th', (th) => th.map((x) => x.textContent.replace(/[▲▼]/g, '').trim()));
	assert.ok(heads.includes('CPU (mean)') && heads.includes('GC (mean)'), heads.join('|'));
	await page.click('#endpoints-table button.sort[data-sort="cpu"]');
	await page.waitForSelector('#endpoints-table th[aria-sort="descending"] button[data-sort="cpu"]');
	const first = await page.$eval('#endpoints-table tbody tr', (r) => [r.dataset.method, r.dataset.route]);
	assert.deepEqual(first, [eps[0].method, eps[0].route]);
	assert.equal(await text('#endpoints-table tbody tr:first-child td[data-col="cpu_mean_ms"]'), fmtMs(eps[0].cpu / 1e6));
	await shot('endpoints-cpu');

	// GC (mean) sorts too (in the page: the list is complete), most first.
	const gc = Object.fromEntries(sql(DB.usage, `SELECT method, route, 1.0 * sum_gc_ns / usage_count AS gc
		FROM rollup_endpoint WHERE run_id = ${RUN} AND usage_count > 0`).map((e) => [e.method + ' ' + e.route, e.gc]));
	await page.click('#endpoints-table button.sort[data-sort="gc"]');
	await page.waitForSelector('#endpoints-table th[aria-sort="descending"] button[data-sort="gc"]');
	const shown = await page.$$eval('#endpoints-table tbody tr', (rs) => rs.map((r) => r.dataset.method + ' ' + r.dataset.route));
	const vals = shown.map((k) => gc[k] ?? -1);
	assert.ok(vals.every((v, i) => i === 0 || vals[i - 1] >= v - 1000), `GC means descending: ${vals}`);
	assert.ok(vals[0] >= Math.max(...Object.values(gc)) - 1000, "the endpoint with the most GC first");
});

t('overview: one RSS chart per target process', async () => {
	await open('usage', '#/overview');
	await page.waitForSelector('#process .proc');
	const pids = await page.$$eval('#process .proc', (ps) => ps.map((p) => Number(p.dataset.pid)));
	assert.deepEqual(pids, Object.keys(PIDS).map(Number));
	for (const [pid, pts] of Object.entries(PIDS)) {
		const box = `#process .proc[data-pid="${pid}"]`;
		assert.equal(await page.locator(`${box} svg.chart path.line.s-rss`).count(), 1, 'an RSS line');
		assert.equal(await page.locator(`${box} svg.chart rect.hover`).count(), pts.length, 'one point per sample');
		const peak = Math.max(...pts.map((p) => p[1]));
		assert.ok((await text(box + ' .proc-sub')).includes('peak ' + fmtBytes(peak)));
		assert.match(await text(box + ' h2'), new RegExp(`pid ${pid}$`));
		const cpuPct = (pts.at(-1)[2] - pts[0][2]) / 1e7 / ((pts.length - 1));
		assert.ok((await text(box + ' .proc-sub')).includes(`CPU ${cpuPct.toFixed(1)} % of a core`));
	}
	await shot('overview-rss');
});

t('a run without usage data: no CPU column, no CPU/GC means, no RSS chart', async () => {
	await open('plain', '#/requests');
	await page.waitForSelector('#requests-table tbody tr');
	await page.waitForFunction(() => document.getElementById('req-summary').textContent !== 'Loading…');
	assert.equal(await page.isVisible('#requests-table th.col-cpu'), false, 'CPU column hidden');
	await page.goto(base.plain + '#/endpoints');
	await page.waitForSelector('#endpoints-table tbody tr');
	const heads = await page.$$eval('#endpoints-table th', (th) => th.map((x) => x.textContent));
	assert.ok(!heads.some((x) => /CPU|GC/.test(x)), heads.join('|'));
	const processAnswer = page.waitForResponse((r) => r.url().includes('/api/process'));
	await page.goto(base.plain + '#/overview');
	await page.waitForSelector('[data-card="requests"] .value');
	await page.waitForFunction(() => !document.querySelector('.loading'));
	await processAnswer; // the RSS chart would be drawn from this answer
	await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
	assert.equal(await page.locator('#process').count(), 0);
	const id = one(DB.plain, `SELECT max(id) FROM requests WHERE run_id = ${RUN}`);
	await page.goto(base.plain + `#/requests/${id}`);
	await page.waitForSelector('#r-method');
	assert.equal(await page.locator('#resources, #usage-timeline').count(), 0);
	assert.equal(await page.locator('#usage-none').count(), 1, 'the muted line');
});
