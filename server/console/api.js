// The console's only way to the daemon: GET requests to /api/v1/. An error
// answer carries {"error": "..."}; it becomes an ApiError with that text.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// get fetches an API path (with its query) and returns the parsed JSON.
export async function get(path, params) {
  let url = 'api/v1/' + path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += '?' + s;
  }
  const resp = await fetch(url, {headers: {Accept: 'application/json'}, credentials: 'same-origin'});
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
