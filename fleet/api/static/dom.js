// Building the page from data: every value becomes a text node (textContent), never markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export function when(value) {
  if (!value) return "—";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

export function seconds(value) {
  if (value === null || value === undefined) return "unknown";
  const s = Math.round(value);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// A state shown by its word and a colour (the class), never by colour alone.
export function badge(state) {
  return h("span", { class: `state state-${String(state).replace(/[^a-z_]/g, "")}` }, state);
}

// Counts by state: every state the API returns, in its order; zeros left out unless all are.
export function counts(map) {
  const entries = Object.entries(map || {}).filter(([, n]) => n > 0);
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return h("span", { class: "counts" },
    entries.map(([state, n]) => h("span", { class: `count state-${state.replace(/[^a-z_]/g, "")}` },
      `${state} ${n}`)));
}

export function progressBar(progress) {
  const pct = progress ? Math.round(progress.percent) : 0;
  const label = progress ? `${progress.done} of ${progress.total} done (${pct}%)` : "not planned yet";
  return h("span", { class: "progress" },
    h("progress", { max: 100, value: pct, "aria-label": label }),
    h("span", { class: "progress-text" }, label));
}

export function table(headers, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
}

export function row(cells) {
  return h("tr", {}, cells.map((c) => h("td", {}, c)));
}

export function message(text, kind = "error") {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// A button that may be unavailable: disabled, with the reason written next to it (and as its
// title), so a viewer sees why it cannot press it. `check` is {ok, why}.
export function guarded(label, check, onclick) {
  const button = h("button", { type: "button", onclick, disabled: !check.ok }, label);
  if (check.ok) return button;
  button.title = check.why;
  return h("span", { class: "guarded" }, button, h("span", { class: "why" }, check.why));
}

// A button that asks once more before it acts (no browser dialog: the second press confirms).
export function confirming(label, check, act) {
  const holder = h("span", { class: "controls" });
  const first = () => clear(holder,
    h("button", { type: "button", class: "primary", onclick: act }, `Confirm: ${label.toLowerCase()}`),
    h("button", { type: "button", onclick: () => clear(holder, guarded(label, check, first)) }, "Keep it"));
  return clear(holder, guarded(label, check, first));
}
