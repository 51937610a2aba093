// The JSON API as the console uses it: every request carries the API key (when one is set) in
// the `Authorization` header, never in a URL. The key lives in sessionStorage: this tab only,
// gone when the tab closes.

import { openStream } from "./sse.js";

const KEY_ITEM = "jobsvc.apiKey";
export const keyEvents = new EventTarget();

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
  keyEvents.dispatchEvent(new Event("change"));
}

export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** An answer that is not 2xx: `status`, and the problem document (RFC 9457) when there is one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `the server answered ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** Call the API; resolves to the parsed body (or text), rejects with ApiError. A 401 asks for a key. */
export async function api(path, { method = "GET", body, accept = "application/json" } = {}) {
  const headers = { Accept: accept, ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    throw new ApiError(0, { title: "Network error", detail: `the service could not be reached (${error.message})` });
  }
  const type = response.headers.get("content-type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    if (response.status === 401) keyEvents.dispatchEvent(new Event("needed"));
    throw new ApiError(response.status, typeof payload === "object" ? payload : { detail: payload });
  }
  return payload;
}

/** A live event stream with the key in a header; see sse.js. A 401 asks for a key and stops. */
export function stream(path, options) {
  return openStream(path, {
    ...options,
    headers: authHeaders,
    onError(error) {
      if (error.status === 401) keyEvents.dispatchEvent(new Event("needed"));
      if (options.onError) return options.onError(error);
      return !(error.status >= 400 && error.status < 500);
    },
  });
}
