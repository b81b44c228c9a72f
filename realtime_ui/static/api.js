// A small fetch wrapper for the cityhub JSON API (docs/api.md).
//
// - JSON in and out, cookies on the same origin only.
// - Keeps the CSRF token (from the login answer or GET /api/auth/me) and sends it as X-CSRF-Token
//   on every non-GET request; a request refused with csrf_failed is retried once with a fresh token.
// - A refused request throws an ApiError carrying .code, .status, .details (and .retryAfter for 429).
// - A 401 sends the browser to /login?next=<this page> (unless { redirectOn401: false }).

const CSRF_KEY = "cityhub.csrf";

let csrfToken = readStoredToken();

function readStoredToken() {
  try {
    return sessionStorage.getItem(CSRF_KEY);
  } catch {
    return null;
  }
}

export function setCsrfToken(token) {
  csrfToken = token || null;
  try {
    if (csrfToken) sessionStorage.setItem(CSRF_KEY, csrfToken);
    else sessionStorage.removeItem(CSRF_KEY);
  } catch {
    // storage may be disabled; the in-memory copy is enough for this page
  }
}

export function getCsrfToken() {
  return csrfToken;
}

export class ApiError extends Error {
  constructor(message, { code = "error", status = 0, details = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

const STATUS_MESSAGES = {
  400: "请求格式有误",
  401: "登录已过期，请重新登录",
  403: "没有权限执行此操作",
  404: "未找到该记录",
  409: "操作冲突，请刷新后重试",
  413: "内容过大",
  415: "不支持的文件类型",
  422: "填写的内容有误",
  429: "操作过于频繁，请稍后再试",
  500: "服务器内部错误",
  502: "服务暂时不可用，请稍后重试",
  503: "服务暂时不可用，请稍后重试",
  504: "服务响应超时，请稍后重试",
};

/** Build a query string; arrays repeat the key, empty values are left out. */
export function toQuery(params) {
  const qs = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    if (Array.isArray(value)) {
      for (const v of value) if (v !== undefined && v !== null && v !== "") qs.append(key, String(v));
    } else {
      qs.append(key, String(value));
    }
  }
  const s = qs.toString();
  return s ? `?${s}` : "";
}

export function loginUrl() {
  const here = location.pathname + location.search + location.hash;
  return `/login?next=${encodeURIComponent(here)}`;
}

/**
 * Call the API.
 * @param {string} path  e.g. "/api/cases"
 * @param {{method?: string, body?: any, form?: FormData, query?: object,
 *          redirectOn401?: boolean, signal?: AbortSignal}} [opts]
 */
export async function api(path, opts = {}) {
  const { method = "GET", body, form, query, redirectOn401 = true, signal } = opts;
  const upper = method.toUpperCase();
  const send = async () => {
    const headers = { Accept: "application/json" };
    let payload;
    if (form !== undefined) {
      payload = form; // the browser sets the multipart boundary
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (upper !== "GET" && upper !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
    return fetch(path + toQuery(query), {
      method: upper,
      headers,
      body: payload,
      credentials: "same-origin",
      signal,
    });
  };

  let resp;
  try {
    resp = await send();
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError("网络连接失败，请检查网络后重试", { code: "network_error" });
  }

  if (resp.status === 403 && upper !== "GET") {
    const err = await toError(resp);
    if (err.code !== "csrf_failed") throw err;
    // The token went stale (a new login in another tab): fetch a fresh one and try once more.
    await refreshCsrf();
    try {
      resp = await send();
    } catch {
      throw new ApiError("网络连接失败，请检查网络后重试", { code: "network_error" });
    }
  }

  if (resp.ok) {
    if (resp.status === 204) return null;
    const type = resp.headers.get("Content-Type") || "";
    if (!type.includes("json")) return resp;
    const data = await resp.json();
    if (data && typeof data === "object" && typeof data.csrf_token === "string") {
      setCsrfToken(data.csrf_token);
    }
    return data;
  }

  const err = await toError(resp);
  if (resp.status === 401 && redirectOn401) {
    setCsrfToken(null);
    location.assign(loginUrl());
  }
  throw err;
}

async function toError(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  const e = body && typeof body === "object" ? body.error : null;
  const retry = resp.headers.get("Retry-After");
  return new ApiError(
    (e && typeof e.message === "string" && e.message) ||
      STATUS_MESSAGES[resp.status] ||
      `请求失败（${resp.status}）`,
    {
      code: (e && e.code) || `http_${resp.status}`,
      status: resp.status,
      details: (e && e.details) || null,
      retryAfter: retry && /^\d+$/.test(retry) ? Number(retry) : null,
    },
  );
}

async function refreshCsrf() {
  const me = await api("/api/auth/me");
  return me;
}

// ---- convenience calls -------------------------------------------------------------------------

export function login(username, password) {
  return api("/api/auth/login", {
    method: "POST",
    body: { username, password },
    redirectOn401: false,
  });
}

export async function logout() {
  try {
    await api("/api/auth/logout", { method: "POST", redirectOn401: false });
  } finally {
    setCsrfToken(null);
  }
}

/** The signed-in user ({user, csrf_token}); redirects to /login when there is no session. */
export function me() {
  return api("/api/auth/me");
}

/** Upload photos (a FileList or array of File); returns the attachment ids. */
export async function uploadFiles(files, kind) {
  const list = Array.from(files || []);
  if (list.length === 0) return [];
  const form = new FormData();
  for (const f of list) form.append("file", f, f.name);
  if (kind) form.append("kind", kind);
  const res = await api("/api/attachments", { method: "POST", form });
  return (res.items || []).map((a) => a.id);
}
