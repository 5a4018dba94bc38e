// Exporters: each exporter with its protocols, templates, sampling rates,
// rates, decode errors, drops and last datagram.
import {el, fill, table, section, dl} from '../dom.js';
import {get} from '../api.js';
import * as fmt from '../fmt.js';

export const title = 'Exporters';

const versions = {netflow5: 'NetFlow v5', netflow9: 'NetFlow v9', ipfix: 'IPFIX', sflow5: 'sFlow v5'};

function errorsOf(x) {
  const e = Object.entries(x.decode_errors || {}).filter(([, n]) => n > 0);
  if (e.length === 0) return fmt.num(x.errors);
  return fmt.num(x.errors) + ' (' + e.map(([k, n]) => k + ' ' + fmt.num(n)).join(', ') + ')';
}

function exporterPanel(x) {
  const templates = table([
    {title: 'Version', value: (t) => String(t.version), numeric: true},
    {title: 'Domain', value: (t) => String(t.domain), numeric: true},
    {title: 'Template', value: (t) => String(t.id), numeric: true},
    {title: 'Kind', value: (t) => (t.options ? 'options' : 'data')},
    {title: 'Fields', value: (t) => String(t.fields), numeric: true},
    {title: 'Last seen', value: (t) => fmt.ago(t.last_seen)},
  ], x.templates || [], {empty: 'No template (NetFlow v5 and sFlow have none).', id: 'templates-' + x.address});
  const rates = (x.sampling_rates || []).map((s) => `1:${s.rate} (domain ${s.domain}, sampler ${s.sampler_id})`).join(', ') || 'none announced';
  return section(x.address,
    el('div', {className: 'grid-2'},
      dl([
        ['Protocols', (x.protocols || []).map((p) => versions[p] || p).join(', ')],
        ['Records/s', fmt.rate(x.records_per_second)],
        ['Datagrams/s', fmt.rate(x.datagrams_per_second)],
        ['Datagrams', fmt.num(x.packets)],
        ['Flow records', fmt.num(x.flows)],
      ]),
      dl([
        ['Decode errors', errorsOf(x)],
        ['Dropped (queue full)', fmt.num(x.drops.queue_full)],
        ['Dropped (wrong protocol)', fmt.num(x.drops.wrong_protocol)],
        ['Sampling rates', rates],
        ['Last seen', fmt.time(x.last_seen) + ' (' + fmt.ago(x.last_seen) + ')'],
      ])),
    el('h3', null, 'Templates'), templates);
}

export async function render(view, _route, ctx) {
  const holder = el('div', {id: 'exporters'}, el('p', {className: 'loading'}, 'Loading…'));
  fill(view, el('h1', null, 'Exporters'), holder);
  const load = async () => {
    const d = await get('exporters', {limit: 1000});
    if (!ctx.live()) return;
    const summary = table([
      {title: 'Exporter', value: (x) => el('a', {href: '#/exporters', dataset: {exporter: x.address}, on: {click: (e) => { e.preventDefault(); document.getElementById('exporter-' + x.address)?.scrollIntoView(); }}}, x.address)},
      {title: 'Protocols', value: (x) => (x.protocols || []).map((p) => versions[p] || p).join(', ')},
      {title: 'Templates', value: (x) => fmt.num((x.templates || []).length), numeric: true},
      {title: 'Records/s', value: (x) => fmt.rate(x.records_per_second), numeric: true},
      {title: 'Flow records', value: (x) => fmt.num(x.flows), numeric: true},
      {title: 'Decode errors', value: (x) => fmt.num(x.errors), numeric: true},
      {title: 'Drops', value: (x) => fmt.num(x.drops.queue_full + x.drops.wrong_protocol), numeric: true},
      {title: 'Last seen', value: (x) => fmt.ago(x.last_seen)},
    ], d.items, {id: 'exporters-table', empty: 'No exporter has sent anything yet.'});
    const panels = d.items.map((x) => {
      const p = exporterPanel(x);
      p.id = 'exporter-' + x.address;
      return p;
    });
    fill(holder, section(`${fmt.num(d.total)} exporter${d.total === 1 ? '' : 's'}`, summary), panels);
  };
  await load();
  ctx.every(5000, () => load().catch((e) => ctx.status('Refresh failed: ' + e.message)));
}
