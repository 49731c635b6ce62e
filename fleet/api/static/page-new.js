// A new operation: the form, then the dry-run plan, and only then a "run" button.
import { get, may, post } from "./api.js";
import { clear, guarded, h, message, row, seconds, table } from "./dom.js";

function enumOf(doc, schema, prop) {
  const schemas = doc.components.schemas;
  let node = schemas[schema].properties[prop];
  if (node.items) node = node.items;
  if (node.$ref) node = schemas[node.$ref.split("/").pop()];
  return node.enum || [];
}

const pairs = (text) => Object.fromEntries(text.split(",").map((p) => p.trim()).filter(Boolean)
  .map((p) => { const at = p.indexOf("="); return at < 0 ? [p, ""] : [p.slice(0, at).trim(), p.slice(at + 1).trim()]; }));
const list = (text) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
const waves = (text) => list(text).map((w) => (/^\d+$/.test(w) ? Number(w) : w));

function field(label, input, hint) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input,
    hint ? h("small", { class: "muted" }, hint) : null);
}

function quotaView(quota) {
  if (!quota || !quota.length) return null;
  return h("section", { id: "plan-quota" },
    h("h3", {}, "Quota, as the cloud reports it"),
    table(["endpoint", "used", "limit", "room", "this create adds"],
      quota.map((q) => row([q.endpoint, String(q.used), String(q.limit), String(q.room), String(q.requested)]))));
}

function planView(plan, quota) {
  if (!plan) return h("div", {}, message("Still planning: the plan will show on the operation.", "info"), quotaView(quota));
  const skipped = Object.entries(plan.skipped_by_reason).map(([r, n]) => `${n} ${r}`).join("; ");
  return h("section", { id: "plan", class: "plan" },
    h("h2", {}, "Plan"),
    plan.refused_reason ? message(`Refused: ${plan.refused_reason}`) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "targets"), h("dd", { id: "plan-targets" }, String(plan.targets)),
      h("dt", {}, "skipped"), h("dd", {}, `${plan.skipped}${skipped ? ` (${skipped})` : ""}`),
      h("dt", {}, "waves"), h("dd", {}, plan.waves.length ? plan.waves.join(", ") : "one"),
      h("dt", {}, "ETA"), h("dd", {}, seconds(plan.eta_seconds))),
    table(["rate key", "servers", "batches", "calls", "budgets", "sending"],
      plan.rate_keys.map((k) => row([k.rate_key, String(k.servers), String(k.batches), String(k.calls),
        k.budgets.join(", "), seconds(k.send_seconds)])), "No call to make."),
    quotaView(quota));
}

export function newOperationPage(main) {
  const ctl = new AbortController();
  const status = h("div", { "aria-live": "polite" });
  clear(main, h("h1", {}, "New operation"), status);
  Promise.all([get("/openapi.json"), get("/v1/endpoints")]).then(([doc, eps]) => {
    if (!ctl.signal.aborted) build(main, doc, eps.items, status);
  }).catch((err) => clear(status, message(err.message)));
  return () => ctl.abort();
}

