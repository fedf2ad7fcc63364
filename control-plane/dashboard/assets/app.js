// Skein dashboard: plain JS over the admin API (no build step, no CDN). Hash routes pick the
// view; the current view re-renders from polled API data (stats every 2 s, the rest every
// 3–5 s) and the tap view from Server-Sent Events, so nothing needs a reload.

const $ = (sel, root = document) => root.querySelector(sel);
const view = $('#view');
const state = { window: localStorage.getItem('skein.window') || '10s', token: localStorage.getItem('skein.token') || '', tap: null, timers: [], viewId: 0 };

const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const fmt = {
  rps: (g) => (g && g.requests ? g.rps.toFixed(g.rps < 10 ? 2 : 1) : '0'),
  sr: (g) => (g && g.successRate !== null && g.successRate !== undefined ? `${(g.successRate * 100).toFixed(g.successRate === 1 ? 0 : 1)}%` : '-'),
  ms: (v) => (v === null || v === undefined ? '-' : v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`),
  p: (g, q) => fmt.ms(g && g.latencyMs ? g.latencyMs[q] : null),
  time: (ms) => new Date(ms).toLocaleTimeString(undefined, { hour12: false }) + `.${String(Math.floor(ms % 1000)).padStart(3, '0')}`,
};

/** ok / warn / bad / idle for a window's golden metrics. */
function health(g) {
  if (!g || !g.requests) return 'idle';
  if (g.successRate < 0.95) return 'bad';
  if (g.successRate < 0.99) return 'warn';
  return 'ok';
}
const srClass = (g) => ({ ok: 'sr-ok', warn: 'sr-warn', bad: 'sr-bad', idle: 'muted' })[health(g)];

/** The body and ETag of an API answer; a non-2xx answer throws an Error carrying its status. */
async function request(path, options = {}) {
  const headers = { accept: 'application/json', ...(options.headers || {}) };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.auth && state.token) headers.authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { method: options.method || 'GET', headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await res.text();
  if (!res.ok) throw apiError(res, text);
  return { body: text ? JSON.parse(text) : undefined, etag: res.headers.get('etag') };
}

/** The Error of a non-2xx answer, carrying its status: the control plane's message, or the bare status when the body is not its error JSON (a proxy's page). */
function apiError(res, text) {
  let message;
  try {
    message = JSON.parse(text).error.message;
  } catch {
    // not the control plane's error body: the status is all there is to say
  }
  const err = new Error(message || `HTTP ${res.status}`);
  err.status = res.status;
  return err;
}
const api = async (path, options) => (await request(path, options)).body;
const apiOr = (path, fallback) => api(path).catch((err) => (err.status === 404 ? fallback : Promise.reject(err)));

function setStatus(ok, text) {
  const el = $('#status');
  el.textContent = text;
  el.style.color = ok ? '' : '#ff9c9c';
}

// ---- polling -----------------------------------------------------------------------------

/** Shows in the header how a request of the current view went; one of a view left since says nothing. */
function report(promise) {
  const id = state.viewId;
  return promise.then(
    () => id === state.viewId && setStatus(true, new Date().toLocaleTimeString(undefined, { hour12: false })),
    (err) => id === state.viewId && setStatus(false, `error: ${err.message}`),
  );
}

function every(ms, fn) {
  const run = () => report(fn());
  run();
  state.timers.push(setInterval(run, ms));
}

function stopView() {
  state.viewId++;
  // What the header said was about the view left.
  setStatus(true, '');
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  if (state.tap) {
    state.tap.close();
    state.tap = null;
  }
}

// ---- graph -------------------------------------------------------------------------------

/** Columns by longest path from the callers nobody calls (cycles are cut where they close); rows within a column by name. */
function layout(names, edges) {
  const incoming = new Map(names.map((n) => [n, []]));
  for (const e of edges) if (e.source !== e.destination && incoming.has(e.destination)) incoming.get(e.destination).push(e.source);
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (n) => {
    if (depth.has(n)) return depth.get(n);
    if (visiting.has(n)) return 0;
    visiting.add(n);
    const d = Math.max(0, ...(incoming.get(n) || []).filter((s) => incoming.has(s)).map((s) => depthOf(s) + 1));
    visiting.delete(n);
    depth.set(n, d);
    return d;
  };
  names.forEach(depthOf);
  const byDepth = [];
  for (const n of [...names].sort()) (byDepth[depth.get(n)] ||= []).push(n);
  // A cycle no outside caller leads into is cut where its walk began, which can leave a depth
  // with no node (a and b calling each other: depths 1 and 2); an empty column would make the
  // row count NaN and the SVG unplaceable.
  const columns = byDepth.filter(Boolean);
  const place = new Map();
  columns.forEach((list, col) => list.forEach((n, row) => place.set(n, { col, row, rows: list.length })));
  return { place, cols: columns.length, rows: Math.max(...columns.map((c) => (c ? c.length : 0))) };
}

const NODE_W = 190;
const NODE_H = 54;
const ROW_H = 120;

function graphSvg(stats, services) {
  const w = state.window;
  const names = [...new Set([...services.map((s) => s.name), ...stats.services.map((s) => s.service), ...stats.edges.flatMap((e) => [e.source, e.destination])])].filter((n) => n && n !== NO_ROUTE);
  if (names.length === 0) return '<div class="empty">No services yet: start sidecars against this control plane.</div>';
  const { place, cols, rows } = layout(names, stats.edges);
  const drawn = stats.edges.filter((e) => place.has(e.source) && place.has(e.destination) && e.source !== e.destination);
  // Edges that skip a column arc over the nodes between: leave room above for them.
  const longest = Math.max(0, ...drawn.map((e) => Math.abs(place.get(e.destination).col - place.get(e.source).col) - 1));
  const top = longest > 0 ? 40 + 36 * longest : 20;
  const width = 1200;
  const height = top + rows * ROW_H;
  const pos = new Map();
  for (const [n, p] of place) {
    const x = cols === 1 ? width / 2 : NODE_W / 2 + 20 + (p.col * (width - NODE_W - 40)) / (cols - 1);
    pos.set(n, { ...p, x, y: top + ((p.row + 0.5) * rows * ROW_H) / p.rows });
  }
  const byService = new Map(stats.services.map((s) => [s.service, s]));
  const edgeSvg = drawn
    .map((e) => {
      const g = e[w];
      const a = pos.get(e.source);
      const b = pos.get(e.destination);
      const span = b.col - a.col;
      const forward = b.x >= a.x;
      const x1 = a.x + (forward ? NODE_W / 2 : -NODE_W / 2);
      const x2 = b.x + (forward ? -NODE_W / 2 : NODE_W / 2);
      const mx = (x1 + x2) / 2;
      let d;
      let ly;
      if (span === 1 || a.y !== b.y) {
        d = `M${x1},${a.y} C${mx},${a.y} ${mx},${b.y} ${x2},${b.y}`;
        ly = (a.y + b.y) / 2 - 8;
      } else {
        // Same row, not adjacent: arc above the nodes in between.
        const cy = Math.min(a.y, b.y) - NODE_H / 2 - 40 * Math.abs(span);
        d = `M${x1},${a.y - 10} Q${mx},${cy} ${x2},${b.y - 10}`;
        ly = (a.y - 10 + 2 * cy + b.y - 10) / 4 - 6;
      }
      const label = g.requests ? `${fmt.rps(g)} rps · ${fmt.sr(g)} · p99 ${fmt.p(g, 'p99')}` : 'idle';
      return `<g class="edge ${health(g)}" data-edge="${esc(e.source)}->${esc(e.destination)}">
        <path d="${d}" marker-end="url(#arrow-${health(g)})"/>
        <text x="${mx}" y="${ly}" text-anchor="middle">${esc(label)}</text>
        <title>${esc(e.source)} → ${esc(e.destination)}: ${esc(label)}</title></g>`;
    })
    .join('');
  const nodeSvg = names
    .map((n) => {
      const p = pos.get(n);
      const g = byService.get(n)?.[w];
      const line = g && g.requests ? `${fmt.rps(g)} rps · ${fmt.sr(g)} · p99 ${fmt.p(g, 'p99')}` : 'no inbound traffic';
      return `<g class="node ${health(g)}" data-service="${esc(n)}" transform="translate(${p.x - NODE_W / 2},${p.y - NODE_H / 2})">
        <rect width="${NODE_W}" height="${NODE_H}"/>
        <text class="name" x="${NODE_W / 2}" y="22" text-anchor="middle">${esc(n)}</text>
        <text x="${NODE_W / 2}" y="40" text-anchor="middle">${esc(line)}</text><title>${esc(n)}</title></g>`;
    })
    .join('');
  const markers = ['ok', 'warn', 'bad', 'idle']
    .map((k) => `<marker id="arrow-${k}" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="12" markerHeight="12" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="var(--${k})"/></marker>`)
    .join('');
  return `<svg id="graph" viewBox="0 0 ${width} ${height}" style="height:${Math.min(560, height)}px" preserveAspectRatio="xMidYMid meet"><defs>${markers}</defs>${edgeSvg}${nodeSvg}</svg>`;
}

function goldenCells(g) {
  return `<td class="num">${fmt.rps(g)}</td><td class="num ${srClass(g)}">${fmt.sr(g)}</td><td class="num">${fmt.p(g, 'p50')}</td><td class="num">${fmt.p(g, 'p95')}</td><td class="num">${fmt.p(g, 'p99')}</td><td class="num">${g ? g.requests : 0}</td>`;
}
const goldenHead = '<th class="num">RPS</th><th class="num">success</th><th class="num">p50</th><th class="num">p95</th><th class="num">p99</th><th class="num">requests</th>';

/**
 * Where the stats count requests a caller's own sidecar answered because they named no service
 * its snapshot knows (404 no-route; 400 or 431 when it could not tell a name at all): an edge
 * to this key, which no service can be named (control-plane/observability/stats.ts NO_ROUTE),
 * shown as NO_ROUTE_LABEL. The name asked for is not in the stats (it must not become a metric
 * label), so they are listed per caller rather than drawn as an edge.
 */
const NO_ROUTE = '(no-route)';
const NO_ROUTE_LABEL = '(no route)';

/** The edges between services, then the requests that named none (unroutedTable). */
function edgesTable(edges) {
  const between = edges.filter((e) => e.destination !== NO_ROUTE);
  const unrouted = unroutedTable(edges.filter((e) => e.destination === NO_ROUTE));
  if (between.length === 0) return `<div class="empty">No traffic between services in the last minute.</div>${unrouted}`;
  return `<table class="edges"><thead><tr><th>source</th><th>destination</th><th>subset</th>${goldenHead}</tr></thead><tbody>${between
    .map((e) => [
      `<tr class="edge-row" data-edge="${esc(e.source)}->${esc(e.destination)}"><td><a href="#/service/${encodeURIComponent(e.source)}">${esc(e.source)}</a></td><td><a href="#/service/${encodeURIComponent(e.destination)}">${esc(e.destination)}</a></td><td class="muted">all</td>${goldenCells(e[state.window])}</tr>`,
      ...(e.subsets.length > 1 ? e.subsets.map((s) => `<tr><td></td><td></td><td>${esc(s.subset)}</td>${goldenCells(s[state.window])}</tr>`) : []),
    ].join(''))
    .join('')}</tbody></table>${unrouted}`;
}

/** Per caller seen in the last minute, the requests its sidecar answered for naming no known service, in the window chosen; success and latency would say nothing of a service, so only their rate and count. */
function unroutedTable(edges) {
  const seen = edges.filter((e) => e['1m'].requests > 0);
  if (seen.length === 0) return '';
  return `<div id="unrouted"><h3>Requests that named no known service</h3><div class="muted">Answered by the caller's own sidecar (404 no-route, or 400 when the request named no host). The stats do not keep the name asked for; the caller's tap shows it.</div>
    <table><thead><tr><th>caller</th><th>destination</th><th class="num">RPS</th><th class="num">requests</th><th></th></tr></thead><tbody>${seen
      .map((e) => `<tr data-unrouted="${esc(e.source)}"><td><a href="#/service/${encodeURIComponent(e.source)}">${esc(e.source)}</a></td><td class="muted">${NO_ROUTE_LABEL}</td><td class="num">${fmt.rps(e[state.window])}</td><td class="num">${e[state.window].requests}</td><td><a class="tap-link" href="#/tap?service=${encodeURIComponent(e.source)}">tap ${esc(e.source)}</a></td></tr>`)
      .join('')}</tbody></table></div>`;
}

function servicesTable(stats) {
  if (stats.services.length === 0) return '<div class="empty">No traffic in the last minute.</div>';
  return `<table><thead><tr><th>service</th>${goldenHead}</tr></thead><tbody>${stats.services
    .map((s) => `<tr data-service-row="${esc(s.service)}"><td><a href="#/service/${encodeURIComponent(s.service)}">${esc(s.service)}</a>${s.seenFrom === 'outbound' ? ' <span class="muted">(seen by callers)</span>' : ''}</td>${goldenCells(s[state.window])}</tr>`)
    .join('')}</tbody></table>`;
}

function graphView() {
  view.innerHTML = `<div class="panel"><h2>Service graph <span class="muted">(${esc(state.window)} window)</span></h2><div id="graph-box"></div>
    <div class="legend"><span class="l-ok">success ≥ 99%</span><span class="l-warn">≥ 95%</span><span class="l-bad">&lt; 95%</span><span class="l-idle">idle</span></div></div>
    <div class="grid2"><div class="panel"><h2>Services</h2><div id="svc-box"></div></div><div class="panel"><h2>Edges</h2><div id="edge-box"></div></div></div>`;
  $('#graph-box').addEventListener('click', (ev) => {
    const node = ev.target.closest('[data-service]');
    if (node) location.hash = `#/service/${encodeURIComponent(node.dataset.service)}`;
  });
  let services = [];
  every(5000, async () => {
    services = await api('/api/v1/services');
  });
  every(2000, async () => {
    const stats = await api('/api/v1/stats');
    $('#graph-box').innerHTML = graphSvg(stats, services);
    $('#svc-box').innerHTML = servicesTable(stats);
    $('#edge-box').innerHTML = edgesTable(stats.edges);
  });
}

