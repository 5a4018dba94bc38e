// Alerts: the engaged alerts and the recently released ones (with the
// reason of their release), filtered by check, severity and host.
import {el, fill, append, table, badge, section} from '../dom.js';
import {get, hostHref} from '../api.js';
import * as fmt from '../fmt.js';

export const title = 'Alerts';

const severities = ['info', 'warning', 'error', 'critical'];

// alertColumns are the columns of an alert table; the host page leaves the
// host out, and shows the release reason for released alerts.
export function alertColumns({host = true, released = false} = {}) {
  return [
    {title: 'Severity', value: (a) => badge(a.severity)},
    {title: 'Check', value: (a) => el('a', {href: '#/alerts?check=' + encodeURIComponent(a.check), title: 'Only this check'}, a.check)},
    host ? {title: 'Host', value: (a) => el('a', {href: hostHref(a.host.ip, a.host.vlan), className: 'host'}, a.host.ip + (a.host.vlan ? '@' + a.host.vlan : ''))} : null,
    host ? {title: 'Name', value: (a) => (a.host.name && a.host.name !== a.host.ip ? el('span', {title: a.host.name}, a.host.name) : ''), className: 'name'} : null,
    {title: 'Value', value: (a) => fmt.num(a.value), numeric: true},
    {title: 'Message', value: (a) => a.message, className: 'wrap'},
    {title: 'Since', value: (a) => fmt.ago(a.first_seen)},
    released ? {title: 'Released', value: (a) => fmt.ago(a.time)} : {title: 'Last seen', value: (a) => fmt.ago(a.last_seen)},
    released ? {title: 'Reason', value: (a) => a.reason || ''} : null,
  ].filter(Boolean);
}

function filters(params) {
  return {check: params.get('check') || '', severity: params.get('severity') || '', host: params.get('host') || ''};
}

export async function render(view, {params}, ctx) {
  const f = filters(params);
  const check = el('select', {id: 'filter-check'}, el('option', {value: ''}, 'every check'));
  const severity = el('select', {id: 'filter-severity'}, el('option', {value: ''}, 'every severity'), severities.map((s) => el('option', {value: s}, s)));
  const host = el('input', {type: 'search', id: 'filter-host', placeholder: 'host (ip or ip@vlan)', value: f.host, size: 22});
  const form = el('form', {className: 'filters', on: {submit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (check.value) p.set('check', check.value);
    if (severity.value) p.set('severity', severity.value);
    if (host.value.trim()) p.set('host', host.value.trim());
    location.hash = '#/alerts' + (p.toString() ? '?' + p : '');
  }}}, check, severity, host, el('button', {type: 'submit'}, 'Filter'));
  check.addEventListener('change', () => form.requestSubmit());
  severity.addEventListener('change', () => form.requestSubmit());
  severity.value = f.severity;

  const engaged = el('div', {id: 'engaged'}, el('p', {className: 'loading'}, 'Loading…'));
  const released = el('div', {id: 'released'});
  fill(view, el('h1', null, 'Alerts'), form, section('Engaged', engaged), section('Recently released', released));

  // The check list fills the filter; a failure leaves it with the
  // current choice only.
  get('checks', {limit: 1000}).then((d) => {
    for (const c of d.items) append(check, el('option', {value: c.name}, c.name));
    check.value = f.check;
  }).catch(() => {
    if (f.check) append(check, el('option', {value: f.check}, f.check));
    check.value = f.check;
  });

  const load = async () => {
    const q = {check: f.check, severity: f.severity, host: f.host, limit: 500};
    const [e, r] = await Promise.all([get('alerts', {...q, state: 'engaged'}), get('alerts', {...q, state: 'released'})]);
    if (!ctx.live()) return;
    fill(engaged, table(alertColumns(), e.items, {id: 'alerts-engaged', empty: 'No engaged alert.'}),
      e.total > e.items.length ? el('p', {className: 'muted'}, `${fmt.num(e.items.length)} of ${fmt.num(e.total)} shown.`) : null);
    fill(released, table(alertColumns({released: true}), r.items, {id: 'alerts-released', empty: 'No alert released recently.'}),
      r.total > r.items.length ? el('p', {className: 'muted'}, `${fmt.num(r.items.length)} of ${fmt.num(r.total)} shown.`) : null);
  };
  try {
    await load();
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    fill(engaged, el('p', {className: 'error', id: 'alerts-error'}, e.message));
    return;
  }
  ctx.every(5000, () => load().catch((err) => ctx.status('Refresh failed: ' + err.message)));
}
