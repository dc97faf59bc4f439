// SPDX-License-Identifier: MIT
// Overview of one run (GET /api/overview): headline cards, three charts
// over time (requests/s, latency percentiles, errors), the resident memory of
// each target process over time (GET /api/process, when the run sampled it)
// and the busiest and slowest endpoints, each linking to the requests list
// filtered to it.

import {api, href, carry} from './client.js';
import {h, fill, fmtMs, fmtInt, fmtPct, fmtRate, fmtAbs, fmtBytes, endpointName} from './util.js';
import {timeChart, legend} from './chart.js';

function card(label, value, opts = {}) {
	return h('div', {class: 'card' + (opts.cls ? ' ' + opts.cls : ''), title: opts.title,
			 dataset: {card: opts.key || label}},
		 h('div', {class: 'label'}, label), h('div', {class: 'value'}, value),
		 opts.sub ? h('div', {class: 'sub muted'}, opts.sub) : null);
}

function endpointTable(title, rows, col, fmtCol) {
	if (!rows.length)
		return h('section', {class: 'panel'}, h('h2', {}, title), h('p', {class: 'empty'}, 'No requests.'));
	return h('section', {class: 'panel'}, h('h2', {}, title),
		 h('table', {class: 'data compact'},
		   h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Endpoint'),
				    h('th', {scope: 'col', class: 'num'}, col))),
		   h('tbody', {}, rows.map((e) => h('tr', {},
			h('td', {}, h('a', {href: href('requests', carry({method: e.method, route: e.route}))},
				       h('span', {class: 'method'}, e.method), ' ', e.route ?? '(no route)')),
			h('td', {class: 'num', title: endpointName(e)}, fmtCol(e)))))));
}

function chartPanel(title, svg, series) {
	return h('section', {class: 'panel chart-panel'}, h('h2', {}, title), svg, legend(series));
}