function servicesView() {
  view.innerHTML = '<div class="panel"><h2>Services</h2><div id="services-box"></div></div>';
  every(3000, async () => {
    const [services, stats] = await Promise.all([api('/api/v1/services'), api('/api/v1/stats')]);
    const byName = new Map(stats.services.map((s) => [s.service, s]));
    $('#services-box').innerHTML = services.length
      ? `<table><thead><tr><th>service</th><th>protocol</th><th class="num">instances</th><th class="num">healthy</th><th>subsets</th>${goldenHead}</tr></thead><tbody>${services
          .map((s) => `<tr><td><a href="#/service/${encodeURIComponent(s.name)}">${esc(s.name)}</a></td><td>${esc(s.protocol)}</td><td class="num">${s.instances.length}</td><td class="num">${s.instances.filter((i) => i.health === 'healthy').length}</td><td>${s.subsets.map((x) => `${esc(x.name)}(${x.instances})`).join(' ')}</td>${goldenCells(byName.get(s.name)?.[state.window])}</tr>`)
          .join('')}</tbody></table>`
      : '<div class="empty">No services known yet.</div>';
  });
}

// ---- one service -------------------------------------------------------------------------

/**
 * The weights of the rule a split sets, or undefined when the service has none: the first rule
 * every request matches (no method, header or path check but the prefix `/`, however spelt),
 * as the control plane finds it (control-plane/state/split-rule.ts; this page loads no modules).
 */
