// DOM helpers. Every string given to el() becomes a text node: host data
// (addresses, reverse-DNS names, alert messages) is outside input and is
// never parsed as HTML. The console uses no innerHTML anywhere.

// el creates an element. props may hold className, href, title, type,
// value, placeholder, colSpan, dataset (an object), on (an object of event
// handlers) and any other DOM property. Children are nodes, strings or
// numbers (as text), arrays of them, or null/undefined/false (skipped).
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else node[k] = v;
    }
  }
  return append(node, ...children);
}

// append adds children to node as el() does.
export function append(node, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// fill replaces the children of node with children, as el() takes them.
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, ...children);
}

// table builds a table from column definitions and rows. A column is
// {title, value(row) → node|string, className, sort (a key), numeric}.
// sortKey marks the sorted column; onSort(key) is called when a sortable
// header is clicked.
export function table(columns, rows, {sortKey, onSort, empty = 'Nothing to show.', id} = {}) {
  const head = el('tr', null, columns.map((c) => {
    const cls = [c.numeric ? 'num' : '', c.sort ? 'sortable' : '', c.sort && c.sort === sortKey ? 'sorted' : ''].join(' ').trim();
    if (!c.sort || !onSort) return el('th', {className: cls, title: c.help}, c.title);
    return el('th', {className: cls, title: c.help || 'Sort by ' + c.title},
      el('a', {href: '#', dataset: {sort: c.sort}, on: {click: (e) => { e.preventDefault(); onSort(c.sort); }}}, c.title,
        c.sort === sortKey ? ' ▾' : ''));
  }));
  const body = el('tbody');
  if (rows.length === 0) {
    body.append(el('tr', null, el('td', {className: 'empty', colSpan: columns.length}, empty)));
  }
  for (const r of rows) {
    body.append(el('tr', null, columns.map((c) => el('td', {className: (c.numeric ? 'num ' : '') + (c.className || '')}, c.value(r)))));
  }
  return el('table', {className: 'grid', id}, el('thead', null, head), body);
}

// dl builds a definition list from [term, value] pairs.
export function dl(pairs, className = 'facts') {
  return el('dl', {className}, pairs.filter(Boolean).map(([k, v]) => [el('dt', null, k), el('dd', null, v)]));
}

// badge is a small coloured label, its class derived from a known word.
export function badge(text, kind = text) {
  return el('span', {className: 'badge badge-' + String(kind).replace(/[^a-z0-9_-]/gi, '')}, text);
}

// section is a titled panel.
export function section(title, ...children) {
  return el('section', {className: 'panel'}, el('h2', null, title), children);
}
