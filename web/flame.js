// SPDX-License-Identifier: MIT
// The flame graph widget shared by the request page and the "Flame graphs"
// view: the interactive SVG of GET /api/flamegraph?...&format=svg (made by
// user/flamegraph.c: click to zoom, Esc to reset, Ctrl-F to search) shown in
// an <iframe> from a same-origin blob: URL, so its own script runs and the
// API token still travels in a header, never in a URL. The SVG is scaled to
// the width of the page (it has a viewBox).

import {apiText} from './client.js';
import {h, fill} from './util.js';

// Fill el with the flame graph of params ({request} or {run, method, route}).
// Returns a promise; errors are shown in el. signal aborts the fetch.
export async function showFlame(el, params, signal) {
	fill(el, h('p', {class: 'muted loading'}, 'Loading flame graph…'));
	let svg;
	try {
		svg = await apiText('flamegraph', {...params, format: 'svg'}, signal);
	} catch (e) {
		if (e.name !== 'AbortError')
			fill(el, h('div', {class: 'error', role: 'alert'}, e.message));
		return;
	}
	const url = URL.createObjectURL(new Blob([svg], {type: 'image/svg+xml'}));
	const frame = h('iframe', {class: 'flame', src: url, title: 'Flame graph (click a frame to zoom, Esc to reset)'});
	frame.addEventListener('load', () => {
		URL.revokeObjectURL(url);
		const doc = frame.contentDocument;
		const root = doc && doc.documentElement;
		const vb = root && root.viewBox && root.viewBox.baseVal;
		if (!vb || !vb.width)
			return;
		root.setAttribute('width', '100%');
		root.removeAttribute('height');
		const fit = () => { frame.style.height = Math.ceil(frame.clientWidth * vb.height / vb.width) + 4 + 'px'; };
		fit();
		new ResizeObserver(fit).observe(frame);
	});
	fill(el, frame);
}