function catchAllSplit(rules) {
  if (!Array.isArray(rules)) return undefined;
  const rule = rules.find((r) => {
    const m = r.match || {};
    const pathAll = m.path === undefined && m.pathRegex === undefined && (m.pathPrefix === undefined || m.pathPrefix === '/');
    return pathAll && m.method === undefined && Object.keys(m.headers || {}).length === 0;
  });
  return rule ? rule.split : undefined;
}

const splitText = (weights) => Object.entries(weights).map(([k, v]) => `${k}=${v}`).join(' ');

function splitPanel(name, subsets, split) {
  if (subsets.length === 0) return '<div class="empty">No subsets: instances announce a version label to make them.</div>';
  const weights = {};
  for (const s of subsets) weights[s.name] = split ? split[s.name] || 0 : Math.floor(100 / subsets.length);
  if (!split) weights[subsets[0].name] += 100 - Object.values(weights).reduce((a, b) => a + b, 0);
  return `<div id="split" data-service="${esc(name)}">${subsets
    .map((s) => `<div class="split-row"><strong>${esc(s.name)}</strong><input type="range" min="0" max="100" step="1" name="${esc(s.name)}" value="${weights[s.name]}" aria-label="weight of ${esc(s.name)}"><span class="num weight">${weights[s.name]}%</span><span class="muted">${s.instances} instance(s)${s.declared ? '' : ', from version label'}</span></div>`)
    .join('')}${split ? '' : '<div class="muted">No split set: requests go to all endpoints. Move a slider to set one.</div>'}</div>`;
}

