// Per-server schedules: the named schedules (config files and API), a form to create one, and a
// page per schedule with the servers tagged fleet-schedule=<name> and what it does now and next.
// An edit sends only what the user changed (PATCH, a JSON merge patch, with If-Match): a key the
// form does not show, or a value it shows but the user left alone, is never sent, so never lost.
import { call, get, may, post, query } from "./api.js";
import { badge, clear, confirming, guarded, h, message, row, table, when } from "./dom.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const path = (name) => `/v1/schedules/${encodeURIComponent(name)}`;
const words = (text) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
const problem = (err) => `${err.field && !err.message.startsWith(err.field) ? `${err.field}: ` : ""}${err.message}`;

function periodText(p) {
  const days = p.weekdays && p.weekdays.length ? ` ${p.weekdays.join(",")}` : " every day";
  return `${p.begintime || "00:00"}-${p.endtime || "24:00"}${days}`;
}

function nextText(list) {
  if (!list || !list.length) return "none";
  const t = list[0];
  return [`${t.state} at ${t.local.replace("T", " ").slice(0, 16)}`,
    t.note ? h("div", { class: "muted" }, t.note) : null];
}

function editable(s) {
  if (s.source !== "api") return { ok: false, why: "a schedule from a config file: edit the file to change it" };
  return may("admin", "Changing a schedule");
}

export function schedulesPage(main) {
  let stopped = false;
  const body = h("div", { id: "schedules", "aria-live": "polite" });
  const notice = h("div", { "aria-live": "polite" });
  clear(main, h("h1", {}, "Schedules"),
    h("p", { class: "muted" }, "A server tagged fleet-schedule=<name> is started and stopped by a schedule-mode ",
      "policy as its schedule says: running inside a period, stopped outside and on skip days."),
    notice, body, h("h2", {}, "New schedule"), scheduleForm({
      id: "new-schedule", check: may("admin", "Creating a schedule"), label: "Create schedule",
      save: async (spec) => {
        const s = await post("/v1/schedules", spec);
        clear(notice, message(`Schedule ${s.name} created: ${s.state_now} now.`, "info"));
        load();
      },
    }));

  async function remove(name) {
    try {
      await call("DELETE", path(name));
      clear(notice, message(`Schedule ${name} deleted.`, "info"));
      load();
    } catch (err) {
      clear(notice, message(problem(err)));
    }
  }

  function load() {
    get("/v1/schedules").then((out) => {
      if (stopped) return;
      clear(body, table(["schedule", "source", "time zone", "now", "next", "periods", ""],
        out.items.map((s) => row([
          h("a", { href: `#/schedules/${encodeURIComponent(s.name)}` }, s.name),
          s.source, s.spec.timezone, s.state_now ? badge(s.state_now) : "no longer valid",
          nextText(s.next_transitions), s.spec.periods.map((p) => h("div", {}, periodText(p))),
          confirming("Delete", editable(s), () => remove(s.name)),
        ])), "No schedule yet. Create one below, or add [[schedules]] to a policy file."));
    }).catch((err) => clear(body, message(err.message)));
  }
  load();
  return () => { stopped = true; };
}

// Weekdays as stored (mon..sun, full names, ranges mon-fri; [] = every day) -> the boxes to tick.
function dayset(weekdays) {
  const index = (text) => DAYS.findIndex((d) => text.trim().toLowerCase().startsWith(d));
  const out = new Set();
  for (const item of weekdays || []) {
    const [a, b] = item.split("-");
    const lo = index(a), hi = b === undefined ? lo : index(b);
    for (let i = lo; i >= 0 && i <= hi; i++) out.add(DAYS[i]);
  }
  return out;
}

const sameDays = (a, b) => a.size === b.size && [...a].every((d) => b.has(d));
const touched = (input) => input.value !== input.defaultValue; // the user changed what was prefilled

