// Scheduled policies: next and last fires, a preview, run now; for admins create, edit (the spec
// as JSON, replaced with If-Match), enable/disable and delete of the policies made through the API.
// An action on a policy's page redraws only what it changed (the policy's state, its fires, its
// next fires), never the editor: an edit in progress survives it.
import { call, get, may, post } from "./api.js";
import { badge, clear, confirming, guarded, h, message, row, table, when } from "./dom.js";

const path = (name) => `/v1/policies/${encodeURIComponent(name)}`;
const problem = (err) => `${err.field ? `${err.field}: ` : ""}${err.message}`;
const opLink = (id) => (id ? h("a", { href: `#/operations/${encodeURIComponent(id)}` }, id.slice(0, 8)) : "—");

function what(spec) {
  return spec.mode === "normal" ? spec.action : `${spec.mode}${spec.action ? ` ${spec.action}` : ""}`;
}

function nextFire(p) {
  if (!p.spec.enabled) return "disabled";
  if (!p.next_fire) return "none";
  return [when(p.next_fire.at), p.next_fire.note ? h("div", { class: "muted" }, p.next_fire.note) : null];
}

function lastFire(f) {
  if (!f) return "never";
  return [badge(f.outcome), " ", when(f.scheduled_at), " ", opLink(f.operation_id),
    f.outcome_reason ? h("div", { class: "muted" }, f.outcome_reason) : null];
}

export function policiesPage(main) {
  let stopped = false;
  const body = h("div", { "aria-live": "polite" });
  clear(main, h("h1", {}, "Policies"), body, h("h2", {}, "New policy"), policyForm());
  get("/v1/policies").then((out) => {
    if (stopped) return;
    clear(body, table(["policy", "enabled", "schedule", "does", "next fire", "last fire"],
      out.items.map((p) => row([
        h("a", { href: `#/policies/${encodeURIComponent(p.id)}` }, p.id),
        p.spec.enabled ? "yes" : "no",
        `${p.spec.cron} (${p.spec.timezone})`,
        what(p.spec),
        nextFire(p),
        lastFire(p.last_fire),
      ])), "No policy yet. Create one below, or add [[policies]] to a policy file."));
  }).catch((err) => clear(body, message(err.message)));
  return () => { stopped = true; };
}

const TEMPLATE = {
  name: "", description: "", cron: "0 20 * * 1-5", timezone: "UTC", action: "stop",
  targets: { endpoints: [], tags_all: { env: "dev" } },
};

function specArea(id, spec) {
  return h("textarea", { id, rows: 14, cols: 70, spellcheck: "false", class: "code" },
    JSON.stringify(spec, null, 2));
}

function parsed(area) {
  try {
    return JSON.parse(area.value);
  } catch (err) {
    throw new Error(`not valid JSON: ${err.message}`);
  }
}

// A policy as JSON, the body of POST /v1/policies (docs/policies.md lists every key).
function policyForm() {
  const check = may("admin", "Creating a policy");
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const area = specArea("new-policy-spec", { ...TEMPLATE, timezone: zone });
  const status = h("div", { "aria-live": "polite" });
  async function create() {
    clear(status);
    try {
      const p = await post("/v1/policies", parsed(area));
      location.hash = `#/policies/${encodeURIComponent(p.id)}`;
    } catch (err) {
      clear(status, message(problem(err)));
    }
  }
  return h("form", { id: "new-policy", onsubmit: (e) => { e.preventDefault(); create(); } },
    h("div", { class: "field" }, h("label", { for: area.id }, "Policy (JSON)"), area,
      h("small", { class: "muted" }, "name, cron, timezone, action or mode, targets, params, strategy… ",
        "as in a policy file")),
    h("div", { class: "controls" }, check.ok ? h("button", { type: "submit", class: "primary" }, "Create policy")
      : guarded("Create policy", check, () => {})),
    status);
}

const slotsTable = (slots) => table(["when", "local time", "fires?"], slots.map((s) => row([when(s.at),
  s.local.replace("T", " "), s.fires ? "fires" : `skipped: ${s.skipped_reason}`])), "No fire ahead.");

const firesTable = (items) => table(["slot", "trigger", "by", "outcome", "targets", "operation"],
  items.map((f) => row([when(f.scheduled_at), f.trigger, f.by,
    [badge(f.outcome), f.outcome_reason ? h("div", { class: "muted" }, f.outcome_reason) : null],
    String(f.targets), opLink(f.operation_id)])), "No fire yet.");

