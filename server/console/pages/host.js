// Host page: everything the API knows of one host, as ntopng's host
// details page: identity, traffic, L7, the one-sided and refused contact
// sets with their members, unidirectional counters, alerts and score.
import {el, fill, table, dl, badge, section} from '../dom.js';
import {get} from '../api.js';
import * as fmt from '../fmt.js';
import {alertColumns} from './alerts.js';

export const title = 'Host';

// setView shows one contact set: its count, and its first members (or that
// it became a sketch, whose count is an estimate).
function setView(label, set, id) {
  if (!set) return null;
  const head = el('div', null, el('strong', null, label + ': '), el('span', {className: 'count'}, fmt.num(set.count)),
    set.exact ? null : el('span', {className: 'muted'}, ' (estimated: the set turned into a sketch)'));
  const shown = set.members || [];
  const more = set.exact && set.count > shown.length ? el('span', {className: 'muted'}, `… and ${fmt.num(set.count - shown.length)} more`) : null;
  return el('div', {className: 'set', id}, head,
    shown.length ? el('div', {className: 'members'}, shown.map((m) => el('span', null, String(m))), more) : null);
}

function contactsPanel(title, kind, counts, sets, flows, clients) {
  const s = sets || {};
  return section(title,
    el('table', {className: 'grid', id: kind + '-figures'},
      el('thead', null, el('tr', null, el('th', null, ''), el('th', {className: 'num'}, 'Count'))),
      el('tbody', null,
        el('tr', null, el('td', null, 'Peers contacted as client'), el('td', {className: 'num', dataset: {field: kind + '.peers_as_client'}}, fmt.num(counts.peers_as_client))),
        el('tr', null, el('td', null, 'Server ports contacted as client'), el('td', {className: 'num', dataset: {field: kind + '.server_ports'}}, fmt.num(counts.server_ports))),
        el('tr', null, el('td', null, clients + ' as server'), el('td', {className: 'num', dataset: {field: kind + '.peers_as_server'}}, fmt.num(counts.peers_as_server))),
        flows ? el('tr', null, el('td', null, 'Conversations (TCP / UDP, as client)'), el('td', {className: 'num'}, `${fmt.num(flows.egress_tcp)} / ${fmt.num(flows.egress_udp)}`)) : null)),
    setView('Server ports', s.server_ports, kind + '-ports'),
    setView('Peers as client', s.peers_as_client, kind + '-peers'),
    setView(clients, s.peers_as_server, kind + '-clients'));
}

