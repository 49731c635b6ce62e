// The REST API as the console uses it: the token from the tab's sessionStorage goes in the
// Authorization header of every call (never in a URL or a cookie).

const KEY = "fleet.token";
const RANKS = { viewer: 1, operator: 2, admin: 3 };
let me = null;

export class ApiError extends Error {
  constructor(status, detail, field) {
    super(detail);
    this.status = status;
    this.field = field;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => { sessionStorage.removeItem(KEY); me = null; },
};

export function identity() { return me; }

// {ok, why}: may the signed-in token do what needs `role`?
export function may(role, what) {
  const have = me ? me.role : "none";
  if (me && RANKS[have] >= RANKS[role]) return { ok: true, why: "" };
  return { ok: false, why: `${what} needs the ${role} role; this token is ${have}` };
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const t = token.get();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

async function failure(response) {
  let detail = `${response.status} ${response.statusText}`;
  let field = null;
  try {
    const problem = await response.json();
    detail = problem.detail || problem.title || detail;
    field = problem.field || null;
  } catch { /* not JSON */ }
  if (response.status === 401 && me) window.dispatchEvent(new CustomEvent("fleet:signed-out", { detail }));
  return new ApiError(response.status, detail, field);
}

export async function call(method, path, body, extra = {}) {
  const init = { method, headers: headers(extra), cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, body, extra) => call("POST", path, body, extra);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.append(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

// Sign in: the token is kept only if the API knows it.
export async function signIn(value) {
  token.set(value);
  try {
    me = await get("/v1/whoami");
    return me;
  } catch (err) {
    token.clear();
    throw err;
  }
}

export async function whoami() {
  if (!token.get()) return null;
  if (!me) me = await get("/v1/whoami");
  return me;
}

// Server-sent events read with fetch (EventSource cannot send a bearer header). Calls
// onEvent(name, data, id) per event; resumes with Last-Event-ID after a dropped connection and
// stops after `end` (or a 204: nothing follows) or when `signal` aborts.
export async function stream(path, onEvent, signal) {
  let last = null;
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (last) extra["Last-Event-ID"] = last;
      const response = await fetch(path, { headers: headers(extra), signal, cache: "no-store" });
      if (response.status === 204) return;
      if (!response.ok) throw await failure(response);
      attempt = 0;
      let ended = false;
      await readEvents(response.body, (name, data, id) => {
        if (id) last = id;
        if (name === "end") ended = true;
        onEvent(name, data, id);
      });
      if (ended) return;
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status < 500) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 500 * (attempt + 1))));
  }
}

async function readEvents(body, emit) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message", id = null;
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith(":")) continue;
        const at = line.indexOf(":");
        const field = at < 0 ? line : line.slice(0, at);
        const text = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
        else if (field === "id") id = text;
      }
      if (data.length) emit(name, JSON.parse(data.join("\n")), id);
    }
  }
}