/** Keeps the weights summing to 100: what one slider gains, the others give up in proportion. */
function rebalance(container, changed) {
  const inputs = [...container.querySelectorAll('input[type=range]')];
  const others = inputs.filter((i) => i !== changed);
  let rest = 100 - Number(changed.value);
  const before = others.reduce((a, i) => a + Number(i.value), 0);
  others.forEach((input, k) => {
    const share = k === others.length - 1 ? rest : before > 0 ? Math.round((Number(input.value) * (100 - Number(changed.value))) / before) : Math.floor((100 - Number(changed.value)) / others.length);
    const v = Math.max(0, Math.min(rest, share));
    input.value = String(v);
    rest -= v;
  });
  if (others.length === 0) changed.value = '100';
  for (const i of inputs) i.parentElement.querySelector('.weight').textContent = `${i.value}%`;
  return Object.fromEntries(inputs.map((i) => [i.name, Number(i.value)]));
}

/**
 * The canary sliders of one service. They follow the live split (polled with the rest of the
 * page) except while the user moves one, and a save carries the ETag of the split the
 * sliders were drawn from, so it is refused (412) rather than overwriting a split someone
 * else wrote since (`skein split`, another browser, a rollout).
 */
function splitControls(name) {
  const box = $('#svc-split');
  const msg = $('#split-message');
  // key: what the sliders were drawn from; fetches: polls started, so an older answer landing late is dropped.
  const live = { key: undefined, weights: undefined, etag: null, subsets: [], editing: false, saving: false, fetches: 0 };
  const say = (error, text) => {
    msg.className = error ? 'message error' : 'message';
    msg.textContent = text;
  };
  const draw = (subsets, rules, etag) => {
    const weights = catchAllSplit(rules);
    const key = JSON.stringify([subsets, weights ?? null]);
    live.etag = etag;
    live.subsets = subsets;
    if (key === live.key) return;
    const changed = live.key !== undefined && JSON.stringify(weights) !== JSON.stringify(live.weights);
    live.key = key;
    live.weights = weights;
    box.innerHTML = splitPanel(name, subsets, weights);
    if (changed) say(false, `changed elsewhere: now ${weights ? splitText(weights) : 'no split'}`);
  };
  const refresh = async () => {
    const ticket = ++live.fetches;
    const [svc, routes] = await Promise.all([
      apiOr(`/api/v1/services/${encodeURIComponent(name)}`, { subsets: [] }),
      request(`/api/v1/routes/${encodeURIComponent(name)}`).catch((err) => (err.status === 404 ? { body: null, etag: null } : Promise.reject(err))),
    ]);
    if (live.editing || live.saving || ticket !== live.fetches) return;
    draw(svc.subsets, routes.body, routes.etag);
  };
  box.addEventListener('input', (ev) => {
    if (ev.target.type !== 'range') return;
    live.editing = true;
    rebalance($('#split'), ev.target);
  });
  // A slider dragged back to where it was fires no change event: leaving it ends the edit too.
  box.addEventListener('focusout', () => {
    live.editing = false;
  });
  box.addEventListener('change', async (ev) => {
    if (ev.target.type !== 'range') return;
    const weights = rebalance($('#split'), ev.target);
    live.editing = false;
    live.saving = true;
    // A poll that began before this save must not redraw the weights from before it.
    live.fetches++;
    // One save at a time: a second one would carry the same If-Match and be refused as if changed elsewhere.
    for (const input of box.querySelectorAll('input[type=range]')) input.disabled = true;
    say(false, 'saving…');
    // No routes stored yet: create only, so a split written meanwhile is not replaced either.
    const condition = live.etag ? { 'if-match': live.etag } : { 'if-none-match': '*' };
    try {
      const saved = await request(`/api/v1/routes/${encodeURIComponent(name)}/split`, { method: 'PUT', body: weights, auth: true, headers: condition });
      live.saving = false;
      live.fetches++;
      live.key = undefined; // redrawn whole, inputs enabled again
      live.weights = catchAllSplit(saved.body);
      draw(live.subsets, saved.body, saved.etag);
      say(false, `saved: ${splitText(weights)}`);
    } catch (err) {
      live.saving = false;
      for (const input of box.querySelectorAll('input[type=range]')) input.disabled = false;
      if (err.status === 412) say(true, 'not saved: the split was changed elsewhere since the sliders were drawn; they now show the current one, move one again to change it');
      else say(true, err.status === 401 ? 'refused: enter the admin token (top right) to change weights' : `failed: ${err.message}`);
      // Back to what is live, so the sliders never show weights that were not saved.
      live.key = undefined;
      await refresh();
    }
  });
  return refresh;
}

