// SPDX-License-Identifier: MIT
// Overview of one run (GET /api/overview): headline cards, three charts
// over time (requests/s, latency percentiles, errors) and the busiest and
// slowest endpoints, each linking to the requests list filtered to it.

import {api, href, carry} from './client.js';
import {h, fill, fmtMs, fmtInt, fmtPct, fmtRate, fmtAbs, endpointName} from './util.js';
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
		h('div', {class: 'two'},
		  endpointTable('Busiest endpoints', d.busiest || [], 'Requests', (e) => fmtInt(e.count)),
		  endpointTable('Slowest endpoints (p95)', d.slowest || [], 'p95', (e) => fmtMs(e.p95_ms))));
}

export function mount(el, route) {
	const ctl = new AbortController();
	el.append(h('p', {class: 'muted loading'}, 'Loading overview…'));
	api('overview', {run: route.params.get('run')}, ctl.signal)
		.then((d) => render(el, d))
		.catch((e) => {
			if (e.name !== 'AbortError')
				fill(el, h('div', {class: 'error', role: 'alert'}, e.message));
		});
	return {unmount: () => ctl.abort()};
}