// The editor of a policy's spec, built once per page. The edit begins from one version (`base`) and
// is saved with If-Match of that version, so any change made since (by an action on this page or
// elsewhere) is refused (409), never written over. When the policy moves on, an untouched editor
// follows it; an edited one keeps its text and says at once that its save would be refused.
function specEditor(check, onSaved, onConflict) {
  let base = null;
  const area = specArea("policy-spec", {});
  const hint = h("small", { class: "muted" });
  const result = h("div", { "aria-live": "polite" }), drift = h("div", { id: "edit-drift", "aria-live": "polite" });
  const text = (p) => JSON.stringify(p.spec, null, 2);
  const edited = () => base !== null && area.value !== text(base);
  const node = h("details", { id: "edit" }, h("summary", {}, "Edit"),
    h("div", { class: "field" }, h("label", { for: area.id }, "Policy (JSON)"), area, hint),
    h("div", { class: "controls" }, guarded("Save changes", check, save)), result, drift);

  function begin(p) {
    base = p;
    area.value = text(p);
    clear(hint, `saved only if the policy is still at version ${p.version}`);
    clear(result);
    clear(drift);
  }

  function follow(p) {
    if (base === null || (!edited() && p.version !== base.version)) return begin(p);
    if (p.version === base.version) return clear(drift);
    clear(drift, message(`The policy is now at version ${p.version}; this edit began at version `
      + `${base.version}, so saving it would be refused (409). Your text is kept: copy what you changed, `
      + `start again from version ${p.version} and apply it there.`),
    h("div", { class: "controls" },
      h("button", { type: "button", onclick: () => begin(p) }, `Start again from version ${p.version}`)));
  }

  async function save() {
    clear(result);
    try {
      const p = await call("PUT", path(base.id), parsed(area), { "If-Match": String(base.version) });
      begin(p);
      clear(result, message(`Saved: version ${p.version}.`, "info"));
      onSaved();
    } catch (err) {
      if (err.status !== 409) return clear(result, message(problem(err)));
      clear(result, message(`Not saved (409): the policy changed after this edit began at version `
        + `${base.version} (${err.message}).`));
      onConflict();
    }
  }
  return { node, follow };
}

export function policyPage(main, name) {
  let stopped = false, editor = null;
  const head = h("div"), notice = h("div", { "aria-live": "polite" }), editing = h("div");
  const preview = h("div", { id: "preview" }), fires = h("div", { id: "fires" });
  clear(main, head, notice, editing, h("h2", {}, "Next fires"), preview, h("h2", {}, "Last fires"), fires);

  // The parts of the page, each read and redrawn on its own.
  const parts = {
    state: async () => {
      const p = await get(path(name));
      if (!stopped) show(p);
    },
    next: async () => {
      const pv = await get(`${path(name)}/preview?n=10&servers=0`);
      if (!stopped) clear(preview, slotsTable(pv.slots));
    },
    fired: async () => {
      const fl = await get(`${path(name)}/fires?limit=20`);
      if (!stopped) clear(fires, firesTable(fl.items));
    },
  };

  async function refresh(...names) {
    try {
      await Promise.all(names.map((n) => parts[n]()));
    } catch (err) {
      if (!stopped) clear(notice, message(err.message));
    }
  }

  function show(p) {
    const admin = may("admin", "Changing a policy");
    const toggle = p.source === "api" ? admin
      : { ok: false, why: "a policy from a config file: edit the file to change it" };
    if (!editor) {
      editor = specEditor(toggle, () => refresh("state", "next"), () => refresh("state"));
      clear(editing, editor.node);
    }
    clear(head,
      h("h1", {}, p.id, " ", h("span", { class: "muted" }, `${p.source} policy, version ${p.version}`)),
      p.spec.description ? h("p", {}, p.spec.description) : null,
      h("dl", { class: "facts" },
        h("dt", {}, "schedule"), h("dd", {}, `${p.spec.cron} (${p.spec.timezone})`),
        h("dt", {}, "does"), h("dd", {}, what(p.spec)),
        h("dt", {}, "enabled"), h("dd", { id: "enabled" }, p.spec.enabled ? "yes" : "no"),
        h("dt", {}, "next fire"), h("dd", {}, nextFire(p)),
        h("dt", {}, "last fire"), h("dd", {}, lastFire(p.last_fire))),
      h("div", { class: "controls" },
        guarded("Run now", may("operator", "Running a policy"), () => runNow(p)),
        guarded(p.spec.enabled ? "Disable" : "Enable", toggle, () => setEnabled(p, !p.spec.enabled)),
        confirming("Delete", toggle, () => remove(p))));
    editor.follow(p);
  }

  async function remove(p) {
    try {
      await call("DELETE", path(p.id));
      location.hash = "#/policies";
    } catch (err) {
      clear(notice, message(problem(err)));
    }
  }

  async function runNow(p) {
    try {
      const out = await post(`${path(p.id)}/run`);
      const f = out.fire;
      clear(notice, h("p", { class: "message info", role: "status", id: "run-result" },
        `${out.created ? "Fired" : "This minute had fired already"}: ${f.outcome}`,
        f.outcome_reason ? ` (${f.outcome_reason})` : "", " ", opLink(f.operation_id)));
      refresh("state", "fired");
    } catch (err) {
      clear(notice, message(err.message));
    }
  }

  async function setEnabled(p, enabled) {
    try {
      await call("PATCH", path(p.id), { enabled }, { "If-Match": String(p.version) });
      clear(notice, message(`${enabled ? "Enabled" : "Disabled"}.`, "info"));
      refresh("state", "next");
    } catch (err) {
      clear(notice, message(problem(err)));
    }
  }

  refresh("state", "next", "fired");
  return () => { stopped = true; };
}
