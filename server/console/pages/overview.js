// Overview: the daemon's vital signs now, and as charts over the last hour
// (the server's ring of one-second samples), with the hosts that scan most
// one click away.
import uPlot from '../vendor/uplot/uPlot.esm.js';
import {el, fill, table, section} from '../dom.js';
import {get, hostHref} from '../api.js';
import * as fmt from '../fmt.js';

export const title = 'Overview';

const hour = 3600;

// charts are the overview's plots: each a list of series of the API's
// columnar samples, with a value formatter.
const charts = [
  {title: 'Flow records/s', series: [['records_per_second', 'records/s', '#1565c0']], value: (v) => fmt.num(v, 0)},
  {title: 'Traffic bytes/s', series: [['bytes_per_second', 'bytes/s', '#2e7d32']], value: (v) => fmt.bytes(v)},
  {title: 'Drops and shed records /s', series: [['drops_per_second', 'datagrams dropped/s', '#c62828'], ['shed_per_second', 'records shed/s', '#ef6c00']], value: (v) => fmt.num(v, 1)},
  {title: 'Hosts', series: [['hosts', 'hosts', '#6a1b9a']], value: (v) => fmt.num(v)},
  {title: 'Engaged alerts by severity', series: [['alerts_critical', 'critical', '#c62828'], ['alerts_error', 'error', '#ef6c00'], ['alerts_warning', 'warning', '#f9a825'], ['alerts_info', 'info', '#1e88e5']], value: (v) => fmt.num(v)},
  // A tick ends every scripting.interval: its series joins the seconds
  // that have one.
  {title: 'Tick duration', series: [['tick_seconds', 'tick', '#00838f']], value: (v) => fmt.duration(v), sparse: true},
];

function card(label, value, id, alerting, detail) {
  return el('div', {className: 'card' + (alerting ? ' alerting' : ''), id}, el('div', {className: 'label'}, label), el('div', {className: 'value'}, value),
    detail ? el('div', {className: 'detail'}, detail) : null);
}

// lastTick is the duration of the latest tick: the current sample's, or
// the last one the series holds (a tick runs every scripting.interval).
function lastTick(cur, series) {
  if (cur.tick_seconds !== null && cur.tick_seconds !== undefined) return cur.tick_seconds;
  const ticks = series.tick_seconds || [];
  for (let i = ticks.length - 1; i >= 0; i--) if (ticks[i] !== null) return ticks[i];
  return null;
}

function cards(cur, series) {
  const a = cur.alerts || {};
  const engaged = (a.info || 0) + (a.warning || 0) + (a.error || 0) + (a.critical || 0);
  return [
    card('Records/s', fmt.num(cur.records_per_second, 0), 'card-records'),
    card('Traffic', fmt.rate(cur.bytes_per_second, 'B'), 'card-bytes'),
    card('Drops/s', fmt.num(cur.drops_per_second, 1), 'card-drops', cur.drops_per_second > 0),
    card('Shed/s', fmt.num(cur.shed_per_second, 1), 'card-shed', cur.shed_per_second > 0),
    card('Hosts', fmt.num(cur.hosts), 'card-hosts'),
    card('Exporters', fmt.num(cur.exporters), 'card-exporters'),
    card('Engaged alerts', fmt.num(engaged), 'card-alerts', (a.critical || 0) + (a.error || 0) > 0,
      `critical ${a.critical || 0} · error ${a.error || 0} · warning ${a.warning || 0} · info ${a.info || 0}`),
    card('Last tick', fmt.duration(lastTick(cur, series)), 'card-tick'),
  ];
}

// plot draws one chart into its holder and returns the uPlot.
function plot(holder, chart, data) {
  const width = Math.max(300, holder.clientWidth);
  const opts = {
    width, height: 140,
    legend: {show: true, live: false},
    cursor: {drag: {x: false, y: false}},
    scales: {x: {time: true}, y: {range: (_u, min, max) => [0, Math.max(max, 1) * 1.1]}},
    axes: [{}, {size: 70, values: (_u, ticks) => ticks.map(chart.value)}],
    series: [{}, ...chart.series.map(([, label, stroke]) => ({label, stroke, width: 1.5, spanGaps: !!chart.sparse, points: {show: !!chart.sparse},
      value: (_u, v) => (v === null ? '–' : chart.value(v))}))],
  };
  return new uPlot(opts, data, holder);
}

function columns(series, chart) {
  return [series.time || [], ...chart.series.map(([key]) => series[key] || [])];
}

// merge appends newer samples to the held ones and keeps the last hour.
function merge(held, fresh) {
  const times = fresh.time || [];
  const last = held.time.length ? held.time[held.time.length - 1] : -Infinity;
  const start = times.findIndex((t) => t > last);
  if (start < 0) return held;
  const before = held.time.length;
  for (const k of Object.keys(fresh)) {
    held[k] = (held[k] || new Array(before).fill(null)).concat(fresh[k].slice(start));
  }
  const cut = held.time.length - hour;
  if (cut > 0) for (const k of Object.keys(held)) held[k] = held[k].slice(cut);
  return held;
}

export async function render(view, _route, ctx) {
  const d = await get('overview');
  if (!ctx.live()) return;
  let series = merge({time: []}, d.series);
  const cardBox = el('div', {className: 'cards', id: 'cards'}, cards(d.current, series));
  const holders = charts.map(() => el('div', {className: 'plot'}));
  const panels = charts.map((c, i) => el('div', {className: 'chart panel'}, el('h3', null, c.title), holders[i]));
  const top = el('div', {id: 'top-scanners'});
  fill(view, el('h1', null, 'Overview', el('span', {className: 'sub'}, 'last hour, one sample a second')), cardBox,
    el('div', {className: 'grid-2'}, panels, section('Top scanners (refused ports)', top, el('p', null, el('a', {href: '#/hosts?sort=refused_ports'}, 'All hosts by refused ports ›')))));
  const plots = charts.map((c, i) => plot(holders[i], c, columns(series, c)));
  ctx.onLeave(() => plots.forEach((p) => p.destroy()));

  const loadTop = async () => {
    const t = await get('hosts', {sort: 'refused_ports', limit: 5});
    if (!ctx.live()) return;
    fill(top, table([
      {title: 'Host', value: (h) => el('a', {href: hostHref(h.ip, h.vlan), className: 'host'}, h.ip)},
      {title: 'Name', value: (h) => (h.name && h.name !== h.ip ? h.name : '')},
      {title: 'Refused ports', value: (h) => fmt.num(h.refused_ports), numeric: true},
      {title: '1-sided ports', value: (h) => fmt.num(h.noreply_ports), numeric: true},
      {title: 'Score', value: (h) => fmt.num(h.score), numeric: true},
    ], t.items.filter((h) => h.refused_ports > 0 || h.noreply_ports > 0), {id: 'scanners', empty: 'No host with refused or one-sided ports.'}));
  };
  await loadTop();

  let since = series.time.length ? series.time[series.time.length - 1] : 0;
  ctx.every(2000, async () => {
    try {
      const n = await get('overview', since ? {since} : undefined);
      if (!ctx.live()) return;
      series = merge(series, n.series);
      fill(cardBox, cards(n.current, series));
      if (series.time.length) since = series.time[series.time.length - 1];
      plots.forEach((p, i) => p.setData(columns(series, charts[i])));
    } catch (e) {
      ctx.status('Refresh failed: ' + e.message);
    }
  });
  ctx.every(10000, () => loadTop().catch((e) => ctx.status('Refresh failed: ' + e.message)));
}