/**
 * The service's latest automated rollout (GET /api/v1/canaries/{service}), above the sliders: a
 * running one owns the split (a slider's save is refused, 409), so it says which step it is at
 * and what its last analysis measured and decided, as `skein canary --status` does; a paused one
 * says since when and why, since its sliders stay refused while nothing moves.
 */
function rolloutPanel(r) {
  const head = `rollout ${esc(r.spec.from)} → ${esc(r.spec.to)} <span class="badge ${esc(r.status)}">${esc(r.status)}</span>`;
  const last = r.analyses.at(-1);
  const measured = last
    ? `<div class="muted">last analysis, step ${last.step + 1} at ${last.weight}%: ${last.measured.requests} requests, success ${last.measured.successRate === null ? '-' : `${(last.measured.successRate * 100).toFixed(2)}%`}, p99 ${last.measured.p99Ms === null ? '-' : `${last.measured.p99Ms}ms`} → ${esc(last.decision)}${last.reason ? ` (${esc(last.reason)})` : ''}</div>`
    : '';
  if (r.paused) {
    const why = r.paused.reason ? ` (${esc(r.paused.reason)})` : '';
    return `<div id="rollout" class="message">rollout ${esc(r.spec.from)} → ${esc(r.spec.to)} <span class="badge paused">paused</span> since ${esc(new Date(r.paused.at).toLocaleString())}${why}: step ${r.step + 1} of ${r.spec.steps.length} at ${r.weight}% ${esc(r.spec.to)}, not analysed until resumed; it owns this split until it ends (resume: skein canary ${esc(r.service)} --resume; promote: --promote; abort: --abort)${measured}</div>`;
  }
  if (r.status === 'running') {
    return `<div id="rollout" class="message">${head}: step ${r.step + 1} of ${r.spec.steps.length} at ${r.weight}% ${esc(r.spec.to)}, analysed every ${r.spec.interval / 1000}s; it owns this split until it ends (abort: skein canary ${esc(r.service)} --abort)${measured}</div>`;
  }
  return `<div id="rollout" class="message muted">last ${head} ${esc(new Date(r.endedAt ?? r.updatedAt).toLocaleString())}${r.reason ? `: ${esc(r.reason)}` : ''}${measured}</div>`;
}

function serviceView(name) {
  view.innerHTML = `<h2>${esc(name)}</h2><div class="panel muted" id="svc-unknown" hidden>The control plane knows no service ${esc(name)}: no policy, routes or instances name it. What its callers' sidecars report of it shows below.</div>
    <div class="grid2">
      <div class="panel"><h2>Golden metrics</h2><div id="svc-golden"></div></div>
      <div class="panel known"><h2>Canary weights</h2><div id="svc-rollout"></div><div id="svc-split"></div><div class="message" id="split-message"></div></div>
    </div>
    <div class="grid2">
      <div class="panel known"><h2>Instances</h2><div id="svc-instances"></div></div>
      <div class="panel"><h2>Circuit breakers (callers → this service)</h2><div id="svc-breakers"></div></div>
    </div>
    <div class="panel"><h2>Ejected endpoints (callers' outlier detection)</h2><div id="svc-ejections"></div></div>
    <div class="panel"><h2>Edges</h2><div id="svc-edges"></div></div>
    <div class="panel known"><h2>Policy</h2><div id="svc-policy"></div></div>`;
  const refreshSplit = splitControls(name);
  every(3000, async () => {
    const [svc, stats, policy, rollout] = await Promise.all([
      // null (404): no policy, route or instance names it; its callers' sidecars may still report it.
      apiOr(`/api/v1/services/${encodeURIComponent(name)}`, null),
      // 404 too when it is unknown and nothing of it is in the stats.
      apiOr(`/api/v1/stats?service=${encodeURIComponent(name)}`, { services: [], edges: [], breakers: [], ejections: [] }),
      apiOr(`/api/v1/services/${encodeURIComponent(name)}/policy`, null),
      // null (404): no rollout of it was ever started.
      apiOr(`/api/v1/canaries/${encodeURIComponent(name)}`, null),
    ]);
    // Its weights, instances and policy would be drawn as defaults, as if it existed: left out until it does.
    $('#svc-unknown').hidden = svc !== null;
    for (const panel of view.querySelectorAll('.known')) panel.hidden = svc === null;
    const own = stats.services.find((s) => s.service === name);
    $('#svc-golden').innerHTML = own
      ? `<table><thead><tr><th>subset</th>${goldenHead}</tr></thead><tbody><tr><td class="muted">all</td>${goldenCells(own[state.window])}</tr>${own.subsets.map((s) => `<tr><td>${esc(s.subset)}</td>${goldenCells(s[state.window])}</tr>`).join('')}</tbody></table>`
      : '<div class="empty">No traffic in the last minute.</div>';
    // The callers' breakers towards this service: the tripped ones listed, the closed ones counted.
    const breakers = stats.breakers.filter((b) => b.destination === name);
    const tripped = breakers.filter((b) => b.state !== 'closed').sort((a, b) => (a.state === 'open' ? -1 : 1) - (b.state === 'open' ? -1 : 1));
    const closed = breakers.length - tripped.length;
    $('#svc-breakers').innerHTML =
      (tripped.length
        ? `<table><thead><tr><th>held by</th><th>destination</th><th>subset</th><th>state</th></tr></thead><tbody>${tripped.map((b) => `<tr><td>${esc(b.service)} <span class="muted mono">${esc(b.instance)}</span></td><td>${esc(b.destination)}</td><td>${esc(b.subset)}</td><td><span class="badge ${esc(b.state)}">${esc(b.state)}</span></td></tr>`).join('')}</tbody></table>`
        : '') +
      `<div class="${tripped.length ? 'muted' : 'empty'}" id="breakers-closed">${closed ? `<span class="badge closed">closed</span> ${closed} breaker(s) held by ${[...new Set(breakers.filter((b) => b.state === 'closed').map((b) => b.service))].map(esc).join(', ')}` : tripped.length ? '' : 'No caller holds a circuit breaker for this service yet.'}</div>`;
    // Which caller's sidecar balances around which of this service's endpoints, and until when.
    const ejections = stats.ejections.filter((e) => e.destination === name);
    $('#svc-ejections').innerHTML = ejections.length
      ? `<table><thead><tr><th>ejected by</th><th>endpoint</th><th>since</th><th>until</th><th>reason</th></tr></thead><tbody>${ejections.map((e) => `<tr><td>${esc(e.service)} <span class="muted mono">${esc(e.instance)}</span></td><td class="mono">${esc(e.endpoint)}</td><td>${esc(new Date(e.since).toLocaleTimeString())}</td><td>${esc(new Date(e.until).toLocaleTimeString())}</td><td class="muted">${esc(e.reason ?? '')}</td></tr>`).join('')}</tbody></table>`
      : '<div class="empty">No caller holds an endpoint of this service ejected.</div>';
    $('#svc-edges').innerHTML = edgesTable(stats.edges);
    if (svc === null) return;
    $('#svc-instances').innerHTML = svc.instances.length
      ? `<table><thead><tr><th>instance</th><th>address</th><th>version</th><th>health</th></tr></thead><tbody>${svc.instances.map((i) => `<tr><td class="mono">${esc(i.id)}</td><td>${esc(i.address)}:${i.port}</td><td>${esc(i.version)}</td><td><span class="badge ${esc(i.health)}">${esc(i.health)}</span></td></tr>`).join('')}</tbody></table>`
      : '<div class="empty">No instances registered.</div>';
    $('#svc-rollout').innerHTML = rollout ? rolloutPanel(rollout) : '';
    $('#svc-policy').innerHTML = policy ? `<pre>${esc(JSON.stringify(policy, null, 2))}</pre>` : '<div class="empty">No policy stored: defaults apply.</div>';
    await refreshSplit();
  });
}

