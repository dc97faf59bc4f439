// SPDX-License-Identifier: MIT
// What a request used (the "usage" object of GET /api/requests/ID, docs/api.md):
// the Resources panel (CPU and its thread-pool part, the off-CPU time split
// into SQL / other services / CPU contention / thread-pool queue / locks /
// other waits as a stacked bar, page faults, heap growth, GC) and the
// timeline waterfall: one lane per thread that ran the request's work (run
// spans filled to their CPU/wall share, GC pauses on top, thread-pool and
// network waits hatched), one lane for its SQL
// statements, all on one axis from 0 to the request's duration. Hovering (or
// focusing) a span shows its details in one shared tooltip.

import {h, fmtMs, fmtMsExact, fmtBytes, fmtInt} from './util.js';

const NO_USAGE = 'CPU per request needs a CPython target with task tracking';

// The off-CPU parts: [usage field, name, css class, explanation].
export const WAITS = [
	['sql_ms', 'SQL', 'u-sql', 'waiting for the database (its SQL statements)'],
	['net_wait_ms', 'Other services', 'u-net', 'waiting for the answers of other services it called over the network (HTTP APIs, caches, …)'],
	['runq_ms', 'CPU contention', 'u-runq', 'runnable, but waiting for a CPU (run queue)'],
	['pool_wait_ms', 'Thread-pool queue', 'u-pool', 'work handed to the thread pool waited for a free worker'],
	['lock_wait_ms', 'Lock (GIL) waits', 'u-lock', 'its work slept on a lock, most often the GIL held by another thread'],
	['other_wait_ms', 'Other waits', 'u-other', 'anything else: sleeps, other tasks on the event loop, reading the client\'s request'],
];

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const pct = (v, of) => (of > 0 ? (100 * v) / of : 0);

function card(label, value, key, ...sub) {
	return h('div', {class: 'card', dataset: {field: key}},
		 h('div', {class: 'label'}, label), h('div', {class: 'value'}, value),
		 sub.filter(Boolean).map((s) => h('div', {class: 'sub muted'}, s)));
}

// The stacked bar of the off-CPU parts, with its legend.
function waitBar(u) {
	const parts = WAITS.map(([k, name, cls, why]) => ({k, name, cls, why, v: num(u[k]), known: typeof u[k] === 'number'}));
	const total = Math.max(num(u.offcpu_ms), parts.reduce((a, p) => a + p.v, 0));
	const bar = h('div', {class: 'stack', id: 'u-waitbar', role: 'img',
			      'aria-label': 'Off-CPU time: ' + parts.map((p) => `${p.name} ${fmtMs(p.v)}`).join(', ')},
		      parts.filter((p) => p.v > 0).map((p) => h('span', {
			      class: 'seg ' + p.cls, dataset: {part: p.k},
			      style: `width:${pct(p.v, total).toFixed(2)}%`,
			      title: `${p.name}: ${fmtMsExact(p.v)} (${pct(p.v, total).toFixed(0)} %), ${p.why}`})));
	const legend = h('ul', {class: 'legend stack-legend', id: 'u-waits'},
			 parts.map((p) => h('li', {class: 'key ' + p.cls, dataset: {part: p.k}, title: p.why},
					    p.name + ' ', h('span', {class: 'num'}, p.known ? fmtMs(p.v) : '—'))));
	return [bar, legend];
}

