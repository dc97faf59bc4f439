// SPDX-License-Identifier: MIT
// Browser tests of the dashboard (web/) against a running `timeglass serve`.
//
//   TG_URL  the server's base URL (default http://127.0.0.1:7070/)
//   TG_DB   the database it serves (required): expected numbers are read from
//           it with the sqlite3 CLI, never from the API under test.
//   TG_ARTIFACTS  where screenshots go (default tests/artifacts/browser)
//
// Debian's chromium, headless, driven by playwright-core (no browser download).
// Every page is checked for console errors and uncaught exceptions.
// Run: (cd tests/browser && npm ci) && TG_URL=... TG_DB=... node --test tests/browser/

import {test, before, after, afterEach} from 'node:test';
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {mkdirSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const URL_BASE = (process.env.TG_URL || 'http://127.0.0.1:7070/').replace(/\/?$/, '/');
const DB = process.env.TG_DB;
const ART = process.env.TG_ARTIFACTS || path.join(here, '..', 'artifacts', 'browser');
const PAGE = 50;

if (!DB)
	throw new Error('TG_DB must name the database that the server at TG_URL serves');

function sql(q) {
	const out = execFileSync('sqlite3', ['-json', '-readonly', DB, q], {encoding: 'utf8'});
	return out.trim() ? JSON.parse(out) : [];
}
const one = (q) => Object.values(sql(q)[0])[0];

const RUN = one('SELECT max(id) FROM runs');
const W = `run_id = ${RUN}`;
const digits = (s) => Number(String(s).replace(/[^0-9]/g, ''));

let browser;
let page;
let problems; // console errors and page errors of the current test

before(async () => {
	mkdirSync(ART, {recursive: true});
	browser = await chromium.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
		       '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
	});
});

after(async () => {
	if (browser)
		await browser.close();
});

async function open(hash, opts = {}) {
	problems = [];
	page = await browser.newPage({viewport: {width: 1280, height: 900}, colorScheme: opts.scheme || 'light'});
	page.setDefaultTimeout(10000);
	page.on('console', (m) => {
		if (m.type() === 'error')
			problems.push(`console: ${m.text()}`);
	});
	page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
	await page.goto(URL_BASE + hash);
	return page;
}

afterEach(async () => {
	if (page) {
		await page.close();
		page = null;
	}
	assert.deepEqual(problems, [], 'no console errors');
});

const shot = (name) => page.screenshot({path: path.join(ART, name + '.png'), fullPage: true});

// Wait until the requests table shows exactly n rows (or the empty state for 0).
async function expectRows(n) {
	try {
		await page.waitForFunction((want) => {
			const s = document.getElementById('req-summary');
			if (!s || s.textContent === 'Loading…')
				return false;
			const rows = document.querySelectorAll('#requests-table tbody tr').length;
			return want === 0 ? !!document.querySelector('#req-msg .empty') : rows === want;
		}, n);
	} catch {
		// Fall through to a readable assertion.
	}
	const got = await page.locator('#requests-table tbody tr').count();
	assert.equal(got, n, 'rows in the requests table');
}

const shownIds = () => page.$$eval('#requests-table tbody tr', (rs) => rs.map((r) => Number(r.dataset.id)));

test('requests list shows the first page, newest first; Load more adds the next page', async () => {
	const total = one(`SELECT count(*) FROM requests WHERE ${W}`);
	assert.ok(total > 0, 'the test database has requests');
	await open('#/requests');
	await expectRows(Math.min(PAGE, total));
	const want = sql(`SELECT id FROM requests WHERE ${W} ORDER BY start_ns DESC, id DESC LIMIT ${PAGE}`)
		.map((r) => r.id);
	assert.deepEqual(await shownIds(), want);
	await shot('requests');
	if (total > PAGE) {
		await page.click('#load-more');
		await expectRows(Math.min(2 * PAGE, total));
		const ids = await shownIds();
		assert.equal(new Set(ids).size, ids.length, 'no duplicate rows after Load more');
	}
});

test('status filter narrows the list to exactly the matching requests', async () => {
	const cls = one(`SELECT count(*) FROM requests WHERE ${W} AND status >= 500`) > 0 ? '5xx' : '4xx';
	const d = cls[0];
	const want = sql(`SELECT id FROM requests WHERE ${W} AND status / 100 = ${d}
			  ORDER BY start_ns DESC, id DESC LIMIT ${PAGE}`).map((r) => r.id);
	await open('#/requests');
	await expectRows(Math.min(PAGE, one(`SELECT count(*) FROM requests WHERE ${W}`)));
	await page.selectOption('#f-status', cls);
	await page.waitForFunction((c) => location.hash.includes('status=' + c), cls);
	await expectRows(want.length);
	assert.deepEqual(await shownIds(), want);
	const statuses = await page.$$eval('#requests-table tbody tr .status', (s) => s.map((x) => x.textContent));
	assert.ok(statuses.every((s) => s[0] === d), `every status is ${cls}: ${statuses}`);
	await shot('requests-filtered');
});

