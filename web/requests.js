// SPDX-License-Identifier: MIT
// The requests list (GET /api/requests): filters kept in the URL, one page
// at a time with keyset pagination ("Load more" follows the server's opaque
// `next` cursor; never more than one page is fetched per click), sorting by
// start, duration or CPU time (a column shown only when the run has CPU
// figures), and a live tail that polls every 2 s while the run is
// being traced, prepending only rows it has not shown yet (by id).
//
// Filter edits change the hash; the router then calls update(), which syncs
// the controls (leaving the focused one alone) and reloads the first page.
// Text and number inputs are debounced and replace the history entry, so
// typing does not flood the back button.

import {api, href, carry, parseHash} from './client.js';
import {h, clear, fill, fmtMs, fmtBytes, fmtClock, fmtAbs, fmtOffset, flagBadges, statusClass, debounce,
	nsToInput, inputToNs} from './util.js';

const PAGE = 50;
const TAIL_MS = 2000;
const FILTERS = ['method', 'route', 'q', 'status', 'min_ms', 'from_ns', 'to_ns'];
const STATUSES = [['', 'Any status'], ['2xx', '2xx'], ['3xx', '3xx'], ['4xx', '4xx'], ['5xx', '5xx'],
		  ['err', 'No status']];

function query(params) {
	const q = {run: params.get('run')};
	for (const k of FILTERS)
		q[k] = params.get(k);
	q.sort = ['duration', 'cpu'].includes(params.get('sort')) ? params.get('sort') : 'start';
	q.order = params.get('order') === 'asc' ? 'asc' : 'desc';
	return q;
}

function row(r, baseNs, open) {
	return h('tr', {class: 'rowlink', tabindex: 0, dataset: {id: r.id},
			title: `Open request ${r.id}`, onclick: () => open(r),
			onkeydown: (e) => { if (e.key === 'Enter') open(r); }},
		 h('td', {class: 'time', title: fmtAbs(r.start_ns)}, fmtClock(r.start_ns),
		   h('span', {class: 'muted small'}, ' ', fmtOffset(r.start_ns, baseNs))),
		 h('td', {}, h('span', {class: 'method'}, r.method)),
		 h('td', {class: 'path'}, h('span', {class: 'pathtext'}, r.path),
		   r.route && r.route !== r.path ? h('span', {class: 'route muted small'}, r.route) : null),
		 h('td', {class: 'num'}, h('span', {class: 'status ' + statusClass(r.status)}, r.status ?? '—')),
		 h('td', {class: 'num dur'}, fmtMs(r.duration_ms)),
		 h('td', {class: 'num'}, fmtMs(r.ttfb_ms)),
		 h('td', {class: 'num col-cpu', title: r.cpu_ms === null || r.cpu_ms === undefined ? 'no CPU figure for this request' : null},
		   fmtMs(r.cpu_ms)),
		 h('td', {class: 'num'}, fmtBytes(r.resp_bytes)),
		 h('td', {class: 'flags'}, flagBadges(r.flag_names)));
}