// The Resources panel; `usage === null`: the one muted line.
export function resourcesSection(r) {
	const u = r.usage;
	if (u === undefined)
		return null; // an API without the field: nothing to say
	if (u === null)
		return h('p', {class: 'muted', id: 'usage-none'}, NO_USAGE + '.');
	const wall = num(r.duration_ms);
	const cpu = num(u.cpu_ms);
	const pool = num(u.cpu_pool_ms);
	return h('section', {class: 'panel', id: 'resources'},
		 h('h2', {}, 'Resources',
		   u.partial ? h('span', {class: 'badge warn', id: 'u-partial', tabindex: 0,
				title: 'Some of the request\'s work was still running (or its events were lost) when it ' +
					'was stored: the figures count up to its last event seen and are lower bounds.'},
				 'partial') : null,
		   u.lost ? h('span', {class: 'badge warn', id: 'u-lost', tabindex: 0,
				title: 'Task events were lost (the kernel ring buffer was full): the figures are too low.'},
			      'lost events') : null),
		 h('div', {class: 'cards wide res'},
		   card('CPU', fmtMsExact(cpu), 'cpu',
			`${fmtMsExact(cpu - pool)} on the event loop`,
			`${fmtMsExact(pool)} in the thread pool`,
			wall > 0 ? `${pct(cpu, wall).toFixed(0)} % of the wall time` : null),
		   h('div', {class: 'card offcpu', dataset: {field: 'offcpu'}},
		     h('div', {class: 'label'}, 'Off-CPU'), h('div', {class: 'value'}, fmtMsExact(u.offcpu_ms ?? null)),
		     waitBar(u)),
		   card('Page faults', `${fmtInt(u.minflt)} / ${fmtInt(u.majflt)}`, 'faults', 'minor / major'),
		   card('Heap growth', fmtBytes(u.heap_bytes), 'heap', 'memory its work added'),
		   card('GC pauses', fmtMsExact(num(u.gc_ms)), 'gc',
			`${fmtInt(u.gc_count)} collection${u.gc_count === 1 ? '' : 's'} during its work`)));
}

// ---- The timeline waterfall.

const KIND = {run: 'Run', gc: 'GC pause', pool_wait: 'Thread-pool queue', net_wait: 'Waiting for another service'};
const Z = {pool_wait: 0, net_wait: 0, run: 1, gc: 2};

// Greedy packing of overlapping intervals into rows (concurrent statements).
function pack(items) {
	const ends = [];
	for (const it of items) {
		let row = ends.findIndex((e) => e <= it.t);
		if (row < 0) {
			row = ends.length;
			ends.push(0);
		}
		ends[row] = it.t + it.d;
		it.row = row;
	}
	return Math.max(1, ends.length);
}

let tip = null; // the shared tooltip element

function showTip(target) {
	if (!tip) {
		tip = h('div', {class: 'tl-tip', id: 'tl-tip', role: 'tooltip'});
		document.body.append(tip);
	}
	tip.textContent = target.dataset.tip;
	tip.hidden = false;
	const b = target.getBoundingClientRect();
	const w = tip.offsetWidth;
	tip.style.left = Math.max(4, Math.min(window.innerWidth - w - 4, b.left + b.width / 2 - w / 2)) + 'px';
	tip.style.top = (b.bottom + 6) + 'px';
}

export function hideTip() {
	if (tip)
		tip.hidden = true;
}

function lane(key, label, title, rows, spans, tail, extra = {}) {
	return h('li', {class: 'tl-lane', dataset: {lane: key, ...extra}, tabindex: 0, 'data-tip': title,
			'aria-label': title},
		 h('span', {class: 'tl-label', title: label}, label),
		 h('span', {class: 'tl-track', style: `height:${rows * 16 - 2}px`}, spans),
		 h('span', {class: 'num tl-dur'}, tail));
}

