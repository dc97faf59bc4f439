// SPDX-License-Identifier: MIT
// The dashboard's entry point: the header (run selector, live indicator,
// dropped-events badge), the hash router and the global keyboard shortcut.
//
// All state a user may want to share lives in the URL hash
// (#/overview?run=3, #/requests?status=5xx&sort=duration, #/requests/123), so
// back/forward, reload and copied links all work. A view module exports
// mount(main, route, ctx) and returns {update(route)?, unmount()?}: when
// only the parameters of the current view change (filters being edited),
// the router calls update() so inputs keep their focus; otherwise it
// unmounts the old view and mounts the new one.

import {api, parseHash, href, carry} from './client.js';
import {h, clear, fill, fmtInt, fmtAgo, fmtAbs} from './util.js';
import * as overview from './overview.js';
import * as endpoints from './endpoints.js';
import * as requests from './requests.js';
import * as request from './request.js';
import * as sql from './sql.js';
import * as flamegraphs from './flamegraphs.js';

const STATUS_POLL_MS = 5000;

const ctx = {
	status: null, // /api/status
	runs: [], // /api/runs
	live: () => !!(ctx.status && ctx.status.live),
	// The run shown: the one in the URL, else the newest.
	run() {
		const id = parseHash().params.get('run');
		return (id ? ctx.runs.find((r) => String(r.id) === id) : ctx.runs[0]) || null;
	},
	focusPathFilter: false,
	prevHash: null, // the hash of the previous view (for "back" links)
};
let lastHash = null;

const main = document.getElementById('main');
const runSel = document.getElementById('run');
const liveEl = document.getElementById('live');
const dropEl = document.getElementById('dropped');
let current = null; // {view, id, handle}

function viewFor(r) {
	if (r.view === 'requests' && r.id)
		return request;
	return {overview, endpoints, requests, sql, flamegraphs}[r.view] || null;
}

function renderHeader() {
	const sel = parseHash().params.get('run') || '';
	const labels = ctx.runs.map((r) => [String(r.id),
		`#${r.id} · ${fmtAbs(r.started_ns).slice(0, 16)} · ${fmtInt(r.requests)} req`]);
	const sig = JSON.stringify(labels);
	if (runSel.dataset.sig !== sig) { // rebuilding would close an open dropdown
		runSel.dataset.sig = sig;
		fill(runSel, h('option', {value: ''}, 'Latest run'),
		     labels.map(([v, t]) => h('option', {value: v}, t)));
	}
	runSel.value = ctx.runs.some((r) => String(r.id) === sel) ? sel : '';

	const live = ctx.live();
	liveEl.hidden = !ctx.status;
	liveEl.className = 'pill ' + (live ? 'live' : 'idle');
	liveEl.textContent = live ? 'live' : 'stored';
	liveEl.title = live ? 'A tracer is writing to this database now.'
			    : 'Nothing is writing to this database: showing what was recorded.';

	const run = ctx.run();
	const dropped = run ? run.dropped_events : 0;
	dropEl.hidden = !(dropped > 0);
	dropEl.textContent = `${fmtInt(dropped)} dropped events`;
	dropEl.title = 'The kernel ring buffer was full and dropped events: requests on affected ' +
		'connections are flagged "lost_events" or "incomplete", and some may be missing. ' +
		'Counts and rates of this run are lower bounds.';

	for (const a of document.querySelectorAll('nav a')) {
		const on = a.dataset.view === parseHash().view;
		a.classList.toggle('active', on);
		if (on)
			a.setAttribute('aria-current', 'page');
		else
			a.removeAttribute('aria-current');
		a.href = href(a.dataset.view, carry());
	}
	const ended = run && run.ended_ns;
	document.getElementById('runinfo').textContent = run
		? `started ${fmtAgo(run.started_ns)}` + (ended ? '' : ' · still open')
		: '';
}

async function loadMeta() {
	const [status, runs] = await Promise.all([api('status'), api('runs')]);
	ctx.status = status;
	ctx.runs = runs.runs || [];
	document.getElementById('version').textContent = 'v' + status.version;
	document.getElementById('dbpath').textContent = status.db;
}

function showFatal(e) {
	fill(main, h('div', {class: 'error', role: 'alert'}, h('strong', {}, 'Error: '), e.message));
}

function route() {
	const r = parseHash();
	ctx.prevHash = lastHash;
	lastHash = location.hash;
	renderHeader();
	const mod = viewFor(r);
	if (current && current.mod === mod && current.id === r.id && current.handle.update) {
		current.handle.update(r);
		return;
	}
	if (current && current.handle.unmount)
		current.handle.unmount();
	current = null;
	clear(main);
	if (!mod) {
		main.append(h('div', {class: 'empty'}, 'No such page. ', h('a', {href: '#/overview'}, 'Go to the overview.')));
		return;
	}
	if (!ctx.runs.length) {
		main.append(h('div', {class: 'empty'}, 'This database has no runs yet. Start ',
			      h('code', {}, 'timeglass trace'), ' to record one.'));
		current = {mod: null, id: null, handle: {}};
		return;
	}
	document.title = `TimeGlass · ${r.view === 'requests' && r.id ? 'request ' + r.id : r.view}`;
	current = {mod, id: r.id, handle: mod.mount(main, r, ctx) || {}};
	main.focus({preventScroll: true});
}

runSel.addEventListener('change', () => {
	const r = parseHash();
	const params = new URLSearchParams(r.params);
	if (runSel.value)
		params.set('run', runSel.value);
	else
		params.delete('run');
	// A request belongs to one run: switching runs goes back to the list.
	location.hash = href(r.view, r.id ? {run: runSel.value} : params);
});

document.addEventListener('keydown', (e) => {
	if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey)
		return;
	const t = e.target;
	if (t && (t.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(t.tagName)))
		return;
	e.preventDefault();
	const f = document.getElementById('f-q');
	if (f) {
		f.focus();
		f.select();
	} else {
		ctx.focusPathFilter = true;
		location.hash = href('requests', carry());
	}
});

window.addEventListener('hashchange', route);
document.getElementById('skip').addEventListener('click', (e) => {
	e.preventDefault();
	main.focus();
});

async function pollStatus() {
	try {
		const wasLive = ctx.live();
		const status = await api('status');
		ctx.status = status;
		if (status.live || wasLive)
			ctx.runs = (await api('runs')).runs || [];
		renderHeader();
	} catch {
		// The next poll tries again; views report their own errors.
	}
}

(async () => {
	try {
		await loadMeta();
	} catch (e) {
		renderHeader();
		showFatal(e);
		return;
	}
	route();
	setInterval(pollStatus, STATUS_POLL_MS);
})();
