// SPDX-License-Identifier: MIT
// Small helpers shared by every view: DOM building, number/time formatting,
// request flag names, debouncing. No state lives here.

// h('a', {href: '#/x', class: 'c', onclick: fn}, 'text', child...) -> Element.
// Attribute values of null/undefined/false are skipped; strings become text nodes.
export function h(tag, attrs, ...children) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false)
			continue;
		if (k.startsWith('on') && typeof v === 'function')
			el.addEventListener(k.slice(2), v);
		else if (k === 'dataset')
			Object.assign(el.dataset, v);
		else
			el.setAttribute(k, v === true ? '' : String(v));
	}
	append(el, children);
	return el;
}

function append(el, children) {
	for (const c of children) {
		if (c === null || c === undefined || c === false)
			continue;
		if (Array.isArray(c))
			append(el, c);
		else
			el.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
}

// Replace el's children (null/false skipped, arrays flattened, like h()).
export function fill(el, ...children) {
	clear(el);
	append(el, children);
	return el;
}

export function clear(el) {
	while (el.firstChild)
		el.firstChild.remove();
	return el;
}

// Durations arrive in milliseconds (numbers with 3 decimals).
export function fmtMs(v) {
	if (v === null || v === undefined)
		return '—';
	if (v >= 10000)
		return (v / 1000).toFixed(1) + ' s';
	if (v >= 1000)
		return (v / 1000).toFixed(2) + ' s';
	if (v >= 100)
		return v.toFixed(0) + ' ms';
	if (v >= 10)
		return v.toFixed(1) + ' ms';
	return v.toFixed(2) + ' ms';
}

// The exact value, as stored (used on the request page).
export function fmtMsExact(v) {
	return v === null || v === undefined ? '—' : v.toFixed(3) + ' ms';
}

const nf = new Intl.NumberFormat('en-US');
export function fmtInt(v) {
	return v === null || v === undefined ? '—' : nf.format(Math.round(v));
}

export function fmtBytes(v) {
	if (v === null || v === undefined)
		return '—';
	if (v < 1024)
		return v + ' B';
	if (v < 1024 * 1024)
		return (v / 1024).toFixed(1) + ' KiB';
	return (v / 1024 / 1024).toFixed(1) + ' MiB';
}

export function fmtPct(v) {
	if (v === null || v === undefined)
		return '—';
	return (v * 100).toFixed(v < 0.001 && v > 0 ? 3 : 2) + ' %';
}

export function fmtRate(v) {
	return v === null || v === undefined ? '—' : v.toFixed(v < 10 ? 2 : 1) + ' /s';
}

// Times are strings of decimal epoch ns (they do not fit a double exactly).
export function nsToMs(ns) {
	return ns === null || ns === undefined ? null : Number(BigInt(ns) / 1000000n);
}

export function msToNs(ms) {
	return (BigInt(Math.round(ms)) * 1000000n).toString();
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// "2026-11-25 14:32:58.182" in local time.
export function fmtAbs(ns) {
	const ms = nsToMs(ns);
	if (ms === null)
		return '—';
	const d = new Date(ms);
	return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
		`${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// "14:32:58.182" in local time.
export function fmtClock(ns) {
	return fmtAbs(ns).slice(11);
}

// "3 min ago", "in 2 s", "just now".
export function fmtAgo(ns, nowMs = Date.now()) {
	const ms = nsToMs(ns);
	if (ms === null)
		return '—';
	const s = Math.round((nowMs - ms) / 1000);
	const a = Math.abs(s);
	let txt;
	if (a < 5)
		return 'just now';
	if (a < 90)
		txt = a + ' s';
	else if (a < 90 * 60)
		txt = Math.round(a / 60) + ' min';
	else if (a < 36 * 3600)
		txt = Math.round(a / 3600) + ' h';
	else
		txt = Math.round(a / 86400) + ' d';
	return s >= 0 ? txt + ' ago' : 'in ' + txt;
}

// "+12.345 s" relative to a base time (both ns strings).
export function fmtOffset(ns, baseNs) {
	if (ns === null || baseNs === null || ns === undefined || baseNs === undefined)
		return '';
	const d = Number(BigInt(ns) - BigInt(baseNs)) / 1e9;
	return (d >= 0 ? '+' : '') + d.toFixed(3) + ' s';
}

// datetime-local <input> value <-> ns string (local time, second precision).
export function nsToInput(ns) {
	return ns ? fmtAbs(ns).slice(0, 19).replace(' ', 'T') : '';
}

export function inputToNs(v) {
	const ms = Date.parse(v);
	return Number.isNaN(ms) ? null : msToNs(ms);
}

// Bits of requests.flags (API contract) with a sentence for tooltips.
export const FLAGS = [
	[0x01, 'incomplete', 'The request or its response did not finish while it was traced.'],
	[0x02, 'lost_events', 'Kernel events of this connection were dropped (ring buffer full); timings may be off.'],
	[0x04, 'upgraded', 'The connection was upgraded (e.g. WebSocket) and is no longer HTTP.'],
	[0x08, 'http2', 'HTTP/2 connection preface seen; not decoded.'],
	[0x10, 'truncated', 'Headers were longer than the captured bytes; some fields may be missing.'],
	[0x20, 'preexisting', 'The connection was open before tracing started.'],
	[0x40, 'continue', 'The client asked for 100 Continue.'],
	[0x80, 'resync', 'The parser lost its place in the stream and resynchronised.'],
	[0x100, 'route_guessed', 'The route was guessed from the URL shape, not read from the app.'],
];

export function flagInfo(name) {
	const f = FLAGS.find((x) => x[1] === name);
	return f ? f[2] : 'Unknown flag.';
}

export function flagBadges(names) {
	return (names || []).map((n) =>
		h('span', {class: 'badge flag flag-' + n, title: flagInfo(n)}, n.replace('_', ' ')));
}

export function statusClass(st) {
	if (st === null || st === undefined)
		return 'st-none';
	return 'st-' + Math.floor(st / 100) + 'xx';
}

export function debounce(fn, ms) {
	let t = null;
	const d = (...a) => {
		clearTimeout(t);
		t = setTimeout(() => fn(...a), ms);
	};
	d.cancel = () => clearTimeout(t);
	return d;
}

// Text for a (method, route) pair.
export function endpointName(e) {
	return `${e.method} ${e.route ?? '(no route)'}`;
}
