// The console's one door to the gateway: every call goes to this gateway's own public API with the key
// the user signed in with, as any client would. Also the few DOM helpers every panel uses.

export const state = { key: null, admin: false, models: [] };

export const $ = (id) => document.getElementById(id);

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.param = error?.param || null;
    this.code = error?.code || null;
  }
}

// body: undefined, a FormData (sent as multipart) or anything JSON; as: "json" (default), "text", "blob" or
// "response" (the Response itself, for a caller that reads its body as a stream); a refusal is an ApiError
export async function api(method, path, body, { key = state.key, as = "json" } = {}) {
  const headers = { authorization: `Bearer ${key}` };
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError(0, { message: `The gateway could not be reached (${err.message}).` });
  }
  if (res.ok && as === "response") return res;
  if (res.ok && as === "blob") return res.blob();
  const text = await res.text();
  if (res.ok && as === "text") return text;
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, data?.error || { message: text || res.statusText });
  return data;
}

// Shows an API error (status, message, the parameter it names) in an alert box; null hides the box.
export function showError(box, err) {
  box.replaceChildren();
  if (!err) { box.hidden = true; return; }
  const head = document.createElement("strong");
  head.textContent = err.status ? `Error ${err.status}` : "Error";
  const msg = document.createElement("span");
  msg.className = "message";
  msg.textContent = ` ${err.message}`;
  box.append(head, msg);
  if (err.param) {
    const p = document.createElement("span");
    p.className = "param";
    p.textContent = ` (parameter: ${err.param})`;
    box.append(p);
  }
  box.hidden = false;
}

// An element with text and attributes: el("td", "3", { className: "mono" }).
export function el(tag, text, props = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [name, value] of Object.entries(props)) {
    if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  return node;
}

// Sets a node's text only when it changed (no needless redraw or screen-reader announcement).
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// A <dt>/<dd> pair in a <dl>, left out when the value says nothing (empty, or an empty list or object).
export function fact(list, name, value) {
  if (value === null || value === undefined || value === "") return;
  if (typeof value === "object" && !Object.keys(value).length) return;
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  list.append(el("dt", name), el("dd", text));
}

export function option(value, label) {
  return el("option", label, { value });
}

export function cell(text) {
  return el("td", text);
}

export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

export function usd(value) {
  return value === null || value === undefined ? "" : `$${value}`;
}
