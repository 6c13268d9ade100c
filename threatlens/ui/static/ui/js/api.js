// REST calls with the session cookie and Django's CSRF token; errors as ApiError.

export class ApiError extends Error {
  constructor(status, body) {
    super(errorText(status, body));
    this.status = status;
    this.body = body;
  }

  /** Field errors of a 400 answer: {field: [messages]} (DRF shape or `errors`). */
  get fieldErrors() {
    const body = this.body;
    if (!body || typeof body !== "object") return {};
    const source = body.errors && typeof body.errors === "object" ? body.errors : body;
    const result = {};
    for (const [key, value] of Object.entries(source)) {
      if (["detail", "error_code", "current"].includes(key)) continue;
      if (Array.isArray(value)) result[key] = value.map(String);
      else if (typeof value === "string") result[key] = [value];
    }
    return result;
  }
}

function errorText(status, body) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") return body.detail;
    if (typeof body.message === "string") return body.message;
    for (const value of Object.values(body)) {
      if (Array.isArray(value) && value.length) return String(value[0]);
    }
  }
  if (status === 0) return "The server could not be reached.";
  return `The server answered ${status}.`;
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export function withParams(url, params) {
  const target = new URL(url, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) for (const item of value) target.searchParams.append(key, item);
    else target.searchParams.set(key, value);
  }
  return target.pathname + target.search;
}

export async function request(method, url, { params, body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(withParams(url, params), {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (response.status === 401) {
    // The session is gone: log in again and come back here.
    const next = encodeURIComponent(location.pathname + location.search);
    location.assign(`/login/?next=${next}`);
    throw new ApiError(401, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (url, params) => request("GET", url, { params });
export const post = (url, body) => request("POST", url, { body: body ?? {} });
export const patch = (url, body) => request("PATCH", url, { body });
export const put = (url, body) => request("PUT", url, { body });
export const del = (url, params) => request("DELETE", url, { params });

/** Every item of a paginated list (follows `next`, up to `limit` items). */
export async function getAll(url, params, limit = 1000) {
  const items = [];
  let page = await get(url, params);
  for (;;) {
    items.push(...(page.results || []));
    if (!page.next || items.length >= limit) return items.slice(0, limit);
    const next = new URL(page.next, location.origin);
    page = await get(next.pathname + next.search);
  }
}
