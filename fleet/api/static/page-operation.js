// One operation: live progress over the event stream, controls, per-server results, history.
import { get, identity, may, post, query, stream } from "./api.js";
import { badge, clear, counts, guarded, h, message, progressBar, row, seconds, table, when } from "./dom.js";
import { endpointsOf } from "./page-operations.js";

const LIMIT = 50;
const FINISHED = new Set(["succeeded", "completed_with_failures", "stopped", "cancelled", "refused",
  "planned", "rejected", "expired"]);

// Why it waits (or waited) for another token's approval, and the decision with who and when.
function approvalText(a) {
  if (a.state === "pending") return `pending: ${a.reason} (until ${when(a.expires_at)})`;
  const by = a.decided_by ? ` by ${a.decided_by}` : "";
  return `${a.state}${by} ${when(a.decided_at)}: ${a.reason}${a.note ? ` — “${a.note}”` : ""}`;
}

function summary(op) {
  const wave = op.wave_count ? `${op.current_wave} of ${op.wave_count}` : "—";
  const strategy = op.strategy || {};
  const facts = [
    ["state", [badge(op.state), op.paused && op.state !== "paused" ? " (paused)" : null]],
    ["action", `${op.action} ${JSON.stringify(op.params)}`],
    ["endpoints", endpointsOf(op)],
    ["targets", JSON.stringify(op.targets)],
    ["strategy", JSON.stringify(strategy)],
    ["wave", wave],
    ["ETA", FINISHED.has(op.state) ? "done" : seconds(op.eta_seconds)],
    ["created by", `${op.created_by}${op.cancelled_by ? `; cancelled by ${op.cancelled_by}` : ""}`],
    ["reason", op.reason || "—"],
    ["created", when(op.created_at)],
    ["planned", when(op.planned_at)],
    ["finished", when(op.finished_at)],
  ];
  if (op.refused_reason) facts.push(["refused", op.refused_reason]);
  if (op.halted_reason) facts.push(["halted", op.halted_reason]);
  if (op.approval) facts.push(["approval", h("span", { id: "approval" }, approvalText(op.approval))]);
  for (const w of op.waiting || []) facts.push(["waiting", `${w.endpoint || "planning"}: ${w.reason}`]);
  return h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function controls(op, act) {
  const role = may("operator", "Controlling an operation");
  const done = FINISHED.has(op.state);
  const failed = (op.counts && op.counts.failed) || 0;
  const check = (ok, why) => (role.ok ? { ok, why } : role);
  return h("div", { class: "controls", id: "controls" },
    guarded("Pause", check(op.state === "running" && !op.paused, `cannot pause: the operation is ${op.state}`),
      () => act("pause")),
    guarded("Resume", check(op.state === "paused" || op.paused, "nothing to resume: it is not paused"),
      () => act("resume")),
    guarded("Cancel", check(!done && op.state !== "cancelling", `cannot cancel: the operation is ${op.state}`),
      () => act("cancel")),
    guarded("Retry failed", check(failed > 0 && !op.dry_run, "no failed sub-job to retry"),
      () => act("retry-failed")),
    ...(op.approval ? decisions(op, act, check) : []));
}

// Approve and Reject, for a token other than the one that created the operation.
function decisions(op, act, check) {
  const me = identity();
  const waits = op.state === "pending_approval";
  const why = !waits ? `nothing to decide: the operation is ${op.state}`
    : `${op.created_by} created it: another token must decide`;
  const ok = waits && !(me && me.name === op.created_by);
  return [
    guarded("Approve", check(ok, why), () => act("approve")),
    guarded("Reject", check(ok, why), () => act("reject")),
  ];
}

function subjobRow(s) {
  return row([
    [s.name || s.target_id, s.server_id && s.server_id !== s.name ? h("div", { class: "muted" }, s.server_id) : null],
    s.endpoint || "—",
    badge(s.state),
    String(s.step),
    String(s.attempt),
    [s.error_code || "", s.error_message ? h("div", {}, s.error_message) : null,
      s.reason ? h("div", { class: "muted" }, s.reason) : null],
    s.cloud_job_id || "—",
    when(s.updated_at),
  ]);
}

export function operationPage(main, id) {
  const ctl = new AbortController();
  const base = `/v1/operations/${encodeURIComponent(id)}`;
  const st = { filter: "", cursors: [null], op: null, refreshing: false, again: false };
  const head = h("div"), live = h("div", { id: "live", "aria-live": "polite" });
  const notice = h("div", { "aria-live": "assertive" });
  const buttons = h("div"), facts = h("div"), subjobs = h("div", { id: "subjobs" });
  const pager = h("div", { class: "pager" }), history = h("ol", { id: "history", class: "history" });
  // The filter offers the states the API counts (every sub-job state it knows).
  const filter = h("select", { id: "subjob-filter", onchange: () => {
    st.filter = filter.value; st.cursors = [null]; loadSubjobs();
  } }, h("option", { value: "" }, "every state"));
  clear(main, head, live, buttons, notice, facts,
    h("h2", {}, "Servers"),
    h("div", { class: "toolbar" }, h("label", { for: "subjob-filter" }, "State "), filter),
    subjobs, pager, h("h2", {}, "Event history"), history);

  function show(op) {
    if (!st.op) for (const s of Object.keys(op.counts || {})) filter.append(h("option", { value: s }, s));
    st.op = op;
    clear(head, h("h1", {}, `${op.action} `, h("span", { class: "muted" }, op.id)));
    clear(live, progressBar(op.progress), " ", badge(op.state), h("div", { id: "counts" }, counts(op.counts)));
    clear(buttons, controls(op, act));
    clear(facts, summary(op));
  }

  function note(text, kind = "info") {
    history.prepend(h("li", {}, h("span", { class: "muted" }, new Date().toLocaleTimeString()), " ", text));
    if (kind === "error") clear(notice, message(text));
  }

  async function act(verb) {
    clear(notice);
    try {
      const out = await post(`${base}/${verb}`);
      const op = out.operation || out;
      note(`${verb} by you${out.requeued !== undefined ? `: ${out.requeued} requeued` : ""}`);
      show(op);
      if (verb === "retry-failed") follow();
    } catch (err) {
      note(`${verb} refused: ${err.message}`, "error");
    }
  }

  async function loadSubjobs() {
    if (st.refreshing) { st.again = true; return; }
    st.refreshing = true;
    try {
      const cursor = st.cursors[st.cursors.length - 1];
      const page = await get(`${base}/subjobs${query({ state: st.filter, cursor, limit: LIMIT })}`);
      if (ctl.signal.aborted) return;
      clear(subjobs, table(["server", "endpoint", "state", "step", "attempt", "vendor code and reason",
        "cloud job id", "updated"], page.items.map(subjobRow), "No server (yet)."));
      clear(pager,
        h("button", { type: "button", disabled: st.cursors.length < 2, onclick: () => {
          st.cursors.pop(); loadSubjobs();
        } }, "Previous"),
        ` page ${st.cursors.length} `,
        h("button", { type: "button", disabled: !page.next_cursor, onclick: () => {
          st.cursors.push(page.next_cursor); loadSubjobs();
        } }, "Next"));
    } catch (err) {
      clear(subjobs, message(err.message));
    } finally {
      st.refreshing = false;
      if (st.again && !ctl.signal.aborted) { st.again = false; setTimeout(loadSubjobs, 300); }
    }
  }

  function onEvent(name, data) {
    if (ctl.signal.aborted) return;
    if (name === "state") {
      note(`state: ${data.state}`);
      get(base).then(show).catch(() => {});
    } else if (name === "progress") {
      show({ ...st.op, ...data });
      loadSubjobs();
    } else if (name === "subjob") {
      note(`server ${data.target_id} failed: ${data.code || ""} ${data.message || ""}`.trim());
    } else if (name === "waiting") {
      for (const w of data.waiting) note(`waiting (${w.endpoint || "planning"}): ${w.reason}`);
    } else if (name === "end") {
      note(`end: ${data.state}`);
      show(data);
      loadSubjobs();
    }
  }

  let following = false;
  function follow() {
    if (following) return;
    following = true;
    stream(`${base}/events`, onEvent, ctl.signal)
      .catch((err) => note(`event stream: ${err.message}`, "error"))
      .finally(() => { following = false; });
  }

  get(base).then((op) => {
    if (ctl.signal.aborted) return;
    show(op);
    loadSubjobs();
    follow();
  }).catch((err) => clear(main, h("h1", {}, "Operation"), message(err.message)));
  return () => ctl.abort();
}
