// The console's only way to the daemon: GET requests to /api/v1/. An error
// answer carries {"error": "..."}; it becomes an ApiError with that text.

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// queue holds the requests of this page one at a time: the daemon serves
// only http.max_concurrent (default 2) API requests at once and turns the
// others away rather than let the API take the decoders' CPU.
let queue = Promise.resolve();

// controller aborts the requests of the page being left, queued or in
// flight, so that the next page's wait behind none of them (the daemon
// stops a host-table walk whose client went away).
let controller = new AbortController();

// abortAll abandons every request made so far.
export function abortAll() {
  controller.abort();
  controller = new AbortController();
}

// get fetches an API path (with its query) and returns the parsed JSON.
// Requests run one after the other; one turned away as busy (503 with
// Retry-After) is tried again, up to three times.
export function get(path, params) {
  const signal = controller.signal;
  const run = queue.then(() => {
    signal.throwIfAborted();
    return fetchJSON(path, params, signal);
  });
  queue = run.catch(() => {});
  return run;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function fetchJSON(path, params, signal) {
  let url = 'api/v1/' + path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += '?' + s;
  }
  let resp;
  for (let attempt = 0; ; attempt++) {
    resp = await fetch(url, {headers: {Accept: 'application/json'}, credentials: 'same-origin', signal});
    if (resp.status !== 503 || !resp.headers.get('Retry-After') || attempt === 3) break;
    await sleep(1000 * Number(resp.headers.get('Retry-After')));
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // not JSON: reported below by status
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, (body && body.error) || resp.status + ' ' + resp.statusText);
  }
  return body;
}

// hostHref is the console's address of a host's page.
export function hostHref(ip, vlan) {
  return '#/host/' + encodeURIComponent(ip) + (vlan ? '?vlan=' + vlan : '');
}