test('method + route filter from the URL matches the database', async () => {
	const ep = sql(`SELECT method, route, count(*) AS n FROM requests WHERE ${W} AND route IS NOT NULL
			GROUP BY 1, 2 ORDER BY n ASC, method, route LIMIT 1`)[0];
	const want = sql(`SELECT id FROM requests WHERE ${W} AND method = '${ep.method}'
			  AND route = '${ep.route.replace(/'/g, "''")}' ORDER BY start_ns DESC, id DESC LIMIT ${PAGE}`)
		.map((r) => r.id);
	const q = new URLSearchParams({method: ep.method, route: ep.route});
	await open('#/requests?' + q);
	await expectRows(want.length);
	assert.deepEqual(await shownIds(), want);
	assert.equal(await page.inputValue('#f-method'), ep.method);
	assert.equal(await page.inputValue('#f-route'), ep.route);
});

test('path filter: "/" focuses it, typing narrows the list', async () => {
	const text = 'items';
	const n = one(`SELECT count(*) FROM requests WHERE ${W} AND instr(path, '${text}') > 0`);
	await open('#/overview');
	await page.waitForSelector('[data-card="requests"]');
	await page.keyboard.press('/');
	await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'f-q');
	await page.keyboard.type(text);
	await page.waitForFunction((t) => location.hash.includes('q=' + t), text);
	await expectRows(Math.min(PAGE, n));
	const paths = await page.$$eval('#requests-table tbody tr .pathtext', (s) => s.map((x) => x.textContent));
	assert.ok(paths.every((p) => p.includes(text)), 'every path contains the text');
});

