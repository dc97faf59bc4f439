// SPDX-License-Identifier: MIT
// One request (GET /api/requests/ID): summary cards and, when the API sends
// them, extra sections: what it used ("usage": the Resources panel and the
// timeline waterfall of its threads, GC and SQL, web/usage.js), its SQL
// statements (a waterfall placing them in the request, and the list), its CPU
// flame graph when samples exist ("samples"). Nothing is shown for data that
// does not exist.

import {api, href, carry} from './client.js';
import {h, fill, fmtMsExact, fmtMs, fmtBytes, fmtAbs, fmtAgo, fmtInt, flagInfo, statusClass} from './util.js';
import {showFlame} from './flame.js';
import {resourcesSection, timelineSection, hideTip} from './usage.js';

function card(label, value, key, sub = null, cls = '') {
	return h('div', {class: 'card ' + cls, dataset: {field: key}},
		 h('div', {class: 'label'}, label), h('div', {class: 'value'}, value),
		 sub ? h('div', {class: 'sub muted'}, sub) : null);
}

// Extra per-request measurements, shown when present (CPU, GC and memory are
// in the Resources panel of "usage").
const EXTRA = [
	['sql_ms', 'SQL time', fmtMsExact],
];

function sqlSection(list, r) {
	if (!Array.isArray(list) || list.length === 0)
		return null;
	const n = r.sql_count ?? list.length;
	return h('section', {class: 'panel', id: 'sql'},
		 h('h2', {}, `SQL (${fmtInt(n)} statement${n === 1 ? '' : 's'}` +
		   (typeof r.sql_ms === 'number' ? `, ${fmtMs(r.sql_ms)})` : ')')),
		 r.sql_truncated ? h('p', {class: 'muted'}, `Showing the first ${fmtInt(list.length)}.`) : null,
		 h('table', {class: 'data compact'},
		   h('thead', {}, h('tr', {}, h('th', {scope: 'col', class: 'num'}, 'Start'),
				    h('th', {scope: 'col'}, 'Statement'),
				    h('th', {scope: 'col', class: 'num'}, 'Duration'),
				    h('th', {scope: 'col', class: 'num'}, 'Rows'))),
		   h('tbody', {}, list.map((q) => h('tr', {},
			h('td', {class: 'num'}, q.start_ms === undefined ? '—' : '+' + fmtMs(q.start_ms)),
			h('td', {}, h('code', {class: 'sql'}, q.statement ?? q.query ?? q.sql ?? ''),
			  q.error ? h('div', {class: 'bad'}, (q.sqlstate ? q.sqlstate + ': ' : '') + q.error) : null),
			h('td', {class: 'num'}, fmtMs(q.duration_ms)),
			h('td', {class: 'num'}, q.rows === undefined || q.rows === null || q.rows < 0 ? '—' : fmtInt(q.rows)))))));
}

// The request as a bar with its SQL statements placed by start and duration.
function sqlWaterfall(list, r, title = 'Timeline') {
	if (!Array.isArray(list) || list.length === 0 || typeof list[0].start_ms !== 'number')
		return null;
	const span = Math.max(r.duration_ms || 0, ...list.map((q) => q.start_ms + (q.duration_ms || 0))) || 1;
	const bar = (t, d, cls, title) => h('span', {class: 'tl-track'},
		h('span', {class: 'tl-bar ' + cls, title,
			   style: `left:${((t / span) * 100).toFixed(2)}%;width:${Math.max(0.3, ((d || 0) / span) * 100).toFixed(2)}%`}));
	return h('section', {class: 'panel', id: 'sql-waterfall'}, h('h2', {}, title),
		 h('ol', {class: 'timeline'},
		   h('li', {class: 'tl-request'}, h('span', {class: 'tl-label'}, 'request'),
		     bar(0, r.duration_ms ?? span, 'k-request', `the whole request: ${fmtMs(r.duration_ms)}`),
		     h('span', {class: 'num tl-dur'}, fmtMs(r.duration_ms))),
		   list.map((q) => h('li', {},
			h('span', {class: 'tl-label', title: q.statement}, q.statement),
			bar(q.start_ms, q.duration_ms, 'k-sql' + (q.error ? ' k-error' : ''),
			    `+${fmtMs(q.start_ms)} for ${fmtMs(q.duration_ms)}`),
			h('span', {class: 'num tl-dur'}, fmtMs(q.duration_ms))))));
}

