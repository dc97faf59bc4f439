// SPDX-License-Identifier: MIT
// Page load benchmark of the dashboard (docs/performance.md): opens each view
// of `timeglass serve` in Debian's headless chromium (playwright-core from
// tests/browser/node_modules) and measures, N times each, the time from
// navigation start (the page's own clock) to the view being usable (its data
// rendered, polled by playwright every few ms). Prints p50/p95/max.
//
//   TG_URL=http://127.0.0.1:PORT/ node bench/page_load.mjs [N=10]
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const url = process.env.TG_URL;
const n = Number(process.argv[2] || 10);
if (!url) {
	console.error('TG_URL must point at a running timeglass serve');
	process.exit(2);
}
const views = [
	['overview', '#/overview', '[data-card="requests"] .value'],
	['endpoints', '#/endpoints', '#endpoints-table tbody tr'],
	['requests', '#/requests', '#requests-table tbody tr'],
	['requests sort=duration', '#/requests?sort=duration&order=desc', '#requests-table tbody tr'],
	['requests status=5xx', '#/requests?status=5xx', '#requests-table tbody tr'],
];
const browser = await chromium.launch({
	executablePath: '/usr/bin/chromium',
	args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
		'--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
});
const q = (a, p) => a[Math.min(a.length - 1, Math.ceil(p * a.length) - 1)];
for (const [name, hash, sel] of views) {
	const times = [];
	for (let i = 0; i < n; i++) {
		const page = await browser.newPage();
		await page.goto(url + hash);
		await page.waitForSelector(sel, { timeout: 10000 });
		// in-page clock: ms since the navigation started, when the data showed
		times.push(await page.evaluate(() => performance.now()));
		await page.close();
	}
	times.sort((a, b) => a - b);
	console.log(`${name.padEnd(24)} p50 ${q(times, 0.5).toFixed(0).padStart(5)} ms  ` +
		`p95 ${q(times, 0.95).toFixed(0).padStart(5)} ms  max ${times[times.length - 1].toFixed(0).padStart(5)} ms`);
}
await browser.close();