function build(main, doc, endpoints, status) {
  const el = {
    action: h("select", { id: "action" }, enumOf(doc, "CreateOperationIn", "action").map((a) => h("option", { value: a }, a))),
    ids: h("textarea", { id: "ids", rows: 2 }),
    tags: h("input", { id: "tags", type: "text", placeholder: "role=web, env=dev" }),
    name: h("input", { id: "name", type: "text", placeholder: "web-*" }),
    type: h("select", { id: "type" }, ["", "SOFT", "HARD"].map((t) => h("option", { value: t }, t || "default"))),
    flavor: h("select", { id: "flavor" }, h("option", { value: "" }, "pick endpoints first")),
    setTags: h("input", { id: "set-tags", type: "text", placeholder: "owner=ops" }),
    inFlight: h("input", { id: "max-in-flight", type: "number", min: 1 }),
    maxErrors: h("input", { id: "max-errors", type: "text", placeholder: "3 or 10%" }),
    waves: h("input", { id: "waves", type: "text", placeholder: "1, 10%, 100%" }),
    pause: h("input", { id: "pause-after-wave", type: "checkbox" }),
    reason: h("input", { id: "reason", type: "text" }),
    // a create's request (decision D40): where the servers come from and what they are called
    count: h("input", { id: "count", type: "number", min: 1 }),
    template: h("input", { id: "server-name", type: "text", placeholder: "web-{n:03d}" }),
    image: h("input", { id: "image", type: "text" }),
    network: h("input", { id: "network", type: "text" }),
    vpc: h("input", { id: "vpc", type: "text" }),
    zone: h("input", { id: "zone", type: "text" }),
    password: h("input", { id: "admin-password", type: "text", placeholder: "env:NAME or file:PATH" }),
  };
  const epBoxes = endpoints.map((e) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "endpoint", value: e.name, onchange: flavors }), ` ${e.name} (${e.provider})`));
  const statusBoxes = enumOf(doc, "TargetsIn", "statuses").map((s) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "status", value: s }), ` ${s}`));
  const planned = h("div"), runArea = h("div", { id: "run-area" });
  const check = may("operator", "Planning and running an operation");
  let body = null;

  function collect(dryRun) {
    const checked = (name) => [...main.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
    const given = { endpoints: checked("endpoint"), ids: list(el.ids.value), tags_all: pairs(el.tags.value),
      statuses: checked("status"), name: el.name.value.trim() };
    const targets = Object.fromEntries(Object.entries(given).filter(([, v]) => Object.keys(v).length > 0));
    const params = {};
    if (el.type.value) params.type = el.type.value;
    if (el.action.value === "resize" && el.flavor.value) params.flavor = el.flavor.value;
    if (el.action.value.startsWith("tag")) params.tags = pairs(el.setTags.value);
    if (el.action.value === "create") Object.assign(params, creation());
    const strategy = { pause_after_wave: el.pause.checked };
    if (el.waves.value.trim()) strategy.waves = waves(el.waves.value);
    if (el.inFlight.value) strategy.max_in_flight = Number(el.inFlight.value);
    const me = el.maxErrors.value.trim();
    if (me) strategy.max_errors = /^\d+$/.test(me) ? Number(me) : me;
    return { action: el.action.value, params, targets, strategy, dry_run: dryRun, reason: el.reason.value };
  }

  function creation() {
    const text = (input) => input.value.trim();
    const out = { count: Number(el.count.value), name: text(el.template), flavor: el.flavor.value,
      image: text(el.image), network: text(el.network), tags: pairs(el.setTags.value) };
    for (const [key, input] of [["vpc", el.vpc], ["availability_zone", el.zone], ["admin_password", el.password]]) {
      if (text(input)) out[key] = text(input);
    }
    return out;
  }

  async function flavors() {
    const names = [...main.querySelectorAll("input[name=endpoint]:checked")].map((i) => i.value);
    const options = [h("option", { value: "" }, names.length ? "choose a flavor" : "pick endpoints first")];
    for (const name of names) {
      try {
        const out = await get(`/v1/endpoints/${encodeURIComponent(name)}/flavors`);
        for (const f of out.items) options.push(h("option", { value: f.name }, `${f.name} (${name})`));
      } catch { /* an endpoint that cannot resize lists nothing */ }
    }
    clear(el.flavor, options);
    invalidate();
  }

  function invalidate() { body = null; clear(runArea); }

  async function plan() {
    clear(status); clear(planned); invalidate();
    try {
      const out = await post("/v1/operations", collect(true));
      clear(planned, planView(out.plan, out.quota));
      if (out.plan && !out.plan.refused_reason && out.plan.targets > 0) {
        body = collect(false);
        const key = crypto.randomUUID();
        clear(runArea, h("button", { type: "button", id: "run", class: "primary", onclick: () => run(key) },
          `Run ${body.action} on ${out.plan.targets} servers`));
      }
    } catch (err) {
      clear(status, message(err.message));
    }
  }

  async function run(key) {
    try {
      const op = await post("/v1/operations", body, { "Idempotency-Key": key });
      location.hash = `#/operations/${encodeURIComponent(op.id)}`;
    } catch (err) {
      clear(status, message(err.message));
    }
  }

  const typeField = field("Type", el.type, "SOFT or HARD");
  const flavorField = field("Flavor", el.flavor, "the flavors of the chosen endpoints");
  const tagsField = field("Tags to set or remove", el.setTags, "key=value, ... (a create: its servers' tags)");
  const createFields = h("div", { id: "create-fields" },
    field("Count", el.count, "servers on each chosen endpoint"),
    field("Server name", el.template, "a template with {n}, e.g. web-{n:03d}"),
    field("Image", el.image, "the image id"),
    field("Network", el.network, "on Huawei the subnet id; on Nova the network id"),
    field("VPC", el.vpc, "Huawei: the subnet's VPC id"),
    field("Availability zone", el.zone, "BMS needs it"),
    field("Admin password", el.password, "a secret reference in the service: env:NAME or file:PATH"));
  function fit() { // only the params the chosen action takes
    const a = el.action.value;
    typeField.hidden = !["stop", "reboot"].includes(a);
    flavorField.hidden = !["resize", "create"].includes(a);
    tagsField.hidden = !a.startsWith("tag") && a !== "create";
    createFields.hidden = a !== "create";
  }
  el.action.addEventListener("change", fit);
  fit();

  const form = h("form", { id: "new-operation", onsubmit: (e) => { e.preventDefault(); plan(); }, oninput: invalidate },
    h("fieldset", {}, h("legend", {}, "What"), field("Action", el.action), typeField, flavorField, tagsField,
      createFields),
    h("fieldset", {}, h("legend", {}, "Targets (every given criterion must hold)"),
      h("div", { class: "field" }, h("span", {}, "Endpoints"), h("div", { class: "checks" }, epBoxes)),
      field("Server ids", el.ids, "separated by spaces or commas"),
      field("Tags (all of)", el.tags, "key=value, ..."), field("Name", el.name, "a glob pattern"),
      h("div", { class: "field" }, h("span", {}, "Status"), h("div", { class: "checks" }, statusBoxes))),
    h("fieldset", {}, h("legend", {}, "Strategy"), field("Max in flight", el.inFlight),
      field("Max errors", el.maxErrors), field("Waves", el.waves, "e.g. 1, 10%, 100%"),
      h("label", { class: "check" }, el.pause, " pause after each wave")),
    field("Reason", el.reason, "recorded with the operation"),
    h("div", { class: "controls" }, check.ok
      ? h("button", { type: "submit", id: "plan-button" }, "Plan (dry run)")
      : guarded("Plan (dry run)", check, () => {})));
  main.append(form, planned, runArea);
}