// ---- proxies -----------------------------------------------------------------------------

function expiry(iso) {
  if (!iso) return '<span class="muted">-</span>';
  const hours = (Date.parse(iso) - Date.now()) / 3_600_000;
  const cls = hours < 1 ? 'bad' : hours < 6 ? 'warn' : 'ok';
  return `<span class="badge ${cls}" title="${esc(iso)}">${hours < 0 ? 'expired' : hours < 1 ? `${Math.round(hours * 60)} min` : `${hours.toFixed(1)} h`}</span>`;
}

function proxiesView() {
  view.innerHTML = '<div class="panel"><h2>Proxies <span class="muted" id="snap"></span></h2><div id="proxies-box"></div></div>';
  every(3000, async () => {
    const body = await api('/api/v1/proxies');
    $('#snap').textContent = `(current snapshot ${body.snapshotVersion})`;
    $('#proxies-box').innerHTML = body.proxies.length
      ? `<table><thead><tr><th>service</th><th>instance</th><th>version</th><th>address</th><th>state</th><th>acked</th><th>connected</th><th>identity</th><th>cert expires in</th><th>last NACK</th><th>runs without</th></tr></thead><tbody>${body.proxies
          .map((p) => `<tr><td><a href="#/service/${encodeURIComponent(p.service)}">${esc(p.service)}</a></td><td class="mono">${esc(p.instance)}</td><td>${esc(p.version)}</td><td>${esc(p.address)}</td><td><span class="badge ${esc(p.state)}">${esc(p.state)}</span></td><td>${esc(p.ackedVersion ?? '-')}</td><td>${esc(new Date(p.connectedAt).toLocaleString())}</td><td class="mono">${p.spiffeId ? esc(p.spiffeId) : '<span class="muted">-</span>'}</td><td>${expiry(p.certExpiry)}</td><td class="muted">${esc(p.nackReason ? `${p.nackedVersion}: ${p.nackReason}` : '')}</td><td>${esc(p.runsWithout.join('; '))}</td></tr>`)
          .join('')}</tbody></table>`
      : '<div class="empty">No sidecars connected.</div>';
  });
}

// ---- tap ---------------------------------------------------------------------------------

function tapState(error, text) {
  const el = $('#tap-state');
  el.className = error ? 'error' : 'muted';
  el.textContent = text;
}

/** Why the control plane refused a stream: asked again with fetch, which shows the answer. */
async function refusal(url) {
  const abort = new AbortController();
  try {
    const res = await fetch(url, { headers: { accept: 'application/json' }, signal: abort.signal });
    return res.ok ? 'the tap stopped; press Start to try again' : apiError(res, await res.text()).message;
  } catch (err) {
    return `cannot reach the control plane (${err.message})`;
  } finally {
    // A 200 is a stream that would stay open.
    abort.abort();
  }
}

