// SPDX-License-Identifier: MIT
// The endpoints table (GET /api/endpoints): one row per (method, route),
// sorted by the server; the sort is in the URL (#/endpoints?sort=p95&order=desc).
// Column headers are buttons (Tab + Enter/Space sort; aria-sort says how).
// Optional columns appear only when the API sends their field. A row (click
// or Enter) opens the requests list filtered to that endpoint.

import {api, href, carry} from './client.js';
import {h, fill, fmtMs, fmtInt, fmtBytes} from './util.js';

// [key for ?sort= (null: not sortable), title, field, formatter, numeric]
const BASE = [
	[null, 'Endpoint', null, null, false],
	['count', 'Requests', 'count', fmtInt, true],
	['errors', 'Errors', 'errors', fmtInt, true],
	['p50', 'p50', 'p50_ms', fmtMs, true],
	['p95', 'p95', 'p95_ms', fmtMs, true],
	['p99', 'p99', 'p99_ms', fmtMs, true],
	['mean', 'Mean', 'mean_ms', fmtMs, true],
	['max', 'Max', 'max_ms', fmtMs, true],
];
// Shown only when present in the answer (later API versions); the CPU and GC
// means only when some endpoint of the run has one (null: no usage data).
const OPTIONAL = [
	['cpu', 'CPU (mean)', 'cpu_mean_ms', fmtMs, true],
	['gc', 'GC (mean)', 'gc_mean_ms', fmtMs, true],
	[null, 'SQL (mean)', 'mean_sql_ms', fmtMs, true],
	[null, 'SQL stmts', 'sql_count', fmtInt, true],
	[null, 'Resp. size', 'mean_resp_bytes', fmtBytes, true],
];
const SORTS = new Set(BASE.concat(OPTIONAL).map((c) => c[0]).filter(Boolean));
const NULLABLE = new Set(['cpu_mean_ms', 'gc_mean_ms']);
// Sorted here, not by the server (the list is complete: one row per endpoint).
const LOCAL_SORTS = {gc: 'gc_mean_ms'};

function sortLocally(list, sort, order) {
	const f = LOCAL_SORTS[sort];
	if (!f)
		return list;
	const dir = order === 'asc' ? 1 : -1;
	const v = (e) => (typeof e[f] === 'number' ? e[f] : null);
	return list.slice().sort((a, b) => {
		if (v(a) !== v(b)) {
			if (v(a) === null)
				return 1; // endpoints without a value last, either way
			if (v(b) === null)
				return -1;
			return dir * (v(a) - v(b));
		}
		return a.method.localeCompare(b.method) || String(a.route ?? '').localeCompare(String(b.route ?? ''));
	});
}
const present = (list, f) => list.some((e) => (NULLABLE.has(f) ? typeof e[f] === 'number' : e[f] !== undefined));

function sortOf(params) {
	const sort = SORTS.has(params.get('sort')) ? params.get('sort') : 'count';
	const order = params.get('order') === 'asc' ? 'asc' : 'desc';
	return {sort, order};
}

function header(col, sort, order, params) {
	const [key, title, , , num] = col;
	if (!key)
		return h('th', {scope: 'col', class: num ? 'num' : ''}, title);
	const active = key === sort;
	const next = active && order === 'desc' ? 'asc' : 'desc';
	const p = new URLSearchParams(params);
	p.set('sort', key);
	p.set('order', next);
	return h('th', {scope: 'col', class: num ? 'num' : '',
			'aria-sort': active ? (order === 'asc' ? 'ascending' : 'descending') : 'none'},
		 h('button', {class: 'sort' + (active ? ' active' : ''), dataset: {sort: key},
			      title: `Sort by ${title} (${next === 'desc' ? 'descending' : 'ascending'})`,
			      onclick: () => { location.hash = href('endpoints', p); }},
		   title, h('span', {class: 'arrow', 'aria-hidden': 'true'},
			    active ? (order === 'asc' ? ' ▲' : ' ▼') : '')));
}

function render(el, route, list, focusKey) {
	const {sort, order} = sortOf(route.params);
	const cols = BASE.concat(OPTIONAL.filter((c) => present(list, c[2])));
	const go = (e) => { location.hash = href('requests', carry({method: e.method, route: e.route})); };
	const table = list.length === 0
		? h('p', {class: 'empty'}, 'No requests recorded in this run.')
		: h('table', {class: 'data', id: 'endpoints-table'},
		    h('thead', {}, h('tr', {}, cols.map((c) => header(c, sort, order, route.params)))),
		    h('tbody', {}, list.map((e) => h('tr', {class: 'rowlink', tabindex: 0,
				dataset: {method: e.method, route: e.route ?? ''},
				onclick: () => go(e),
				onkeydown: (ev) => { if (ev.key === 'Enter') go(e); }},
			cols.map((c) => c[2] === null
				? h('td', {class: 'endpoint'}, h('span', {class: 'method'}, e.method), ' ',
				    h('span', {class: 'route'}, e.route ?? '(no route)'))
				: h('td', {class: 'num', dataset: {col: c[2]}},
				    c[2] === 'errors' && e.errors > 0 ? h('span', {class: 'bad'}, c[3](e[c[2]]))
					: c[3](e[c[2]])))))));
	fill(el, h('div', {class: 'viewhead'}, h('h1', {}, 'Endpoints'),
			   h('span', {class: 'muted'}, `${list.length} endpoint${list.length === 1 ? '' : 's'}`)),
			 h('section', {class: 'panel'}, table));
	if (focusKey) {
		const b = el.querySelector(`button.sort[data-sort="${focusKey}"]`);
		if (b)
			b.focus();
	}
}

export function mount(el, route) {
	let ctl = null;
	const load = (route, focusKey) => {
		if (ctl)
			ctl.abort();
		ctl = new AbortController();
		const {sort, order} = sortOf(route.params);
		api('endpoints', {run: route.params.get('run'), sort: LOCAL_SORTS[sort] ? 'count' : sort, order}, ctl.signal)
			.then((d) => render(el, route, sortLocally(d.endpoints || [], sort, order), focusKey))
			.catch((e) => {
				if (e.name !== 'AbortError')
					fill(el, h('div', {class: 'error', role: 'alert'}, e.message));
			});
	};
	el.append(h('p', {class: 'muted loading'}, 'Loading endpoints…'));
	load(route, null);
	return {
		update(r) {
			const f = document.activeElement;
			load(r, f && f.dataset && f.dataset.sort ? f.dataset.sort : null);
		},
		unmount: () => ctl && ctl.abort(),
	};
}