// The request's CPU flame graph, when samples were taken during it.
function flameSection(r) {
	if (!(r.samples > 0))
		return null;
	const box = h('div', {class: 'flamebox', id: 'r-flame'});
	showFlame(box, {request: r.id});
	return h('section', {class: 'panel', id: 'flame'},
		 h('h2', {}, `CPU flame graph (${fmtInt(r.samples)} sample${r.samples === 1 ? '' : 's'})`), box);
}

function render(el, r, fromList) {
	const flags = r.flag_names || [];
	const extras = EXTRA.filter(([k]) => typeof r[k] === 'number')
		.map(([k, label, f]) => card(label, f(r[k]), k));
	fill(el, 
		h('div', {class: 'viewhead'},
		  h('a', {href: href('requests', carry()), class: 'back',
			  onclick: (e) => {
				  // Back to the list as it was (filters, loaded pages) when we came from it.
				  if (fromList) {
					  e.preventDefault();
					  history.back();
				  }
			  }}, '← Requests'),
		  h('h1', {}, h('span', {class: 'method', id: 'r-method'}, r.method), ' ',
		    h('span', {class: 'pathtext', id: 'r-path'}, r.path)),
		  h('span', {class: 'muted', title: fmtAbs(r.start_ns)}, `#${r.id} · ${fmtAbs(r.start_ns)} (${fmtAgo(r.start_ns)})`)),
		h('div', {class: 'cards wide'},
		  card('Latency', fmtMsExact(r.duration_ms), 'duration', 'to the last byte of the response'),
		  card('TTFB', fmtMsExact(r.ttfb_ms), 'ttfb', 'time to first response byte'),
		  card('Status', String(r.status ?? '—'), 'status', r.status === null ? 'no response seen' : null,
		       statusClass(r.status)),
		  card('Bytes in', fmtBytes(r.req_bytes), 'req_bytes', 'request'),
		  card('Bytes out', fmtBytes(r.resp_bytes), 'resp_bytes', 'response'),
		  card('Process', `pid ${r.pid}`, 'pid', r.tid !== undefined ? `thread ${r.tid}` : null),
		  card('Peer', r.peer || '—', 'peer', r.conn_id !== undefined ? `connection ${r.conn_id}` : null),
		  extras),
		h('section', {class: 'panel'}, h('h2', {}, 'Details'),
		  h('dl', {class: 'kv'},
		    h('dt', {}, 'Route'), h('dd', {}, r.route
			? h('a', {href: href('requests', carry({method: r.method, route: r.route}))}, r.route)
			: '—'),
		    h('dt', {}, 'Run'), h('dd', {}, String(r.run_id ?? '—')),
		    h('dt', {}, 'Flags'), h('dd', {}, flags.length === 0 ? 'none'
			: h('ul', {class: 'flaglist'}, flags.map((f) => h('li', {},
				h('span', {class: 'badge flag flag-' + f}, f.replace('_', ' ')), ' ', flagInfo(f))))))),
		resourcesSection(r),
		timelineSection(r),
		sqlWaterfall(r.sql, r, r.usage ? 'SQL statements in the request' : 'Timeline'),
		sqlSection(r.sql, r),
		flameSection(r));
}

export function mount(el, route, ctx) {
	const fromList = /^#\/requests(\?|$)/.test(ctx.prevHash || '');
	const ctl = new AbortController();
	el.append(h('p', {class: 'muted loading'}, 'Loading request…'));
	if (!/^\d+$/.test(route.id)) {
		fill(el, h('div', {class: 'error', role: 'alert'}, `"${route.id}" is not a request id.`));
		return {};
	}
	api('requests/' + route.id, {}, ctl.signal)
		.then((d) => render(el, d.request, fromList))
		.catch((e) => {
			if (e.name === 'AbortError')
				return;
			fill(el, h('div', {class: 'error', role: 'alert'},
					   e.status === 404 ? `Request ${route.id} is not in this database.` : e.message),
					 h('p', {}, h('a', {href: href('requests', carry())}, '← Back to the requests list')));
		});
	return {unmount: () => {
		ctl.abort();
		hideTip();
	}};
}