function tapView(params) {
  view.innerHTML = `<div class="panel"><h2>Live tap</h2>
    <form class="form-row" id="tap-form">
      <label>service <select name="service" id="tap-service"></select></label>
      <label>method <input name="method" size="6" placeholder="any"></label>
      <label>path prefix <input name="path" size="14" placeholder="/"></label>
      <label>status <input name="status" size="5" placeholder="5xx"></label>
      <button type="submit" id="tap-start">Start</button><button type="button" class="secondary" id="tap-stop">Stop</button>
      <span id="tap-state" class="muted"></span>
    </form>
    <div class="tap-scroll"><table><thead><tr><th>time</th><th>dir</th><th>source</th><th>destination</th><th>method</th><th>path</th><th class="num">status</th><th class="num">latency</th><th>trace</th></tr></thead><tbody id="tap-rows"></tbody></table></div></div>`;
  const form = $('#tap-form');
  report(api('/api/v1/services').then((services) => {
    const select = $('#tap-service');
    select.innerHTML = services.map((s) => `<option>${esc(s.name)}</option>`).join('');
    if (params.get('service')) {
      select.value = params.get('service');
      // Only once the list is in: a form submitted before has no service and the tap refuses it.
      form.requestSubmit();
    }
  }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (state.tap) state.tap.close();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, String(v));
    const rows = $('#tap-rows');
    rows.innerHTML = '';
    let count = 0;
    let dropped = 0;
    const source = new EventSource(`/api/v1/tap?${q}`);
    state.tap = source;
    const tapping = () => tapState(false, `tapping ${q.get('service')}${count ? `: ${count} rows` : '…'}${dropped ? ` (${dropped} skipped: over the rate limit, or while this view fell behind)` : ''}`);
    tapping();
    // Also after the browser reconnected by itself.
    source.onopen = tapping;
    source.onmessage = (msg) => {
      const r = JSON.parse(msg.data);
      count++;
      const tr = document.createElement('tr');
      tr.className = r.status >= 500 || r.status === 0 || r.grpcStatus > 0 ? 'sr-bad' : '';
      tr.innerHTML = `<td class="mono">${fmt.time(r.time)}</td><td>${r.direction === 'inbound' ? 'in' : 'out'}</td><td>${esc(r.source)}</td><td>${esc(r.destination)}${r.subset ? `<span class="muted">/${esc(r.subset)}</span>` : ''}</td><td>${esc(r.method)}</td><td class="mono">${esc(r.path)}</td><td class="num">${r.status}${r.grpcStatus >= 0 ? ` <span class="muted">grpc ${r.grpcStatus}</span>` : ''}</td><td class="num">${fmt.ms(r.latencyMs)}</td><td class="mono">${r.traceId ? `<a href="#/trace/${r.traceId}">${r.traceId.slice(0, 12)}…</a>` : ''}</td>`;
      // Newest first. Rows come in per-sidecar batches, so a batch can hold rows older than
      // the top ones: walk down past the newer ones instead of always prepending.
      tr.dataset.time = String(r.time);
      let after = rows.firstElementChild;
      while (after && Number(after.dataset.time) > Number(tr.dataset.time)) after = after.nextElementSibling;
      rows.insertBefore(tr, after);
      while (rows.children.length > 200) rows.lastChild.remove();
      tapping();
    };
    // Each event counts the rows skipped since the one before.
    source.addEventListener('dropped', (msg) => {
      dropped += JSON.parse(msg.data).dropped;
      tapping();
    });
    source.onerror = () => {
      // A lost connection leaves the source CONNECTING: the browser reconnects by itself.
      if (source.readyState === EventSource.CONNECTING) return tapState(true, 'connection lost; retrying…');
      // Any answer but a 200 event stream closes it for good, and EventSource hides the answer.
      refusal(source.url).then((why) => {
        if (state.tap === source) tapState(true, `not tapping: ${why}`);
      });
    };
  });
  $('#tap-stop').addEventListener('click', () => {
    if (state.tap) state.tap.close();
    state.tap = null;
    tapState(false, 'stopped');
  });
}

// ---- traces ------------------------------------------------------------------------------

function tracesView() {
  view.innerHTML = '<div class="panel"><h2>Recent traces</h2><div id="traces-box"></div></div>';
  every(3000, async () => {
    const { traces } = await api('/api/v1/traces?limit=100');
    $('#traces-box').innerHTML = traces.length
      ? `<table><thead><tr><th>start</th><th>trace</th><th>root</th><th>services</th><th class="num">spans</th><th class="num">duration</th><th></th></tr></thead><tbody>${traces
          .map((t) => `<tr><td class="mono">${fmt.time(t.startMs)}</td><td class="mono"><a class="trace-link" href="#/trace/${t.traceId}">${t.traceId.slice(0, 16)}…</a></td><td>${esc(t.root)}</td><td>${t.services.map(esc).join(' → ')}</td><td class="num">${t.spans}</td><td class="num">${fmt.ms(t.durationMs)}</td><td>${t.error ? '<span class="badge bad">error</span>' : ''}</td></tr>`)
          .join('')}</tbody></table>`
      : '<div class="empty">No traces yet: spans arrive about a second after requests.</div>';
  });
}

/**
 * How a span's bar is drawn, and why: red for a failed hop (`failed`, the control plane's rule
 * for a trace's error: 5xx, no answer, a gRPC error, or an answer its sidecar made itself),
 * amber for a 4xx the hop relayed (the request's fault, not counted as failed), else plain.
 */
