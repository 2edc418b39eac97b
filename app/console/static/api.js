// The console's only way to the server: /api/v1 with the session cookie and, on every
// unsafe request, the CSRF cookie's value echoed in X-CSRF-Token (API.md, Authentication).

const BASE = "/api/v1";
export const LOGIN_PAGE = "/console/login";

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.retryAfter = retryAfter;
  }

  get code() {
    return this.problem.code;
  }

  // What to show next to what caused it: the problem's detail; for 429, when to retry.
  describe() {
    if (this.status === 429) {
      const seconds = Number.parseInt(this.retryAfter || "", 10);
      return Number.isFinite(seconds)
        ? `Too many requests. Try again in ${seconds} seconds.`
        : "Too many requests. Try again in a minute.";
    }
    if (this.status === 0) return "The server could not be reached. Try again.";
    return this.problem.detail || this.problem.title || `The request failed (${this.status}).`;
  }

  // Validation errors by the body field they name (`loc`: ["body", "email"]).
  fieldErrors() {
    const found = {};
    for (const error of this.problem.errors || []) {
      const loc = error.loc || [];
      if (loc[0] === "body" && loc.length > 1) {
        const name = loc.slice(1).join(".");
        found[name] = found[name] ? `${found[name]} ${error.msg}` : error.msg;
      }
    }
    return found;
  }
}

export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "portcullis_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

export function toLogin() {
  if (window.location.pathname !== LOGIN_PAGE) window.location.assign(LOGIN_PAGE);
}

function failed(status, problem, retryAfter, allow401) {
  if (status === 401 && !allow401) toLogin();
  return new ApiError(status, problem, retryAfter);
}

// `allow401`: a 401 is this call's answer (a wrong password or code), not a lost session.
export async function api(method, path, body, { allow401 = false } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let response;
  try {
    response = await fetch(BASE + path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, {}, null);
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw failed(response.status, data, response.headers.get("Retry-After"), allow401);
  }
  return data;
}

// Every item of a cursor-paginated list (a bounded number of pages).
export async function all(path, maxPages = 20) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const sep = path.includes("?") ? "&" : "?";
    const data = await api("GET", `${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...(data.items || []));
    cursor = data.next_cursor;
    if (!cursor) break;
  }
  return items;
}

// A multipart upload with the browser's own progress events (fetch has none for bodies).
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", BASE + path);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.setRequestHeader("Accept", "application/json, application/problem+json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(Math.round((event.loaded / event.total) * 100));
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(failed(xhr.status, data, xhr.getResponseHeader("Retry-After"), false));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, {}, null)));
    const body = new FormData();
    body.append("file", file, file.name);
    xhr.send(body);
  });
}

export function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

// Poll a job until it is done; its result, or an ApiError with its error.
export async function waitForJob(jobId, { interval = 1000, tries = 120 } = {}) {
  for (let i = 0; i < tries; i += 1) {
    const job = await api("GET", `/jobs/${jobId}`);
    if (job.status === "succeeded") return job.result;
    if (job.status === "failed") {
      throw new ApiError(500, { detail: (job.error && job.error.detail) || "The job failed." });
    }
    await sleep(interval);
  }
  throw new ApiError(504, { detail: "The job is taking long; check again later." });
}