export function mount(el, route, ctx) {
	let params = route.params;
	let ctl = null; // aborts the page load in flight
	let next = null;
	let seen = new Set();
	let tailTimer = null;
	let tailBusy = false;
	let endpoints = [];

	const go = (changes, replace) => {
		const p = new URLSearchParams(params);
		for (const [k, v] of Object.entries(changes))
			if (v === '' || v === null || v === undefined)
				p.delete(k);
			else
				p.set(k, v);
		const target = href('requests', p);
		if (target === location.hash)
			return;
		if (replace) {
			history.replaceState(null, '', target);
			applyRoute(parseHash());
		} else {
			location.hash = target;
		}
	};

	// Controls.
	const fMethod = h('select', {id: 'f-method', onchange: () => go({method: fMethod.value})});
	const fRoute = h('select', {id: 'f-route', onchange: () => go({route: fRoute.value})});
	const typed = debounce((k, v) => go({[k]: v}, true), 300);
	const fQ = h('input', {id: 'f-q', type: 'search', placeholder: 'path contains…  ( / )', autocomplete: 'off',
			       spellcheck: 'false', oninput: () => typed('q', fQ.value)});
	const fStatus = h('select', {id: 'f-status', onchange: () => go({status: fStatus.value})},
			  STATUSES.map(([v, t]) => h('option', {value: v}, t)));
	const fMin = h('input', {id: 'f-min', type: 'number', min: 0, step: 'any', placeholder: '0',
				 oninput: () => typed('min_ms', fMin.value)});
	const fFrom = h('input', {id: 'f-from', type: 'datetime-local', step: 1,
				  onchange: () => go({from_ns: fFrom.value ? inputToNs(fFrom.value) : ''})});
	const fTo = h('input', {id: 'f-to', type: 'datetime-local', step: 1,
				onchange: () => go({to_ns: fTo.value ? inputToNs(fTo.value) : ''})});
	const fTail = h('input', {id: 'f-tail', type: 'checkbox', onchange: () => setTail(fTail.checked)});
	const tailLabel = h('label', {class: 'tail', title: 'Poll every 2 s for new requests while the run is live'},
			    fTail, ' Live tail');
	const clearBtn = h('button', {type: 'button', class: 'link', onclick: () => {
		location.hash = href('requests', carry());
	}}, 'Clear filters');
	const label = (f, text, ctl) => h('label', {for: f, class: 'field'}, h('span', {}, text), ctl);

	const summary = h('span', {class: 'muted', id: 'req-summary', 'aria-live': 'polite'});
	const msg = h('div', {id: 'req-msg'});
	const tbody = h('tbody', {});
	const sortBtn = (key, title) => h('button', {class: 'sort', dataset: {sort: key}, onclick: () => {
		const q = query(params);
		const order = q.sort === key && q.order === 'desc' ? 'asc' : 'desc';
		go({sort: key === 'start' && order === 'desc' ? '' : key, order: order === 'desc' ? '' : order});
	}}, title, h('span', {class: 'arrow', 'aria-hidden': 'true'}));
	const thStart = h('th', {scope: 'col'}, sortBtn('start', 'Time'));
	const thDur = h('th', {scope: 'col', class: 'num'}, sortBtn('duration', 'Duration'));
	const thCpu = h('th', {scope: 'col', class: 'num col-cpu', title: 'CPU time of the request\'s work (event loop and thread pool)'},
			sortBtn('cpu', 'CPU'));
	// The CPU column is shown only when the run has CPU figures (an endpoint
	// with a mean, a row with a value, or a CPU sort in the URL).
	let hasCpu = false;
	const showCpu = (on) => {
		hasCpu = hasCpu || on;
		table.classList.toggle('no-cpu', !hasCpu);
	};
	const table = h('table', {class: 'data no-cpu', id: 'requests-table'},
			h('thead', {}, h('tr', {}, thStart, h('th', {scope: 'col'}, 'Method'),
					 h('th', {scope: 'col'}, 'Path'), h('th', {scope: 'col', class: 'num'}, 'Status'),
					 thDur, h('th', {scope: 'col', class: 'num'}, 'TTFB'), thCpu,
					 h('th', {scope: 'col', class: 'num'}, 'Response'), h('th', {scope: 'col'}, 'Flags'))),
			tbody);
	const more = h('button', {id: 'load-more', type: 'button', hidden: true, onclick: () => loadMore()},
		       'Load more');

	fill(el, 
		h('div', {class: 'viewhead'}, h('h1', {}, 'Requests'), summary),
		h('form', {class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault()},
		  label('f-method', 'Method', fMethod), label('f-route', 'Route', fRoute),
		  label('f-q', 'Path', fQ), label('f-status', 'Status', fStatus),
		  label('f-min', 'Min ms', fMin), label('f-from', 'From', fFrom), label('f-to', 'To', fTo),
		  h('div', {class: 'field actions'}, tailLabel, clearBtn)),
		msg,
		h('section', {class: 'panel tablewrap'}, table, h('div', {class: 'more'}, more)));

	const baseNs = () => (ctx.run() ? ctx.run().started_ns : null);
	const open = (r) => { location.hash = href('requests/' + r.id, carry()); };

	function fillSelects() {
		const methods = [...new Set(endpoints.map((e) => e.method))].sort();
		const routes = [...new Set(endpoints.filter((e) => !params.get('method') || e.method === params.get('method'))
			.map((e) => e.route).filter((r) => r !== null && r !== undefined))].sort();
		for (const [sel, list, any, key] of [[fMethod, methods, 'Any method', 'method'],
						     [fRoute, routes, 'Any route', 'route']]) {
			const cur = params.get(key) || '';
			if (cur && !list.includes(cur))
				list.unshift(cur);
			fill(sel, h('option', {value: ''}, any), list.map((v) => h('option', {value: v}, v)));
			sel.value = cur;
		}
	}

	function syncControls() {
		const q = query(params);
		const set = (ctlEl, v) => {
			if (document.activeElement !== ctlEl)
				ctlEl.value = v;
		};
		fillSelects();
		set(fQ, q.q || '');
		set(fStatus, q.status || '');
		set(fMin, q.min_ms || '');
		set(fFrom, nsToInput(q.from_ns));
		set(fTo, nsToInput(q.to_ns));
		showCpu(q.sort === 'cpu');
		for (const [th, key] of [[thStart, 'start'], [thDur, 'duration'], [thCpu, 'cpu']]) {
			const on = q.sort === key;
			th.setAttribute('aria-sort', on ? (q.order === 'asc' ? 'ascending' : 'descending') : 'none');
			th.querySelector('button').classList.toggle('active', on);
			th.querySelector('.arrow').textContent = on ? (q.order === 'asc' ? ' ▲' : ' ▼') : '';
		}
		const live = ctx.live();
		fTail.disabled = !live;
		tailLabel.classList.toggle('disabled', !live);
		if (!live && tailTimer)
			setTail(false);
	}

	function showError(e) {
		if (e.name === 'AbortError')
			return;
		clear(msg).append(h('div', {class: 'error', role: 'alert'}, e.message));
	}

	function updateSummary() {
		const n = tbody.children.length;
		if (!hasCpu)
			showCpu([...tbody.querySelectorAll('td.col-cpu')].some((td) => td.textContent !== '—'));
		summary.textContent = n === 0 ? '' : `${n} shown${next ? ', more available' : ''}`;
		more.hidden = !next;
		table.hidden = n === 0;
		if (n === 0 && !msg.firstChild) {
			const filtered = FILTERS.some((k) => params.get(k));
			msg.append(h('p', {class: 'empty'}, filtered ? 'No requests match these filters. '
				     : 'No requests recorded in this run yet.', filtered ? clearBtn.cloneNode(true) : null));
			const b = msg.querySelector('button');
			if (b)
				b.addEventListener('click', () => { location.hash = href('requests', carry()); });
		}
	}

	async function load() {
		if (ctl)
			ctl.abort();
		ctl = new AbortController();
		const signal = ctl.signal;
		summary.textContent = 'Loading…';
		try {
			const d = await api('requests', {...query(params), limit: PAGE}, signal);
			clear(msg);
			clear(tbody);
			seen = new Set();
			for (const r of d.requests) {
				seen.add(r.id);
				tbody.append(row(r, baseNs(), open));
			}
			next = d.next;
			// A filtered search stops after a time budget and may return a short
			// page with a cursor (docs/api.md): keep going until the page is full.
			for (let i = 0; i < 20 && next && seen.size < PAGE; i++) {
				const m = await api('requests', {...query(params), limit: PAGE - seen.size, after: next}, signal);
				for (const r of m.requests) {
					if (seen.has(r.id))
						continue;
					seen.add(r.id);
					tbody.append(row(r, baseNs(), open));
				}
				next = m.next;
			}
			updateSummary();
		} catch (e) {
			if (e.name === 'AbortError')
				return;
			clear(tbody);
			next = null;
			showError(e);
			updateSummary();
		}
	}

	async function loadMore() {
		if (!next)
			return;
		more.disabled = true;
		try {
			const d = await api('requests', {...query(params), limit: PAGE, after: next}, ctl.signal);
			for (const r of d.requests) {
				if (seen.has(r.id))
					continue;
				seen.add(r.id);
				tbody.append(row(r, baseNs(), open));
			}
			next = d.next;
			updateSummary();
		} catch (e) {
			showError(e);
		} finally {
			more.disabled = false;
		}
	}

	async function poll() {
		if (tailBusy || !ctx.live())
			return;
		tailBusy = true;
		try {
			const d = await api('requests', {...query(params), limit: PAGE}, ctl.signal);
			const fresh = d.requests.filter((r) => !seen.has(r.id));
			if (fresh.length === d.requests.length && fresh.length === PAGE && seen.size) {
				await load(); // a gap we cannot fill: start over from the newest page
				return;
			}
			const first = tbody.firstChild;
			for (const r of fresh) {
				seen.add(r.id);
				const tr = row(r, baseNs(), open);
				tr.classList.add('new');
				tbody.insertBefore(tr, first);
			}
			if (fresh.length) {
				clear(msg);
				updateSummary();
			}
		} catch (e) {
			showError(e);
		} finally {
			tailBusy = false;
		}
	}

	function setTail(on) {
		fTail.checked = on;
		clearInterval(tailTimer);
		tailTimer = null;
		if (!on)
			return;
		const q = query(params);
		if (q.sort !== 'start' || q.order !== 'desc')
			go({sort: '', order: ''});
		tailTimer = setInterval(poll, TAIL_MS);
	}

	function loadEndpoints() {
		api('endpoints', {run: params.get('run'), sort: 'count', order: 'desc'})
			.then((d) => {
				endpoints = d.endpoints || [];
				showCpu(endpoints.some((e) => typeof e.cpu_mean_ms === 'number'));
				fillSelects();
			})
			.catch(showError);
	}

	function applyRoute(r) {
		const runChanged = (r.params.get('run') || '') !== (params.get('run') || '');
		params = r.params;
		if (runChanged) {
			hasCpu = false;
			showCpu(false);
			loadEndpoints();
		}
		const q = query(params);
		if (tailTimer && (q.sort !== 'start' || q.order !== 'desc'))
			setTail(false);
		syncControls();
		load();
	}

	loadEndpoints();
	syncControls();
	load().then(() => {
		if (ctx.focusPathFilter) {
			ctx.focusPathFilter = false;
			fQ.focus();
		}
	});

	return {
		update: applyRoute,
		unmount() {
			typed.cancel();
			clearInterval(tailTimer);
			if (ctl)
				ctl.abort();
		},
	};
}
