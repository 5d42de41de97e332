// The dashboard's one door to the server: the public API (/v1/...), with the session
// cookie the login page obtained. Writes carry the dashboard's header, which the server
// requires of cookie writes (a page of another site cannot send it).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function request(method, path, body) {
  return (await send(method, path, body)).json;
}

// A page of a listing: its items and X-Total-Count (how many match over all pages).
export async function page(path) {
  const { json, response } = await send('GET', path);
  return { items: json, total: Number(response.headers.get('x-total-count') ?? json.length) };
}

async function send(method, path, body) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-jobs-dashboard'] = '1';
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `the server cannot be reached (${e.message})`);
  }
  if (response.status === 204) return { json: null, response };
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!response.ok) {
    const message = (json && json.error && json.error.message) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return { json, response };
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);

export const session = () => get('/v1/session');
export const login = (token) => post('/v1/session', { token });
export const logout = () => request('DELETE', '/v1/session');
