// SPDX-License-Identifier: MIT
// The JSON API client (docs/api.md) and the hash-route helpers.
//
// api() throws an ApiError carrying the server's {"error": "..."} message, so
// every view can show what went wrong instead of a blank page. A token given
// once as ?token=... in the page URL is kept for the session and sent as a
// Bearer header (needed when the server listens on a non-loopback address).

export class ApiError extends Error {
	constructor(status, message) {
		super(message);
		this.status = status;
	}
}

const token = (() => {
	const t = new URLSearchParams(location.search).get('token');
	if (t)
		sessionStorage.setItem('tg-token', t);
	return t || sessionStorage.getItem('tg-token');
})();

// GET /api/<path>?<params>; params with '' / null / undefined values are dropped.
export async function api(path, params = {}, signal = undefined) {
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(params))
		if (v !== '' && v !== null && v !== undefined)
			q.set(k, v);
	const qs = q.toString();
	const headers = token ? {Authorization: 'Bearer ' + token} : {};
	let res;
	try {
		res = await fetch('api/' + path + (qs ? '?' + qs : ''), {headers, signal, cache: 'no-store'});
	} catch (e) {
		if (e.name === 'AbortError')
			throw e;
		throw new ApiError(0, 'Cannot reach the TimeGlass server (' + e.message + ').');
	}
	let body = null;
	try {
		body = await res.json();
	} catch {
		throw new ApiError(res.status, `Bad answer from the server (HTTP ${res.status}, not JSON).`);
	}
	if (!res.ok)
		throw new ApiError(res.status, (body && body.error) || `HTTP ${res.status}`);
	return body;
}

// "#/requests/12?run=3&q=x" -> {view: 'requests', id: '12', params: URLSearchParams}
export function parseHash(hash = location.hash) {
	const s = hash.replace(/^#\/?/, '');
	const qi = s.indexOf('?');
	const path = qi < 0 ? s : s.slice(0, qi);
	const params = new URLSearchParams(qi < 0 ? '' : s.slice(qi + 1));
	const [view, id] = path.split('/');
	return {view: view || 'overview', id: id || null, params};
}

// The hash for a view; params with empty values are dropped.
export function href(view, params = {}) {
	const q = new URLSearchParams();
	const entries = params instanceof URLSearchParams ? params.entries() : Object.entries(params);
	for (const [k, v] of entries)
		if (v !== '' && v !== null && v !== undefined)
			q.set(k, v);
	const qs = q.toString();
	return '#/' + view + (qs ? '?' + qs : '');
}

// The run currently selected (from the URL), '' for "latest".
export function currentRun() {
	return parseHash().params.get('run') || '';
}

// Params that follow the user from view to view.
export function carry(extra = {}) {
	const run = currentRun();
	return run ? {run, ...extra} : {...extra};
}

// GET /api/<path>?<params> for a non-JSON answer (the flame graph SVG): its text.
// Errors are thrown as ApiError with the server's message, as api() does.
export async function apiText(path, params = {}, signal = undefined) {
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(params))
		if (v !== '' && v !== null && v !== undefined)
			q.set(k, v);
	const headers = token ? {Authorization: 'Bearer ' + token} : {};
	let res;
	try {
		res = await fetch('api/' + path + '?' + q.toString(), {headers, signal, cache: 'no-store'});
	} catch (e) {
		if (e.name === 'AbortError')
			throw e;
		throw new ApiError(0, 'Cannot reach the TimeGlass server (' + e.message + ').');
	}
	const text = await res.text();
	if (!res.ok) {
		let msg = `HTTP ${res.status}`;
		try {
			msg = JSON.parse(text).error || msg;
		} catch {
			// not JSON: keep the status
		}
		throw new ApiError(res.status, msg);
	}
	return text;
}
