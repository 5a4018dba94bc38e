// Checks: each Lua host check with its state, runs, failures, time per
// call, last error and engaged alerts.
import {el, fill, table, badge} from '../dom.js';
import {get} from '../api.js';
import * as fmt from '../fmt.js';

export const title = 'Checks';

function state(c) {
  if (c.disabled) return badge('disabled');
  return c.enabled ? badge('enabled') : badge('off', 'no');
}

function lastError(c) {
  const e = c.last_error;
  if (!e) return '';
  return el('span', null, el('code', null, `${e.file}:${e.line}`), ' ', e.message, el('span', {className: 'muted'}, ' (' + fmt.ago(e.time) + ')'));
}

export async function render(view, _route, ctx) {
  const holder = el('div', {id: 'checks'}, el('p', {className: 'loading'}, 'Loading…'));
  fill(view, el('h1', null, 'Checks'), holder);
  const load = async () => {
    const d = await get('checks', {limit: 1000});
    if (!ctx.live()) return;
    fill(holder, table([
      {title: 'Check', value: (c) => c.name},
      {title: 'Script', value: (c) => el('code', null, c.file || '')},
      {title: 'State', value: state},
      {title: 'Runs', value: (c) => fmt.num(c.runs), numeric: true},
      {title: 'Failures', value: (c) => fmt.num(c.failures), numeric: true},
      {title: 'Timeouts', value: (c) => fmt.num(c.timeouts), numeric: true},
      {title: 'Time per call', value: (c) => fmt.duration(c.seconds_per_call), numeric: true},
      {title: 'Engaged', value: (c) => (c.engaged ? el('a', {href: '#/alerts?check=' + encodeURIComponent(c.name)}, fmt.num(c.engaged)) : '0'), numeric: true},
      {title: 'Last error', value: lastError, className: 'wrap'},
    ], d.items, {id: 'checks-table', empty: 'No check loaded.'}));
  };
  await load();
  ctx.every(5000, () => load().catch((e) => ctx.status('Refresh failed: ' + e.message)));
}
