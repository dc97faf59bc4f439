// SPDX-License-Identifier: MIT
// The live tail, against a running trace: `timeglass trace` serves the
// dashboard while it traces a real uvicorn; the page's "Live tail" picks up
// requests made after the page loaded, newest first, without duplicates.
// Needs root (the tracer); run by tests/browser/run.sh when TG_LIVE=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const live = process.env.TG_LIVE === '1';
const repo = resolve(import.meta.dirname, '..', '..');
const tg = process.env.TIMEGLASS || join(repo, 'build', 'timeglass');

function freePort() {
	return new Promise((ok) => {
		const s = createServer();
		s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); });
	});
}

async function until(fn, ms, what) {
	const end = Date.now() + ms;
	for (;;) {
		try {
			const v = await fn();
			if (v)
				return v;
		} catch { /* not yet */ }
		if (Date.now() > end)
			throw new Error('timed out waiting for ' + what);
		await new Promise((r) => setTimeout(r, 200));
	}
}

test('live tail shows requests made while the page is open', { skip: !live && 'TG_LIVE=1 not set (needs root and a tracer)' }, async () => {
	const work = mkdtempSync(join(tmpdir(), 'tg-live-'));
	chmodSync(work, 0o755);
	const appPort = await freePort();
	const dashPort = await freePort();
	const app = spawn('/usr/bin/python3', ['-m', 'uvicorn', 'app:app', '--app-dir', join(repo, 'examples'),
		'--port', String(appPort), '--log-level', 'warning'], { stdio: 'ignore' });
	let tracer;
	const browser = await chromium.launch({
		executablePath: '/usr/bin/chromium',
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
			'--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
	});
	try {
		await until(() => fetch(`http://127.0.0.1:${appPort}/hello`).then((r) => r.ok), 20000, 'the app');
		tracer = spawn(tg, ['trace', '--pid', String(app.pid), '--db', join(work, 'live.db'), '-q',
			'--listen', `127.0.0.1:${dashPort}`], { stdio: 'ignore' });
		const base = `http://127.0.0.1:${dashPort}/`;
		await until(() => fetch(base + 'api/status').then((r) => r.json()).then((s) => s.live), 20000, 'the live dashboard');
		const page = await browser.newPage();
		await page.goto(base + '#/requests');
		await page.waitForSelector('#f-tail:not([disabled])');
		await page.check('#f-tail');
		// Requests made now, after the page loaded, must appear by themselves.
		const marks = [];
		for (let i = 0; i < 5; i++) {
			const id = 900000 + i;
			marks.push(`/items/${id}`);
			await fetch(`http://127.0.0.1:${appPort}/items/${id}`);
		}
		await page.waitForFunction((want) => {
			const cells = [...document.querySelectorAll('#requests-table tbody tr')].map((tr) => tr.textContent);
			return want.every((m) => cells.some((c) => c.includes(m)));
		}, marks, { timeout: 15000 });
		const texts = await page.$$eval('#requests-table tbody tr', (rows) => rows.map((r) => r.textContent));
		for (const m of marks)
			assert.equal(texts.filter((t) => t.includes(m)).length, 1, `${m} shown once`);
		// newest first: the last request made is above the first one
		assert.ok(texts.findIndex((t) => t.includes(marks[4])) < texts.findIndex((t) => t.includes(marks[0])));
		await page.screenshot({ path: join(repo, 'tests', 'artifacts', 'browser', 'live-tail.png') });
	} finally {
		await browser.close();
		if (tracer) {
			tracer.kill('SIGTERM');
			await new Promise((r) => tracer.once('exit', r));
		}
		app.kill('SIGTERM');
		rmSync(work, { recursive: true, force: true });
	}
});
