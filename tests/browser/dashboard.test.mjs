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
			 GROUP BY 1, 2 ORDER BY c DESC LIMIT 1`)[0];
	await page.goto(URL_BASE + '#/endpoints?sort=count');
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