export async function render(view, {arg, params}, ctx) {
  const vlan = params.get('vlan') || '';
  const load = async () => {
    const h = await get('hosts/' + encodeURIComponent(arg), {vlan});
    if (!ctx.live()) return;
    const flags = [h.local ? badge('local', 'yes') : badge('remote', 'no'), h.blacklisted ? badge('blacklisted') : null,
      h.multicast ? badge('multicast', 'no') : null, h.broadcast ? badge('broadcast', 'no') : null, h.rx_only ? badge('receive only', 'no') : null];
    const identity = section('Identity', dl([
      ['Address', el('span', {id: 'host-ip'}, h.ip)],
      ['VLAN', String(h.vlan)],
      ['MAC', h.mac],
      ['Name', el('span', {id: 'host-name'}, h.name || '–')],
      ['Local', fmt.yesno(h.local)],
      ['Blacklisted', fmt.yesno(h.blacklisted)],
      ['Flags', el('span', null, flags.filter(Boolean).map((b) => [b, ' ']))],
      ['First seen', fmt.time(h.first_seen)],
      ['Last seen', fmt.time(h.last_seen) + ' (' + fmt.ago(h.last_seen) + ')'],
    ]));
    const traffic = section('Traffic', el('table', {className: 'grid', id: 'traffic'},
      el('thead', null, el('tr', null, el('th', null, ''), el('th', {className: 'num'}, 'Bytes'), el('th', {className: 'num'}, 'Packets'))),
      el('tbody', null,
        el('tr', null, el('td', null, 'Sent'), el('td', {className: 'num', dataset: {field: 'bytes_sent'}}, fmt.num(h.bytes_sent)), el('td', {className: 'num'}, fmt.num(h.packets_sent))),
        el('tr', null, el('td', null, 'Received'), el('td', {className: 'num', dataset: {field: 'bytes_rcvd'}}, fmt.num(h.bytes_rcvd)), el('td', {className: 'num'}, fmt.num(h.packets_rcvd))),
        el('tr', null, el('td', null, 'Total'), el('td', {className: 'num'}, fmt.bytes(h.bytes_sent + h.bytes_rcvd)), el('td', {className: 'num'}, fmt.num(h.packets_sent + h.packets_rcvd))))),
    h.sampling && h.sampling.rate > 1 ? el('p', {className: 'muted'}, `Sampled 1:${h.sampling.rate}: contact figures are estimates.`) : null);
    const score = section('Score', el('div', {className: 'score', id: 'host-score'}, fmt.num(h.score)),
      el('p', {className: 'muted'}, 'Sum of the values of the engaged alerts of this host.'));
    const l7 = section('Applications (L7)', table([
      {title: 'Protocol', value: (r) => r.name},
      {title: 'Sent', value: (r) => fmt.bytes(r.bytes_sent), numeric: true},
      {title: 'Received', value: (r) => fmt.bytes(r.bytes_rcvd), numeric: true},
      {title: 'Packets sent', value: (r) => fmt.num(r.packets_sent), numeric: true},
      {title: 'Packets received', value: (r) => fmt.num(r.packets_rcvd), numeric: true},
      {title: 'Flows', value: (r) => fmt.num(r.flows), numeric: true},
    ], [...(h.l7 || [])].sort((a, b) => (b.bytes_sent + b.bytes_rcvd) - (a.bytes_sent + a.bytes_rcvd)), {id: 'l7', empty: 'No application seen.'}));
    const sets = h.sets || {};
    const noreply = contactsPanel('One-sided (no reply)', 'noreply', h.noreply, sets.noreply, null, 'Clients left unanswered');
    const refused = contactsPanel('Refused (TCP reset)', 'refused', h.refused, sets.refused, h.refused_flows, 'Clients refused');
    const u = h.unidirectional;
    const uni = section('Unidirectional flows', table([
      {title: 'Direction', value: (r) => r[0]},
      {title: 'TCP', value: (r) => fmt.num(r[1]), numeric: true},
      {title: 'UDP', value: (r) => fmt.num(r[2]), numeric: true},
      {title: 'All', value: (r) => fmt.num(r[3]), numeric: true},
    ], [['Egress (as client, no reply)', u.egress_tcp, u.egress_udp, u.egress], ['Ingress (as server, not answered)', u.ingress_tcp, u.ingress_udp, u.ingress]], {id: 'unidirectional'}));
    const cols = alertColumns({host: false});
    const alerts = section('Engaged alerts', table(cols, h.alerts || [], {id: 'host-alerts', empty: 'No engaged alert.'}),
      el('p', null, el('a', {href: '#/alerts?host=' + encodeURIComponent(h.ip + (h.vlan ? '@' + h.vlan : ''))}, 'This host on the alerts page ›')));
    const recent = section('Recently released alerts', table(alertColumns({host: false, released: true}), h.recent_alerts || [], {id: 'host-recent', empty: 'No recent alert.'}));
    fill(view, 
      el('h1', null, el('span', {className: 'hostname'}, h.ip), h.name && h.name !== h.ip ? el('span', {className: 'sub'}, h.name) : null, h.vlan ? el('span', {className: 'sub'}, 'VLAN ' + h.vlan) : null),
      el('div', {className: 'grid-3'}, identity, traffic, score),
      el('div', {className: 'grid-2'}, noreply, refused),
      alerts, recent,
      el('div', {className: 'grid-2'}, uni, l7));
  };
  await load();
  ctx.every(10000, () => load().catch((e) => ctx.status('Refresh failed: ' + e.message)));
}
