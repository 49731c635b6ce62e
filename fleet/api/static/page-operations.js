// Operations, newest first: a state filter and paging (the API's cursors).
import { get, query } from "./api.js";
import { badge, clear, counts, h, message, progressBar, row, table, when } from "./dom.js";

const STATES = ["", "planning", "refused", "planned", "running", "paused", "cancelling", "stopping",
  "succeeded", "completed_with_failures", "stopped", "cancelled", "pending_approval", "rejected",
  "expired"];
const LIMIT = 20;

export function endpointsOf(op) {
  const eps = op.targets && op.targets.endpoints;
  return Array.isArray(eps) && eps.length ? eps.join(", ") : "all endpoints";
}

function opRow(op) {
  return row([
    h("a", { href: `#/operations/${encodeURIComponent(op.id)}` }, op.id.slice(0, 8)),
    [op.action, op.dry_run ? h("span", { class: "muted" }, " (dry run)") : null],
    endpointsOf(op),
    badge(op.state),
    progressBar(op.progress),
    counts(op.counts),
    [op.created_by, op.reason ? h("div", { class: "muted" }, op.reason) : null],
    when(op.created_at),
    when(op.finished_at),
  ]);
}

export function operationsPage(main) {
  const ctl = new AbortController();
  const state = { filter: "", cursors: [null] };
  const select = h("select", { id: "state-filter", onchange: () => {
    state.filter = select.value; state.cursors = [null]; load();
  } }, STATES.map((s) => h("option", { value: s }, s || "every state")));
  const body = h("div", { "aria-live": "polite" });
  const pager = h("div", { class: "pager" });
  clear(main,
    h("h1", {}, "Operations"),
    h("div", { class: "toolbar" }, h("label", { for: "state-filter" }, "State "), select,
      h("a", { class: "button", href: "#/new" }, "New operation")),
    body, pager);

  async function load() {
    const cursor = state.cursors[state.cursors.length - 1];
    try {
      const page = await get(`/v1/operations${query({ state: state.filter, cursor, limit: LIMIT })}`);
      if (ctl.signal.aborted) return;
      clear(body, table(
        ["id", "action", "endpoints", "state", "progress", "counts", "who / why", "created", "finished"],
        page.items.map(opRow), "No operation yet."));
      const prev = h("button", { type: "button", disabled: state.cursors.length < 2, onclick: () => {
        state.cursors.pop(); load();
      } }, "Previous");
      const next = h("button", { type: "button", disabled: !page.next_cursor, onclick: () => {
        state.cursors.push(page.next_cursor); load();
      } }, "Next");
      clear(pager, prev, ` page ${state.cursors.length} `, next);
    } catch (err) {
      clear(body, message(err.message));
    }
  }
  load();
  return () => ctl.abort();
}
