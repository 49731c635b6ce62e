// The dashboard: what fleet's stops saved over the last 7 days, and the latest drift.
import { get, query } from "./api.js";
import { badge, clear, h, message, row, table, when } from "./dom.js";

const EVERY = 10000; // ms between two reads
const DAYS = 7;

function money(value, currency) {
  return `${value.toFixed(2)} ${currency}`;
}

function savingsView(out) {
  const t = out.total;
  const servers = `${t.servers} server${t.servers === 1 ? "" : "s"}`;
  return [
    h("p", { id: "savings-total", class: "big" },
      h("strong", {}, money(t.cost, out.currency)), ` saved: ${t.hours.toFixed(2)} h stopped on ${servers}`),
    t.bound_hours ? h("p", { class: "muted" },
      `${t.bound_hours.toFixed(2)} h of these are an upper bound (the cloud kept no record of the start).`) : null,
    t.unpriced_hours ? h("p", { class: "muted" },
      `${t.unpriced_hours.toFixed(2)} h are of flavors without a price ([prices] in the configuration).`) : null,
    table(["policy", "servers", "hours", "saved", "still stopped"],
      out.rows.map((r) => row([r.key, String(r.servers), r.hours.toFixed(2), money(r.cost, out.currency),
        String(r.still_stopped)])), "Nothing stopped by fleet in this window."),
    h("details", {}, h("summary", {}, "What this assumes"), h("ul", {}, out.assumptions.map((a) => h("li", {}, a)))),
  ];
}

function driftView(out) {
  return table(["detected", "server", "kind", "desired", "observed", "policy", "enforced", "detail"],
    out.items.map((d) => row([when(d.detected_at), `${d.endpoint}/${d.server_id}`, d.kind, d.desired,
      badge(d.observed), d.policy || "—", d.enforcement || "—", d.detail])),
    "No drift: every server stayed as fleet left it.");
}

export function dashboardPage(main) {
  let timer = null, stopped = false;
  const savings = h("div", { id: "savings", "aria-live": "polite" });
  const drift = h("div", { id: "drift" });
  const stamp = h("p", { class: "muted" });
  clear(main, h("h1", {}, "Dashboard"), stamp,
    h("h2", {}, `Savings, last ${DAYS} days`), savings, h("h2", {}, "Drift"), drift);
  async function load() {
    const to = new Date(), from = new Date(to.getTime() - DAYS * 86400 * 1000);
    const range = query({ from: from.toISOString(), to: to.toISOString(), group_by: "policy" });
    try {
      const [s, d] = await Promise.all([get(`/v1/reports/savings${range}`), get("/v1/drift?limit=20")]);
      if (stopped) return;
      clear(savings, savingsView(s));
      clear(drift, driftView(d));
      stamp.textContent = `Refreshed ${new Date().toLocaleTimeString()} (every ${EVERY / 1000} s)`;
    } catch (err) {
      clear(savings, message(err.message));
    }
    if (!stopped) timer = setTimeout(load, EVERY);
  }
  load();
  return () => { stopped = true; clearTimeout(timer); };
}