export function timelineSection(r) {
	const u = r.usage;
	const tl = u && Array.isArray(u.timeline) ? u.timeline : [];
	const sql = Array.isArray(r.sql) ? r.sql.filter((q) => typeof q.start_ms === 'number') : [];
	if (!u || (tl.length === 0 && sql.length === 0))
		return null;
	const span = Math.max(num(r.duration_ms), ...tl.map((x) => num(x.start_ms) + num(x.dur_ms)),
			      ...sql.map((q) => q.start_ms + num(q.duration_ms))) || 1;
	const pos = (t, d) => `left:${pct(t, span).toFixed(3)}%;width:max(2px,${pct(d, span).toFixed(3)}%)`;

	// Lanes per thread: the request's own thread (the event loop) first, then
	// the others in order of their first span.
	const tids = [];
	for (const x of tl)
		if (!tids.includes(x.tid))
			tids.push(x.tid);
	tids.sort((a, b) => (a === r.tid ? -1 : b === r.tid ? 1 : 0));
	const lanes = tids.map((tid) => {
		const mine = tl.filter((x) => x.tid === tid).sort((a, b) => (Z[a.kind] ?? 1) - (Z[b.kind] ?? 1));
		const runs = mine.filter((x) => x.kind === 'run');
		const cpu = runs.reduce((a, x) => a + num(x.cpu_ms), 0);
		const wall = runs.reduce((a, x) => a + num(x.dur_ms), 0);
		const name = tid === r.tid ? `event loop · ${tid}` : `thread ${tid}`;
		const spans = mine.map((x) => {
			const d = num(x.dur_ms);
			const share = x.kind === 'run' && d > 0 ? Math.min(1, num(x.cpu_ms) / d) : 0;
			const tipText = `${KIND[x.kind] || x.kind} on ${name}\n+${fmtMsExact(num(x.start_ms))} for ${fmtMsExact(d)}` +
				(x.kind === 'run' ? `\nCPU ${fmtMsExact(num(x.cpu_ms))} (${(share * 100).toFixed(0)} % of its wall time)` : '');
			return h('span', {class: 'tl-span k-' + String(x.kind).replace(/[^a-z_]/g, ''),
					  dataset: {kind: x.kind, tip: tipText}, style: pos(num(x.start_ms), d)},
				 x.kind === 'run' ? h('span', {class: 'tl-cpu', style: `height:${(share * 100).toFixed(1)}%`}) : null);
		});
		return lane('tid:' + tid, name,
			    `${name}: ${runs.length} run span${runs.length === 1 ? '' : 's'}, ${fmtMsExact(cpu)} CPU in ${fmtMsExact(wall)}`,
			    1, spans, fmtMs(cpu), {tid: String(tid)});
	});

	if (sql.length) {
		const items = sql.map((q) => ({q, t: q.start_ms, d: num(q.duration_ms)}));
		const rows = pack(items);
		const total = items.reduce((a, x) => a + x.d, 0);
		lanes.push(lane('sql', 'SQL', `SQL: ${sql.length} statement${sql.length === 1 ? '' : 's'}, ${fmtMsExact(total)}`,
				rows, items.map((x) => h('span', {
					class: 'tl-span k-sql' + (x.q.error ? ' k-error' : ''),
					dataset: {kind: 'sql', tip: `${x.q.statement ?? ''}\n+${fmtMsExact(x.t)} for ${fmtMsExact(x.q.duration_ms)}` +
						(x.q.rows !== null && x.q.rows !== undefined && x.q.rows >= 0 ? ` · ${fmtInt(x.q.rows)} rows` : '') +
						(x.q.error ? `\n${x.q.sqlstate ? x.q.sqlstate + ': ' : ''}${x.q.error}` : '')},
					style: pos(x.t, x.d) + `;top:${x.row * 16}px;height:14px;bottom:auto`})),
				fmtMs(total)));
	}

	const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', {class: 'tick', style: `left:${f * 100}%`},
							       fmtMs(span * f)));
	const over = (e) => {
		const t = e.target.closest('[data-tip]');
		if (t)
			showTip(t);
	};
	return h('section', {class: 'panel', id: 'usage-timeline'},
		 h('h2', {}, 'Timeline', h('span', {class: 'muted small'}, ' when its work ran on which thread, waited and collected garbage')),
		 h('ol', {class: 'timeline lanes', onmouseover: over, onmouseout: hideTip, onfocusin: over,
			  onfocusout: hideTip},
		   h('li', {class: 'tl-axis', 'aria-hidden': 'true'}, h('span', {}), h('span', {class: 'tl-ticks'}, ticks),
		     h('span', {})),
		   lane('request', 'request', `the whole request: ${fmtMsExact(r.duration_ms)}`, 1,
			h('span', {class: 'tl-span k-request', style: pos(0, num(r.duration_ms) || span),
				   dataset: {tip: `the whole request: ${fmtMsExact(r.duration_ms)}`}}),
			fmtMs(r.duration_ms)),
		   lanes),
		 u.spans_truncated ? h('p', {class: 'muted small', id: 'u-spans-truncated'},
			'More spans than the tracer keeps per request (32): the last one shown absorbs the rest.') : null,
		 h('div', {class: 'legend'},
		   h('span', {class: 'key u-run'}, 'run (filled: CPU share of its wall time)'),
		   h('span', {class: 'key u-gc'}, 'GC pause'),
		   h('span', {class: 'key u-poolq'}, 'thread-pool queue'),
		   tl.some((x) => x.kind === 'net_wait') ? h('span', {class: 'key u-netq'}, 'waiting for another service') : null,
		   sql.length ? h('span', {class: 'key u-sql'}, 'SQL statement') : null));
}