test('a request opens with the right method, path, status and duration; back returns', async () => {
	await open('#/requests?sort=duration');
	const first = sql(`SELECT * FROM requests WHERE ${W} ORDER BY duration_ns DESC, id DESC LIMIT 1`)[0];
	await expectRows(Math.min(PAGE, one(`SELECT count(*) FROM requests WHERE ${W}`)));
	await page.locator('#requests-table tbody tr').first().focus();
	await page.keyboard.press('Enter');
	await page.waitForSelector('#r-method');
	assert.match(page.url(), new RegExp(`#/requests/${first.id}(\\?|$)`));
	assert.equal(await page.textContent('#r-method'), first.method);
	assert.equal(await page.textContent('#r-path'), first.path);
	assert.equal((await page.textContent('[data-field="status"] .value')).trim(), String(first.status ?? '—'));
	const dur = await page.textContent('[data-field="duration"] .value');
	assert.equal(dur, (first.duration_ns / 1e6).toFixed(3) + ' ms');
	await shot('request');
	await page.click('a.back');
	await page.waitForSelector('#requests-table');
	assert.match(page.url(), /#\/requests\?sort=duration$/);
});

test('sorting by duration puts the slowest first', async () => {
	const slow = sql(`SELECT id FROM requests WHERE ${W} ORDER BY duration_ns DESC, id DESC LIMIT ${PAGE}`)
		.map((r) => r.id);
	await open('#/requests');
	await expectRows(Math.min(PAGE, one(`SELECT count(*) FROM requests WHERE ${W}`)));
	await page.click('#requests-table button.sort[data-sort="duration"]');
	await page.waitForFunction(() => location.hash.includes('sort=duration'));
	await page.waitForFunction((id) => {
		const r = document.querySelector('#requests-table tbody tr');
		return r && Number(r.dataset.id) === id;
	}, slow[0]).catch(() => {});
	assert.deepEqual(await shownIds(), slow);
	assert.equal(await page.getAttribute('#requests-table th[aria-sort="descending"] button', 'data-sort'),
		     'duration');
});

test('overview shows the run\'s request count', async () => {
	const total = one(`SELECT count(*) FROM requests WHERE ${W}`);
	await open('#/overview');
	await page.waitForSelector('[data-card="requests"] .value');
	assert.equal(digits(await page.textContent('[data-card="requests"] .value')), total);
	assert.ok(await page.locator('svg.chart').count() >= 3, 'three charts');
	await shot('overview');
});

test('overview in dark mode', async () => {
	await open('#/overview', {scheme: 'dark'});
	await page.waitForSelector('[data-card="requests"] .value');
	const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
	assert.notEqual(bg, 'rgb(255, 255, 255)', 'dark background');
	await shot('overview-dark');
});

test('endpoints table has one row per (method, route); header sort and row link work', async () => {
	const n = one(`SELECT count(*) FROM (SELECT DISTINCT method, route FROM requests WHERE ${W})`);
	await open('#/endpoints');
	await page.waitForSelector('#endpoints-table tbody tr');
	assert.equal(await page.locator('#endpoints-table tbody tr').count(), n);
	await shot('endpoints');

	await page.focus('#endpoints-table button.sort[data-sort="p95"]');
	await page.keyboard.press('Enter');
	await page.waitForFunction(() => location.hash.includes('sort=p95'));
	await page.waitForSelector('#endpoints-table th[aria-sort="descending"] button[data-sort="p95"]');
	const p95 = await page.$$eval('#endpoints-table tbody td[data-col="p95_ms"]', (s) => s.map((x) => x.textContent));
	assert.equal(p95.length, n);

	const top = sql(`SELECT method, route, count(*) AS c FROM requests WHERE ${W}
			 GROUP BY 1, 2 ORDER BY c DESC, method, route LIMIT 1`)[0]; // the API's tie-break
	await page.goto(URL_BASE + '#/endpoints?sort=count');
	// A hash change: the table sorted by p95 stays until the new answer is drawn
	// (clicking its first row picked the slowest endpoint, not the busiest).
	await page.waitForSelector('#endpoints-table th[aria-sort="descending"] button[data-sort="count"]');
	await page.waitForSelector('#endpoints-table tbody tr');
	await page.locator('#endpoints-table tbody tr').first().click();
	await page.waitForFunction(() => location.hash.startsWith('#/requests?'));
	const h = new URLSearchParams(page.url().split('?')[1]);
	assert.equal(h.get('method'), top.method);
	assert.equal(h.get('route'), top.route);
	await expectRows(Math.min(PAGE, top.c));
});

test('URL state survives a reload; back and forward work', async () => {
	const n4 = one(`SELECT count(*) FROM requests WHERE ${W} AND status / 100 = 4`);
	await open('#/requests?status=4xx&sort=duration');
	await expectRows(Math.min(PAGE, n4));
	await page.reload();
	await expectRows(Math.min(PAGE, n4));
	assert.equal(await page.inputValue('#f-status'), '4xx');
	assert.equal(await page.getAttribute('#requests-table th[aria-sort="descending"] button', 'data-sort'),
		     'duration');

	await page.click('nav a[data-view="endpoints"]');
	await page.waitForSelector('#endpoints-table');
	await page.goBack();
	await expectRows(Math.min(PAGE, n4));
	assert.equal(await page.inputValue('#f-status'), '4xx');
	await page.goForward();
	await page.waitForSelector('#endpoints-table');
});

test('API errors are shown as a message, not a blank page', async () => {
	await open('#/requests/999999999');
	await page.waitForSelector('.error');
	assert.match(await page.textContent('.error'), /not in this database|no such|not found/i);
	// The 404 of the API call is expected here; nothing else may fail.
	problems = problems.filter((p) => !/404/.test(p));
});

// ---- SQL and flame graphs (web/sql.js, web/flamegraphs.js, web/request.js). These need a trace
// with PostgreSQL statements / Python samples: each test skips, saying why, only when the
// database truly has no such rows, and asserts otherwise.

const hasTable = (t) => one(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '${t}'`) > 0;
const nQueries = hasTable('queries') ? one(`SELECT count(*) FROM queries WHERE ${W}`) : 0;
const nProfile = hasTable('profile_endpoint') ? one(`SELECT count(*) FROM profile_endpoint WHERE ${W}`) : 0;
const nReqSamples = hasTable('samples') ? one(`SELECT count(*) FROM samples WHERE ${W} AND request_id IS NOT NULL`) : 0;
const NO_SQL = `no SQL statements in run ${RUN} of ${DB} (queries table empty): nothing to check`;
const NO_SAMPLES = `no Python stack samples in run ${RUN} of ${DB}: nothing to check`;

// Wait for the flame graph iframe under sel and return {rects, titles} of its SVG.
async function flameContent(sel) {
	await page.waitForFunction((s) => {
		const f = document.querySelector(s + ' iframe.flame');
		const d = f && f.contentDocument;
		return !!(d && d.documentElement && d.documentElement.tagName === 'svg' &&
			  d.querySelectorAll('rect').length > 1);
	}, sel);
	return page.evaluate((s) => {
		const d = document.querySelector(s + ' iframe.flame').contentDocument;
		return {rects: d.querySelectorAll('rect').length,
			titles: [...d.querySelectorAll('title')].map((t) => t.textContent).join('\n')};
	}, sel);
}

// The function names of the top stack of a set of (stack_id, count) rows.
function leafName(fromWhere) {
	return one(`SELECT f.name FROM ${fromWhere} JOIN stacks s ON s.id = x.stack_id
		    JOIN frames f ON f.id = s.frame ORDER BY x.n DESC, x.stack_id LIMIT 1`);
}

test('SQL view lists the top statements of the run, by total time', async (t) => {
	if (!nQueries)
		return t.skip(NO_SQL);
	const want = sql(`SELECT printf('%016x', fingerprint) AS fp, sum(coalesce(duration_ns, 0)) AS tot
			  FROM queries WHERE ${W} GROUP BY fingerprint ORDER BY tot DESC, count(*) DESC, fingerprint
			  LIMIT 50`);
	await open('#/sql');
	await page.waitForSelector('#sql-top tbody tr');
	const got = await page.$$eval('#sql-top tbody tr', (rows) => rows.map((r) => r.dataset.fingerprint));
	assert.equal(got.length, want.length);
	assert.equal(got[0], want[0].fp, 'the statement with the most total time comes first');
	assert.deepEqual(new Set(got), new Set(want.map((w) => w.fp)));
	const stmt = one(`SELECT max(statement) FROM queries WHERE ${W} AND printf('%016x', fingerprint) = '${want[0].fp}'`);
	assert.equal(await page.textContent('#sql-top tbody tr:first-child code.sql'), stmt);
	await page.waitForSelector('#sql-findings');
	await shot('sql');
});

test('a request with SQL shows its statements and a waterfall', async (t) => {
	if (!nQueries)
		return t.skip(NO_SQL);
	const top = sql(`SELECT request_id AS id, count(*) AS n FROM queries WHERE ${W} AND request_id IS NOT NULL
			 GROUP BY request_id ORDER BY n DESC, request_id LIMIT 1`)[0];
	if (!top)
		return t.skip(`the statements of run ${RUN} belong to no request: nothing to check`);
	await open(`#/requests/${top.id}`);
	await page.waitForSelector('#sql tbody tr');
	const n = Math.min(top.n, 1000);
	assert.equal(await page.$$eval('#sql tbody tr', (r) => r.length), n);
	assert.equal(await page.$$eval('#sql-waterfall li', (r) => r.length), n + 1, 'the request bar and one per statement');
	await shot('request-sql');
});