const MAX_POINTS = 240;
const MiB = 1024 * 1024;
const fmtMiB = (v) => (v >= 1024 ? (v / 1024).toFixed(1) + ' GiB' : (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + ' MiB');

// One RSS chart per target process (a panel each, in the grid of the other
// charts); null when the run has no samples.
function processSection(d) {
	const series = ((d && d.series) || []).filter((s) => Array.isArray(s.points) && s.points.length > 0);
	if (!series.length)
		return null;
	return h('div', {class: 'charts', id: 'process'}, series.map((s) => {
		// At most MAX_POINTS points: the largest RSS of each group of samples.
		const pts = s.points;
		const k = Math.ceil(pts.length / MAX_POINTS);
		const times = [];
		const rss = [];
		for (let i = 0; i < pts.length; i += k) {
			const g = pts.slice(i, i + k);
			times.push(g[0][0]);
			rss.push(Math.max(...g.map((p) => p[1] ?? 0)) / MiB);
		}
		const first = pts[0], last = pts[pts.length - 1];
		const peak = Math.max(...pts.map((p) => p[1] ?? 0));
		const secs = Number(BigInt(last[0]) - BigInt(first[0])) / 1e9;
		const cpu = secs > 0 && typeof last[2] === 'number' && typeof first[2] === 'number'
			? (last[2] - first[2]) / 10 / secs : null; // ms per s -> % of one CPU
		const ser = [{name: 'RSS', cls: 's-rss', values: rss}];
		return h('section', {class: 'panel chart-panel proc', dataset: {pid: String(s.pid)}},
			 h('h2', {}, `Memory (RSS) · pid ${s.pid}`),
			 timeChart({title: `Resident memory of pid ${s.pid}`, times, series: ser, fmt: fmtMiB}),
			 legend(ser),
			 h('div', {class: 'muted small proc-sub'}, `peak ${fmtBytes(peak)} · last ${fmtBytes(last[1])}` +
			   (cpu !== null ? ` · CPU ${cpu.toFixed(1)} % of a core` : '')));
	}));
}

function render(el, d) {
	const t = d.totals;
	const run = d.run;
	const times = d.series.map((b) => b.t_ns);
	const bs = d.bucket_s || 1;
	const rps = [{name: 'requests/s', cls: 's-req', values: d.series.map((b) => b.requests / bs)}];
	const lat = [
		{name: 'p50', cls: 's-p50', values: d.series.map((b) => b.p50_ms ?? null)},
		{name: 'p95', cls: 's-p95', values: d.series.map((b) => b.p95_ms ?? null)},
		{name: 'p99', cls: 's-p99', values: d.series.map((b) => b.p99_ms ?? null)},
	];
	const errs = [{name: 'errors', cls: 's-err', values: d.series.map((b) => b.errors)}];
	const dropped = run.dropped_events || 0;

	fill(el, 
		h('div', {class: 'viewhead'}, h('h1', {}, `Run #${run.id}`),
		  h('span', {class: 'muted'}, `${fmtAbs(run.started_ns)} → ${run.ended_ns ? fmtAbs(run.ended_ns) : 'now'}`,
		    ` · ${run.targets || ''} · kernel ${run.kernel || '?'}`)),
		h('div', {class: 'cards'},
		  card('Requests', fmtInt(t.requests), {key: 'requests'}),
		  card('Throughput', fmtRate(t.rps), {key: 'rps'}),
		  card('Error rate', fmtPct(t.error_rate), {key: 'error_rate', sub: `${fmtInt(t.errors)} errors`,
							   cls: t.errors ? 'bad' : ''}),
		  card('p50', fmtMs(t.p50_ms), {key: 'p50'}),
		  card('p95', fmtMs(t.p95_ms), {key: 'p95'}),
		  card('p99', fmtMs(t.p99_ms), {key: 'p99'}),
		  card('Dropped events', fmtInt(dropped), {key: 'dropped', cls: dropped ? 'warn' : '',
			title: 'Kernel events lost because the ring buffer was full.'}),
		  card('Incomplete', fmtInt(t.incomplete), {key: 'incomplete', cls: t.incomplete ? 'warn' : '',
			sub: t.lost ? `${fmtInt(t.lost)} lost events` : null,
			title: 'Requests that did not finish while traced, or lost events.'})),
		t.requests === 0
			? h('p', {class: 'empty'}, 'No requests recorded in this run yet.')
			: h('div', {class: 'charts'},
			    chartPanel('Requests per second', timeChart({title: 'Requests per second', times,
				series: rps, kind: 'bar', fmt: (v) => (v === 0 ? '0' : v.toFixed(v < 10 ? 1 : 0))}), rps),
			    chartPanel('Latency', timeChart({title: 'Latency percentiles', times, series: lat,
				fmt: fmtMs}), lat),
			    chartPanel(`Errors per ${bs} s`, timeChart({title: 'Errors', times, series: errs, kind: 'bar',
				fmt: (v) => fmtInt(v)}), errs)),
		h('div', {id: 'process-slot'}),
		h('div', {class: 'two'},
		  endpointTable('Busiest endpoints', d.busiest || [], 'Requests', (e) => fmtInt(e.count)),
		  endpointTable('Slowest endpoints (p95)', d.slowest || [], 'p95', (e) => fmtMs(e.p95_ms))));
}

export function mount(el, route) {
	const ctl = new AbortController();
	el.append(h('p', {class: 'muted loading'}, 'Loading overview…'));
	// Process samples come from their own call: an old server (or a run
	// without samples) just shows no memory chart.
	const proc = api('process', {run: route.params.get('run')}, ctl.signal).catch(() => null);
	api('overview', {run: route.params.get('run')}, ctl.signal)
		.then(async (d) => {
			render(el, d);
			const p = processSection(await proc);
			const slot = el.querySelector('#process-slot');
			if (p && slot)
				slot.replaceWith(p);
		})
		.catch((e) => {
			if (e.name !== 'AbortError')
				fill(el, h('div', {class: 'error', role: 'alert'}, e.message));
		});
	return {unmount: () => ctl.abort()};
}
