// Hosts: the host table, sorted on the server, filtered by address or CIDR,
// local/remote and VLAN, paged with its total.
import {el, fill, table} from '../dom.js';
import {get, hostHref} from '../api.js';
import * as fmt from '../fmt.js';

export const title = 'Hosts';

// sizes are the page sizes offered (the API answers at most 1000).
const sizes = [25, 50, 100, 500, 1000];

// sorts are the server's orders, as the table's headers offer them.
const quick = [
  ['bytes', 'Top talkers'],
  ['score', 'Score'],
  ['refused_ports', 'Scanners (refused ports)'],
  ['noreply_ports', 'One-sided ports'],
];

function hostLink(h) {
  return el('a', {href: hostHref(h.ip, h.vlan), className: 'host'}, h.ip);
}

function query(params) {
  return {
    sort: params.get('sort') || 'bytes',
    offset: Number(params.get('offset') || 0),
    q: params.get('q') || '',
    local: params.get('local') || '',
    vlan: params.get('vlan') || '',
    size: sizes.includes(Number(params.get('size'))) ? Number(params.get('size')) : 50,
  };
}

function hrefWith(q, changes) {
  const p = new URLSearchParams();
  const m = {...q, ...changes};
  for (const [k, v] of Object.entries(m)) {
    if (v !== '' && v !== 0 && !(k === 'sort' && v === 'bytes') && !(k === 'size' && v === 50)) p.set(k, String(v));
  }
  const s = p.toString();
  return '#/hosts' + (s ? '?' + s : '');
}

// maxOffset is how deep the API pages by offset; past it, a filter or
// another order narrows the list.
const maxOffset = 10000;

function nextLink(q, last, total) {
  if (last >= total) return el('span', {className: 'off'}, 'next ›');
  if (last + q.size > maxOffset) return el('span', {className: 'off', title: 'Narrow the list with a filter or another order'}, 'next ›');
  return el('a', {href: hrefWith(q, {offset: last}), id: 'next'}, 'next ›');
}

export async function render(view, {params}, ctx) {
  const q = query(params);
  const go = (changes) => { location.hash = hrefWith(q, {offset: 0, ...changes}); };

  const addr = el('input', {type: 'search', id: 'filter-q', placeholder: 'address or CIDR', value: q.q, size: 22});
  const local = el('select', {id: 'filter-local'},
    el('option', {value: ''}, 'local and remote'), el('option', {value: 'true'}, 'local'), el('option', {value: 'false'}, 'remote'));
  local.value = q.local;
  const vlan = el('input', {type: 'number', id: 'filter-vlan', placeholder: 'VLAN', min: 0, max: 4095, value: q.vlan});
  const size = el('select', {id: 'page-size', title: 'Hosts per page'}, sizes.map((n) => el('option', {value: n}, n + ' per page')));
  size.value = String(q.size);
  const form = el('form', {className: 'filters', on: {submit: (e) => { e.preventDefault(); go({q: addr.value.trim(), local: local.value, vlan: vlan.value, size: Number(size.value)}); }}},
    addr, local, vlan, size, el('button', {type: 'submit'}, 'Filter'),
    (q.q || q.local || q.vlan) ? el('a', {href: hrefWith({sort: q.sort, size: q.size}, {}), className: 'reset'}, 'clear filters') : null);
  local.addEventListener('change', () => form.requestSubmit());
  size.addEventListener('change', () => form.requestSubmit());

  const tabs = el('div', {className: 'tabs'}, quick.map(([key, label]) =>
    el('a', {href: hrefWith(q, {sort: key, offset: 0}), className: key === q.sort ? 'active' : '', dataset: {sort: key}}, label)));

  const holder = el('div', {id: 'hosts-table'}, el('p', {className: 'loading'}, 'Loading…'));
  fill(view, el('h1', null, 'Hosts'), tabs, form, holder);

  const load = async () => {
    const data = await get('hosts', {sort: q.sort, offset: q.offset, limit: q.size, q: q.q, local: q.local, vlan: q.vlan});
    if (!ctx.live()) return;
    const columns = [
      {title: 'Host', value: hostLink},
      {title: 'Name', value: (h) => (h.name && h.name !== h.ip ? el('span', {title: h.name}, h.name) : ''), className: 'name'},
      {title: 'VLAN', value: (h) => String(h.vlan), numeric: true},
      {title: 'Local', value: (h) => (h.local ? 'local' : 'remote')},
      {title: 'Score', value: (h) => fmt.num(h.score), numeric: true, sort: 'score'},
      {title: 'Sent', value: (h) => fmt.bytes(h.bytes_sent), numeric: true},
      {title: 'Received', value: (h) => fmt.bytes(h.bytes_rcvd), numeric: true},
      {title: 'Total', value: (h) => fmt.bytes(h.bytes_sent + h.bytes_rcvd), numeric: true, sort: 'bytes'},
      {title: '1-sided ports', value: (h) => fmt.num(h.noreply_ports), numeric: true, sort: 'noreply_ports', help: 'Distinct server ports this host contacted that never answered'},
      {title: '1-sided peers', value: (h) => fmt.num(h.noreply_peers), numeric: true, sort: 'noreply_peers', help: 'Distinct servers this host contacted that never answered'},
      {title: 'Refused ports', value: (h) => fmt.num(h.refused_ports), numeric: true, sort: 'refused_ports', help: 'Distinct server ports that answered this host with a TCP RST only'},
      {title: 'Refused peers', value: (h) => fmt.num(h.refused_peers), numeric: true, sort: 'refused_peers', help: 'Distinct servers that answered this host with a TCP RST only'},
      {title: 'Last seen', value: (h) => fmt.ago(h.last_seen)},
    ];
    const tbl = table(columns, data.items, {id: 'hosts', sortKey: q.sort, onSort: (s) => go({sort: s})});
    const first = data.total === 0 ? 0 : q.offset + 1;
    const last = q.offset + data.items.length;
    const pager = el('div', {className: 'pager'},
      q.offset > 0 ? el('a', {href: hrefWith(q, {offset: Math.max(0, q.offset - q.size)}), id: 'prev'}, '‹ previous') : el('span', {className: 'off'}, '‹ previous'),
      el('span', {id: 'range'}, `${fmt.num(first)}–${fmt.num(last)} of ${fmt.num(data.total)} hosts`),
      nextLink(q, last, data.total));
    fill(holder, tbl, pager);
  };
  // A filter the API refuses (a bad CIDR, a VLAN out of range) is said
  // under the form, which stays to be corrected.
  try {
    await load();
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    fill(holder, el('p', {className: 'error', id: 'hosts-error'}, e.message));
    return;
  }
  ctx.every(10000, () => load().catch((e) => ctx.status('Refresh failed: ' + e.message)));
}
