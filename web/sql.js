// SPDX-License-Identifier: MIT
// The "SQL" view (#/sql?run=N): the run's statements by total time
// (GET /api/sql/top) with the endpoints that run them, and the findings of
// GET /api/sql/findings: N+1 patterns (one statement run 5+ times by one
// request), slow statements, errors. A request id links to its page, an
// endpoint to its requests. Nothing is shown for data the run does not have.

import {api, href, carry} from './client.js';
import {h, fill, fmtMs, fmtInt, endpointName} from './util.js';

const th = (t, num = false) => h('th', {scope: 'col', class: num ? 'num' : ''}, t);
const reqLink = (id) => (id === null || id === undefined ? '—'
	: h('a', {href: href('requests/' + id, carry())}, '#' + id));
const epLink = (e) => (e.method
	? h('a', {href: href('requests', carry({method: e.method, route: e.route ?? ''}))}, endpointName(e))
	: '—');
const stmt = (s) => h('code', {class: 'sql'}, s ?? '');

function topTable(list) {
	if (list.length === 0)
		return h('p', {class: 'empty'}, 'No SQL statements were recorded in this run.');
	return h('table', {class: 'data compact', id: 'sql-top'},
		 h('thead', {}, h('tr', {}, th('Statement'), th('Calls', true), th('Total', true),
				  th('Mean', true), th('p95', true), th('Rows', true), th('Errors', true),
				  th('Endpoints'))),
		 h('tbody', {}, list.map((s) => h('tr', {dataset: {fingerprint: s.fingerprint}},
			h('td', {}, stmt(s.statement)),
			h('td', {class: 'num'}, fmtInt(s.count)),
			h('td', {class: 'num'}, fmtMs(s.total_ms)),
			h('td', {class: 'num'}, fmtMs(s.mean_ms)),
			h('td', {class: 'num'}, fmtMs(s.p95_ms)),
			h('td', {class: 'num'}, fmtInt(s.rows)),
			h('td', {class: 'num'}, s.errors > 0 ? h('span', {class: 'bad'}, fmtInt(s.errors)) : '0'),
			h('td', {}, h('ul', {class: 'eplist'}, (s.endpoints || []).map((e) =>
				h('li', {}, epLink(e), h('span', {class: 'muted'}, ` ×${fmtInt(e.count)}`)))))))));
}

function findingsPanel(f) {
	const parts = [];
	if (f.n_plus_1.length)
		parts.push(h('h3', {}, 'N+1 patterns'),
			   h('p', {class: 'muted'}, 'One request running the same statement 5 times or more: ' +
			     'usually a loop that could be one query (a join or IN list).'),
			   h('table', {class: 'data compact', id: 'sql-nplus1'},
			     h('thead', {}, h('tr', {}, th('Request'), th('Endpoint'), th('Statement'),
					      th('Runs', true), th('Total', true))),
			     h('tbody', {}, f.n_plus_1.map((x) => h('tr', {},
				h('td', {}, reqLink(x.request_id)), h('td', {}, epLink(x)),
				h('td', {}, stmt(x.statement)), h('td', {class: 'num'}, fmtInt(x.count)),
				h('td', {class: 'num'}, fmtMs(x.total_ms)))))));
	if (f.slow.length)
		parts.push(h('h3', {}, `Slow statements (≥ ${fmtInt(f.slow_ms)} ms)`),
			   h('table', {class: 'data compact', id: 'sql-slow'},
			     h('thead', {}, h('tr', {}, th('Request'), th('Endpoint'), th('Statement'),
					      th('Duration', true), th('Rows', true))),
			     h('tbody', {}, f.slow.map((x) => h('tr', {},
				h('td', {}, reqLink(x.request_id)), h('td', {}, epLink(x)),
				h('td', {}, stmt(x.statement)), h('td', {class: 'num'}, fmtMs(x.duration_ms)),
				h('td', {class: 'num'}, fmtInt(x.rows)))))));
	if (f.errors.length)
		parts.push(h('h3', {}, 'Errors'),
			   h('table', {class: 'data compact', id: 'sql-errors'},
			     h('thead', {}, h('tr', {}, th('Statement'), th('SQLSTATE'), th('Error'),
					      th('Count', true), th('Last request'))),
			     h('tbody', {}, f.errors.map((x) => h('tr', {},
				h('td', {}, stmt(x.statement)), h('td', {}, h('code', {}, x.sqlstate ?? '—')),
				h('td', {class: 'bad'}, x.error ?? ''), h('td', {class: 'num'}, fmtInt(x.count)),
				h('td', {}, reqLink(x.request_id)))))));
	return h('section', {class: 'panel', id: 'sql-findings'}, h('h2', {}, 'Findings'),
		 parts.length ? parts : h('p', {class: 'empty'}, 'No N+1 pattern, slow statement or error in this run.'));
}

export function mount(el, route) {
	const ctl = new AbortController();
	const run = route.params.get('run');
	el.append(h('p', {class: 'muted loading'}, 'Loading SQL statements…'));
	Promise.all([api('sql/top', {run, limit: 50}, ctl.signal), api('sql/findings', {run}, ctl.signal)])
		.then(([top, f]) => {
			const list = top.statements || [];
			fill(el, h('div', {class: 'viewhead'}, h('h1', {}, 'SQL'),
				   h('span', {class: 'muted'}, `${list.length} statement${list.length === 1 ? '' : 's'} by total time`)),
			     h('section', {class: 'panel'}, h('h2', {}, 'Top statements'), topTable(list)),
			     list.length ? findingsPanel(f) : null);
		})
		.catch((e) => {
			if (e.name !== 'AbortError')
				fill(el, h('div', {class: 'error', role: 'alert'}, e.message));
		});
	return {unmount: () => ctl.abort()};
}
