// SPDX-License-Identifier: MIT
// The "Flame graphs" view (#/flamegraphs?run=N&method=GET&route=/a): an
// endpoint picker (the run's endpoints from GET /api/endpoints) and the
// endpoint's CPU flame graph (all its sampled stacks, from profile_endpoint)
// as the interactive SVG of GET /api/flamegraph (an endpoint without samples
// gets the SVG's own "no samples" message). The choice lives in the URL
// so a flame graph can be shared; a missing route parameter means requests
// without a route.

import {api, href, carry} from './client.js';
import {h, fill, fmtInt, endpointName} from './util.js';
import {showFlame} from './flame.js';

const key = (m, r) => JSON.stringify([m, r ?? '']);

function render(el, route, eps, ctl) {
	const method = route.params.get('method');
	const rt = route.params.get('route') ?? '';
	const sel = method ? key(method, rt) : '';
	const picker = h('select', {id: 'fg-endpoint', 'aria-label': 'Endpoint'},
			 h('option', {value: ''}, 'Pick an endpoint…'),
			 eps.map((e) => h('option', {value: key(e.method, e.route), selected: key(e.method, e.route) === sel},
					  `${endpointName(e)} (${fmtInt(e.count)} req)`)));
	picker.addEventListener('change', () => {
		if (!picker.value)
			return;
		const [m, r] = JSON.parse(picker.value);
		location.hash = href('flamegraphs', carry({method: m, route: r}));
	});
	const box = h('div', {class: 'flamebox', id: 'fg-graph'});
	fill(el, h('div', {class: 'viewhead'}, h('h1', {}, 'Flame graphs'),
		   h('label', {for: 'fg-endpoint', class: 'muted'}, 'Endpoint '), picker),
	     h('section', {class: 'panel'},
	       method ? [h('h2', {}, endpointName({method, route: rt || null}),
			     ' ', h('a', {href: href('requests', carry({method, route: rt}))}, 'requests →')), box]
		      : h('p', {class: 'empty'}, eps.length ? 'Pick an endpoint to see where its CPU time goes.'
					       : 'No requests recorded in this run.')));
	if (method)
		showFlame(box, {run: route.params.get('run'), method, route: rt}, ctl.signal);
}

export function mount(el, route) {
	let ctl = null;
	const load = (r) => {
		if (ctl)
			ctl.abort();
		ctl = new AbortController();
		const c = ctl;
		api('endpoints', {run: r.params.get('run')}, c.signal)
			.then((d) => render(el, r, d.endpoints || [], c))
			.catch((e) => {
				if (e.name !== 'AbortError')
					fill(el, h('div', {class: 'error', role: 'alert'}, e.message));
			});
	};
	el.append(h('p', {class: 'muted loading'}, 'Loading endpoints…'));
	load(route);
	return {update: load, unmount: () => ctl && ctl.abort()};
}
