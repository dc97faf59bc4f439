// SPDX-License-Identifier: MIT
// Time-series charts drawn as inline SVG (no chart library): lines or bars
// over the overview's buckets, a y axis with rounded ticks, start/end times
// on the x axis and one hover target per bucket whose <title> gives the
// exact values (keyboard and screen reader users get the same numbers from
// the cards and tables of the page).

import {fmtClock} from './util.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 420, H = 150, L = 50, R = 8, T = 8, B = 20;

function s(tag, attrs = {}, text = null) {
	const el = document.createElementNS(NS, tag);
	for (const [k, v] of Object.entries(attrs))
		el.setAttribute(k, String(v));
	if (text !== null)
		el.textContent = text;
	return el;
}

// A "nice" upper bound (1, 2, 2.5, 5 x 10^n) at or above v.
function niceMax(v) {
	if (!(v > 0))
		return 1;
	const p = Math.pow(10, Math.floor(Math.log10(v)));
	for (const m of [1, 2, 2.5, 5, 10])
		if (m * p >= v)
			return m * p;
	return 10 * p;
}

// opts: {title, times: [ns string], series: [{name, cls, values: [number|null]}],
//        kind: 'line'|'bar', fmt: number -> string}
export function timeChart(opts) {
	const {times, series, kind = 'line', fmt = String} = opts;
	const n = times.length;
	const max = niceMax(Math.max(0, ...series.flatMap((x) => x.values.filter((v) => v !== null))));
	const pw = W - L - R, ph = H - T - B;
	const xAt = (i) => L + (n <= 1 ? pw / 2 : (i * pw) / (n - 1));
	const yAt = (v) => T + ph - (v / max) * ph;
	const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img',
			      'aria-label': opts.title});

	for (const f of [0, 0.5, 1]) {
		const y = yAt(max * f);
		svg.append(s('line', {x1: L, x2: W - R, y1: y, y2: y, class: 'grid'}));
		svg.append(s('text', {x: L - 6, y: y + 4, class: 'axis', 'text-anchor': 'end'}, fmt(max * f)));
	}
	if (n > 0) {
		svg.append(s('text', {x: L, y: H - 6, class: 'axis'}, fmtClock(times[0]).slice(0, 8)));
		svg.append(s('text', {x: W - R, y: H - 6, class: 'axis', 'text-anchor': 'end'},
			     fmtClock(times[n - 1]).slice(0, 8)));
	}

	series.forEach((ser, k) => {
		if (kind === 'bar') {
			const bw = Math.max(1, (pw / Math.max(n, 1)) * 0.8 / series.length);
			ser.values.forEach((v, i) => {
				if (!v)
					return;
				const x = xAt(i) - (bw * series.length) / 2 + k * bw;
				svg.append(s('rect', {x, y: yAt(v), width: bw, height: T + ph - yAt(v),
						      class: 'bar ' + ser.cls}));
			});
			return;
		}
		let d = '';
		let pen = false;
		ser.values.forEach((v, i) => {
			if (v === null) {
				pen = false;
				return;
			}
			d += (pen ? 'L' : 'M') + xAt(i).toFixed(1) + ',' + yAt(v).toFixed(1);
			pen = true;
		});
		if (d)
			svg.append(s('path', {d, class: 'line ' + ser.cls}));
	});

	// Hover targets: one column per bucket.
	const cw = n <= 1 ? pw : pw / (n - 1);
	for (let i = 0; i < n; i++) {
		const r = s('rect', {x: xAt(i) - cw / 2, y: T, width: cw, height: ph, class: 'hover'});
		const vals = series.map((x) => `${x.name}: ${x.values[i] === null ? '—' : fmt(x.values[i])}`);
		r.append(s('title', {}, fmtClock(times[i]) + '\n' + vals.join('\n')));
		svg.append(r);
	}
	return svg;
}

// The legend as HTML, matching the series classes.
export function legend(series) {
	const el = document.createElement('div');
	el.className = 'legend';
	for (const x of series) {
		const i = document.createElement('span');
		i.className = 'key ' + x.cls;
		i.textContent = x.name;
		el.append(i);
	}
	return el;
}