function spanOutcome(s) {
  if (s.failed) {
    const why = s.reason ? `answered by the ${s.service} sidecar itself (x-skein-reason: ${s.reason})` : s.status === 0 ? 'no answer' : s.grpcStatus > 0 ? `gRPC status ${s.grpcStatus}` : `status ${s.status}`;
    return { cls: 'error', text: 'sr-bad', title: `failed: ${why}` };
  }
  if (s.status >= 400 && s.status < 500) return { cls: 'client-error', text: 'sr-warn', title: `status ${s.status}: refused by the app as the request's fault, not counted as failed` };
  return { cls: '', text: 'muted', title: `status ${s.status}` };
}

const WATERFALL_LEGEND = '<div class="legend waterfall-legend"><span class="l-client">client hop</span><span class="l-server">server hop</span><span class="l-warn">4xx from the app (the request\'s fault)</span><span class="l-bad">failed: 5xx, no answer, gRPC error, or answered by the sidecar itself (x-skein-reason)</span></div>';

function traceView(id) {
  view.innerHTML = `<div class="panel"><h2>Trace <span class="mono">${esc(id)}</span></h2><div id="trace-box" class="waterfall"></div></div><div class="panel"><h2>Span</h2><div id="span-box" class="empty">Click a span for its details.</div></div>`;
  let shown = false;
  every(3000, async () => {
    // The store keeps only the newest traces: under heavy traffic one can go while it is open.
    const t = await api(`/api/v1/traces/${encodeURIComponent(id)}`).catch((err) => {
      if (err.status !== 404) throw err;
      return null;
    });
    if (!t) {
      if (shown) $('#trace-note').textContent = 'No longer in the control plane’s trace store (it keeps the newest traces); this is the copy fetched last.';
      else $('#trace-box').innerHTML = '<div class="empty">This trace is not in the control plane’s trace store (it keeps the newest traces only): pick a newer one under <a href="#/traces">Traces</a>.</div>';
      return;
    }
    shown = true;
    const spans = t.spanList;
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const depth = (s, seen = 0) => (s.parentSpanId && byId.has(s.parentSpanId) && seen < 50 ? 1 + depth(byId.get(s.parentSpanId), seen + 1) : 0);
    // Children right under their parent, in start order.
    const ordered = [];
    const visit = (s) => {
      ordered.push(s);
      spans.filter((c) => c.parentSpanId === s.spanId).forEach(visit);
    };
    spans.filter((s) => !s.parentSpanId || !byId.has(s.parentSpanId)).forEach(visit);
    const start = t.startMs;
    const total = Math.max(t.durationMs, 0.001);
    $('#trace-box').innerHTML = `<div class="muted" id="trace-note"></div><div class="muted">${t.spans} spans across ${t.services.map(esc).join(', ')} in ${fmt.ms(t.durationMs)}</div>${WATERFALL_LEGEND}${ordered
      .map((s, i) => {
        const left = ((s.startMs - start) / total) * 100;
        const width = Math.max(0.3, (s.durationMs / total) * 100);
        const events = s.events.map((e) => `<span class="event" style="left:${((e.timeMs - start) / total) * 100}%" title="${esc(e.name)} ${esc(JSON.stringify(e.attributes))}"></span>`).join('');
        const outcome = spanOutcome(s);
        const title = esc(outcome.title);
        return `<div class="row span-row" data-i="${i}"><div class="label" style="padding-left:${depth(s) * 16}px"><strong>${esc(s.service)}</strong> ${s.kind === 'client' ? '→' : '⇠'} ${esc(s.kind === 'client' ? s.destination : s.source)} <span class="mono">${esc(s.method)} ${esc(s.path)}</span>${s.resendCount > 0 ? ` retry ${Number(s.resendCount)}` : ''} <span class="${outcome.text}" title="${title}">${s.status}${s.reason ? ` ${esc(s.reason)}` : ''}</span></div><div class="track"><span class="bar ${s.kind} ${outcome.cls}" title="${title}" style="left:${left}%;width:${width}%"></span>${events}</div><div class="num">${fmt.ms(s.durationMs)}</div></div>`;
      })
      .join('')}`;
    $('#trace-box').onclick = (ev) => {
      const row = ev.target.closest('.span-row');
      if (row) $('#span-box').outerHTML = `<pre id="span-box">${esc(JSON.stringify(ordered[Number(row.dataset.i)], null, 2))}</pre>`;
    };
  });
}

// ---- routing -----------------------------------------------------------------------------

function route() {
  stopView();
  const [path, query] = (location.hash.slice(1) || '/graph').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  const top = parts[0] || 'graph';
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === (top === 'service' ? 'services' : top === 'trace' ? 'traces' : top));
  if (top === 'service' && parts[1]) serviceView(decodeURIComponent(parts[1]));
  else if (top === 'services') servicesView();
  else if (top === 'proxies') proxiesView();
  else if (top === 'tap') tapView(params);
  else if (top === 'traces') tracesView();
  else if (top === 'trace' && parts[1]) traceView(parts[1]);
  else graphView();
}

$('#window').value = state.window;
$('#window').addEventListener('change', (ev) => {
  state.window = ev.target.value;
  localStorage.setItem('skein.window', state.window);
  route();
});
$('#token').value = state.token;
$('#token').addEventListener('change', (ev) => {
  state.token = ev.target.value.trim();
  localStorage.setItem('skein.token', state.token);
});
window.addEventListener('hashchange', route);
route();
