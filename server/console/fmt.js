// Formatting of numbers, sizes, rates and times for display.

const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

// bytes formats a byte count with decimal units (as ntopng does).
export function bytes(n) {
  if (n === undefined || n === null) return '–';
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
}

// rate formats a per-second value (bytes when unit is 'B').
export function rate(n, unit = '') {
  if (n === undefined || n === null) return '–';
  if (unit === 'B') return bytes(n) + '/s';
  return num(n, n < 10 ? 1 : 0) + (unit ? ' ' + unit : '') + '/s';
}

// formats holds one Intl.NumberFormat per number of digits: building one
// per call (toLocaleString with options) cost most of the time of a
// 1000-row table.
const formats = new Map();

// num formats a count with thousands separators.
export function num(n, digits = 0) {
  if (n === undefined || n === null) return '–';
  let f = formats.get(digits);
  if (!f) {
    f = new Intl.NumberFormat('en-US', {minimumFractionDigits: digits, maximumFractionDigits: digits});
    formats.set(digits, f);
  }
  return f.format(Number(n));
}

// duration formats seconds (fractions allowed) briefly.
export function duration(s) {
  if (s === undefined || s === null) return '–';
  if (s < 1e-3) return (s * 1e6).toFixed(0) + ' µs';
  if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + ' ms';
  if (s < 120) return s.toFixed(1) + ' s';
  if (s < 7200) return Math.round(s / 60) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}

// ago formats a timestamp as the time since it, with the date in a title.
export function ago(t, now = Date.now()) {
  if (!t || t.startsWith('0001-')) return '–';
  const d = (now - Date.parse(t)) / 1000;
  if (d < 0) return 'now';
  return duration(d) + ' ago';
}

// time formats a timestamp as local date and time.
export function time(t) {
  if (!t || t.startsWith('0001-')) return '–';
  return new Date(t).toLocaleString('en-GB', {hour12: false});
}

// yesno formats a boolean.
export function yesno(b) {
  return b ? 'yes' : 'no';
}