test('Flame graphs view: an endpoint\'s flame graph renders its functions; the URL is shareable', async (t) => {
	if (!nProfile)
		return t.skip(NO_SAMPLES + ' (profile_endpoint empty)');
	const ep = sql(`SELECT method, route, sum(count) AS n FROM profile_endpoint WHERE ${W}
			GROUP BY method, route ORDER BY n DESC, method, route LIMIT 1`)[0];
	const leaf = leafName(`(SELECT stack_id, count AS n FROM profile_endpoint WHERE ${W}
			       AND method = '${ep.method}' AND route = '${ep.route.replace(/'/g, "''")}') x`);
	await open(`#/flamegraphs?method=${encodeURIComponent(ep.method)}&route=${encodeURIComponent(ep.route)}`);
	const fg = await flameContent('#fg-graph');
	assert.ok(fg.rects > 2, 'boxes drawn');
	assert.ok(fg.titles.includes(leaf), `the hottest leaf function ${leaf} is in the graph`);
	assert.ok(fg.titles.includes(`${ep.n} samples`) || fg.titles.includes('samples'), 'sample counts in tooltips');
	const chosen = await page.$eval('#fg-endpoint', (s) => s.value);
	assert.equal(chosen, JSON.stringify([ep.method, ep.route]));
	await shot('flamegraph');
});

test('a request with samples shows its flame graph', async (t) => {
	if (!nReqSamples)
		return t.skip(NO_SAMPLES + ' (no sample attributed to a request)');
	const r = sql(`SELECT request_id AS id, count(*) AS n FROM samples WHERE ${W} AND request_id IS NOT NULL
		       GROUP BY request_id ORDER BY n DESC, request_id LIMIT 1`)[0];
	const leaf = leafName(`(SELECT stack_id, count(*) AS n FROM samples WHERE request_id = ${r.id}
			       GROUP BY stack_id) x`);
	await open(`#/requests/${r.id}`);
	await page.waitForSelector('#flame h2');
	assert.match(await page.textContent('#flame h2'), new RegExp(`\\(${r.n} samples?\\)`));
	const fg = await flameContent('#r-flame');
	assert.ok(fg.titles.includes(leaf), `the hottest leaf function ${leaf} is in the graph`);
});

test('SQL and Flame graphs are in the navigation', async () => {
	await open('#/sql');
	await page.click('nav a[data-view="flamegraphs"]');
	await page.waitForSelector('#fg-endpoint');
	assert.match(page.url(), /#\/flamegraphs/);
	await page.click('nav a[data-view="sql"]');
	await page.waitForSelector('main h1');
	assert.equal(await page.textContent('main h1'), 'SQL');
});