// Canonical JSON (keys sorted), to tell whether a value differs from the stored one.
function canon(value) {
  if (Array.isArray(value)) return `[${value.map(canon).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canon(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value === undefined ? null : value);
}

// The period each fieldset was prefilled from ({} for a new one): kept whole, so its keys the form
// does not show (a description) and the values the user left alone (weekdays as written, e.g.
// "mon-fri") go back unchanged.
const stored = new WeakMap();

// One period's fields, prefilled from `p` (a stored period).
function periodFieldset(n, p = {}, onRemove = null) {
  const id = (what) => `period-${n}-${what}`;
  const days = dayset(p.weekdays);
  const set = h("fieldset", { class: "period", dataset: { n: String(n) } },
    h("legend", {}, `Period ${n}`),
    h("div", { class: "field" }, h("label", { for: id("begin") }, "Begin"),
      h("input", { id: id("begin"), type: "text", placeholder: "08:00", class: "begin", value: p.begintime || "" }),
      h("small", { class: "muted" }, "HH:MM local; empty: the start of the day")),
    h("div", { class: "field" }, h("label", { for: id("end") }, "End"),
      h("input", { id: id("end"), type: "text", placeholder: "18:00", class: "end", value: p.endtime || "" }),
      h("small", { class: "muted" }, "HH:MM local, after the begin; empty: the end of the day")),
    h("div", { class: "field" }, h("span", {}, "Weekdays"), h("div", { class: "checks" },
      DAYS.map((d) => h("label", { class: "check" },
        h("input", { type: "checkbox", class: "day", value: d, checked: days.has(d), "aria-label": `period ${n} ${d}` }),
        ` ${d}`))),
    h("small", { class: "muted" }, "none checked: every day")),
    onRemove ? h("button", { type: "button", onclick: onRemove }, `Remove period ${n}`) : null);
  stored.set(set, p);
  return set;
}

// A period as the form holds it: the stored period with the fields the user changed written over.
function periodOf(set) {
  const base = stored.get(set) || {};
  const p = { ...base };
  for (const [key, cls] of [["begintime", "begin"], ["endtime", "end"]]) {
    const input = set.querySelector(`input.${cls}`);
    if (!touched(input)) continue;
    if (input.value.trim()) p[key] = input.value.trim();
    else delete p[key];
  }
  const days = [...set.querySelectorAll("input.day:checked")].map((i) => i.value);
  if (!sameDays(new Set(days), dayset(base.weekdays))) p.weekdays = days;
  return p;
}


// The periods' fieldsets, numbered 1..n; a period can be removed while more than one is left.
function periodList(initial) {
  const box = h("div", { id: "periods" });
  const sets = () => [...box.querySelectorAll("fieldset.period")];
  function render(list) {
    clear(box, list.map((p, i) => periodFieldset(i + 1, p, list.length > 1 ? () => {
      render(sets().map(periodOf).filter((_, j) => j !== i));
    } : null)));
  }
  render(initial.length ? initial : [{}]);
  return { box, read: () => sets().map(periodOf), add: () => render([...sets().map(periodOf), {}]) };
}

// The schedule form, for a new schedule (no `spec`) or an edit of a stored one (`spec` prefills
// every field; the name, the schedule's id, cannot change). `save(body)` sends the body: the
// whole schedule for a new one, the changes (a merge patch) for an edit; a refusal is shown under
// the form with the field it names. `cancel`: a button that calls it.
function scheduleForm({ id, spec = null, check, label, save, cancel = null }) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const el = {
    name: h("input", { id: "schedule-name", type: "text", required: true, placeholder: "office-hours",
      value: spec ? spec.name : "", readOnly: Boolean(spec) }),
    description: h("input", { id: "schedule-description", type: "text", value: spec ? spec.description : "" }),
    timezone: h("input", { id: "schedule-timezone", type: "text", value: spec ? spec.timezone : zone }),
    calendars: h("input", { id: "schedule-calendars", type: "text", placeholder: "de-holidays",
      value: spec ? spec.skip_calendars.join(", ") : "" }),
    dates: h("input", { id: "schedule-dates", type: "text", placeholder: "2026-12-24, 2026-12-31",
      value: spec ? spec.skip_dates.join(", ") : "" }),
  };
  const periods = periodList(spec ? spec.periods : []);
  const field = (text, input, hint) => h("div", { class: "field" }, h("label", { for: input.id }, text), input,
    hint ? h("small", { class: "muted" }, hint) : null);
  const status = h("div", { "aria-live": "polite" });

  function collect() {
    const body = { name: el.name.value.trim(), timezone: el.timezone.value.trim() || "UTC", periods: periods.read() };
    if (el.description.value.trim()) body.description = el.description.value.trim();
    if (words(el.calendars.value).length) body.skip_calendars = words(el.calendars.value);
    if (words(el.dates.value).length) body.skip_dates = words(el.dates.value);
    return body;
  }

  // What an edit changed: a JSON merge patch of the stored spec with only the fields the user
  // changed to another value (`periods`, a list, goes whole when one of its periods changed).
  function changes() {
    const now = { periods: periods.read() };
    if (touched(el.description)) now.description = el.description.value.trim();
    if (touched(el.timezone)) now.timezone = el.timezone.value.trim() || "UTC";
    if (touched(el.calendars)) now.skip_calendars = words(el.calendars.value);
    if (touched(el.dates)) now.skip_dates = words(el.dates.value);
    return Object.fromEntries(Object.entries(now).filter(([key, value]) => canon(value) !== canon(spec[key])));
  }

  async function submit() {
    clear(status);
    try {
      await save(spec ? changes() : collect());
      if (!spec) el.name.value = "";
    } catch (err) {
      clear(status, message(problem(err)));
    }
  }

  return h("form", { id, onsubmit: (e) => { e.preventDefault(); submit(); } },
    h("fieldset", {}, h("legend", {}, "Schedule"),
      field("Name", el.name, spec ? "the schedule's id: it cannot change" : "servers name it in their fleet-schedule tag"),
      field("Description", el.description),
      field("Time zone", el.timezone, "IANA name, e.g. Europe/Berlin"),
      field("Skip calendars", el.calendars, "holiday calendars ([calendars] in the configuration)"),
      field("Skip dates", el.dates, "YYYY-MM-DD, separated by commas")),
    periods.box,
    h("div", { class: "controls" },
      h("button", { type: "button", onclick: periods.add }, "Add period"),
      check.ok ? h("button", { type: "submit", class: "primary" }, label) : guarded(label, check, () => {}),
      cancel ? h("button", { type: "button", onclick: cancel }, "Cancel") : null),
    status);
}

export function schedulePage(main, name) {
  let stopped = false;
  const head = h("div"), notice = h("div", { "aria-live": "polite" });
  const next = h("div", { id: "transitions" }), servers = h("div", { id: "schedule-servers" });
  clear(main, head, notice, h("h2", {}, "Next changes"), next, h("h2", {}, "Servers tagged with it"), servers);

  async function remove() {
    try {
      await call("DELETE", path(name));
      location.hash = "#/schedules";
    } catch (err) {
      clear(notice, message(problem(err)));
    }
  }

  // Only the changed keys, with PATCH and If-Match of the version shown: a change made meanwhile
  // elsewhere is refused (409) and said so, never written over.
  async function save(s, patch) {
    if (!Object.keys(patch).length) {
      clear(notice, message(`Nothing to save: the form is as version ${s.version}.`, "info"));
      return;
    }
    try {
      const out = await call("PATCH", path(name), patch, { "If-Match": `"${s.version}"` });
      clear(notice, message(`Saved: version ${out.version}, ${out.state_now || "no longer valid"} now.`, "info"));
      load();
    } catch (err) {
      if (err.status !== 409) throw err;
      throw new Error(`Not saved (409): the schedule was changed elsewhere after this page loaded version `
        + `${s.version} (${err.message}). Reload the page to edit the current version.`);
    }
  }

  function editor(s) {
    const check = editable(s);
    const place = h("div", { id: "edit" });
    const open = () => {
      clear(notice);
      clear(place, h("h2", {}, "Edit"), h("p", { class: "muted" },
        `Saved only if the schedule is still at version ${s.version}.`), scheduleForm({
        id: "edit-schedule", spec: s.spec, check, label: "Save changes", save: (spec) => save(s, spec),
        cancel: () => clear(place),
      }));
    };
    return [guarded("Edit", check, open), place];
  }

  function show(s) {
    const spec = s.spec;
    const [edit, form] = editor(s);
    clear(head,
      h("h1", {}, s.name, " ", h("span", { class: "muted" }, `${s.source} schedule, version ${s.version}`)),
      spec.description ? h("p", {}, spec.description) : null,
      h("dl", { class: "facts" },
        h("dt", {}, "time zone"), h("dd", {}, spec.timezone),
        h("dt", {}, "now"), h("dd", { id: "state-now" }, s.state_now || "no longer valid"),
        h("dt", {}, "periods"), h("dd", { id: "periods-now" }, spec.periods.map((p) => h("div", {}, periodText(p)))),
        h("dt", {}, "skip calendars"), h("dd", {}, spec.skip_calendars.join(", ") || "none"),
        h("dt", {}, "skip dates"), h("dd", {}, spec.skip_dates.join(", ") || "none")),
      h("div", { class: "controls" }, h("a", { href: "#/schedules" }, "All schedules"), edit,
        confirming("Delete", editable(s), remove)),
      form);
    clear(next, table(["when", "local time", "from then on", "note"], s.next_transitions.map((t) => row([
      when(t.at), t.local.replace("T", " "), badge(t.state), t.note || ""])), "No change ahead."));
  }

  async function load() {
    try {
      const s = await get(path(name));
      if (stopped) return;
      show(s);
      const pv = await get(`${path(name)}/preview${query({ n: 2 })}`);
      if (stopped) return;
      clear(servers,
        h("p", { id: "tagged" }, `${pv.tagged} server${pv.tagged === 1 ? "" : "s"} tagged fleet-schedule=${name}; `,
          `the schedule wants them ${pv.state_now} now.`),
        table(["endpoint", "server", "status", "desired now", "action now", "next"], pv.servers.map((v) => row([
          v.endpoint, [v.name, h("div", { class: "muted" }, v.server_id)], badge(v.status), v.desired_now,
          v.action_now || "none", nextText(v.next_transitions)])), "No server carries this schedule's tag."),
        pv.truncated ? h("p", { class: "muted" }, "More servers are tagged than shown.") : null);
    } catch (err) {
      clear(notice, message(err.message));
    }
  }
  load();
  return () => { stopped = true; };
}
