// Endpoints and their rate keys (budget, use in the current window, queue, throttling), live.
import { get } from "./api.js";
import { clear, h, message, row, table } from "./dom.js";

const EVERY = 2000; // ms between two reads

function budgets(list) {
  return list.map((b) => `${b.limit} ${b.unit} / ${b.period} s`).join(", ") || "none";
}

function used(map) {
  const parts = Object.entries(map || {}).map(([unit, n]) => `${n} ${unit}`);
  return parts.length ? parts.join(", ") : "0";
}

function endpointView(ep) {
  const guard = [ep.max_servers !== null ? `${ep.max_servers} servers` : null,
    ep.max_percent !== null ? `${ep.max_percent}%` : null].filter(Boolean).join(", ");
  return h("section", { class: "endpoint" },
    h("h2", {}, ep.name, " ", h("span", { class: "muted" },
      `${ep.provider}${ep.flavour ? ` (${ep.flavour})` : ""}${ep.simulator ? ", simulator" : ""}`)),
    guard ? h("p", {}, `Blast-radius guard: ${guard}`) : null,
    table(["rate key", "api class", "budget", "used (this window)", "queued", "throttled", "waits", "paused for"],
      ep.rate_keys.map((k) => row([k.rate_key, k.api_class, budgets(k.budgets), used(k.used),
        String(k.queued), String(k.throttled), String(k.waits),
        k.blocked_seconds ? `${k.blocked_seconds.toFixed(1)} s` : "—"])), "No rate key."));
}

export function endpointsPage(main) {
  let timer = null, stopped = false;
  const body = h("div"), stamp = h("p", { class: "muted", id: "refreshed" });
  clear(main, h("h1", {}, "Endpoints and rate keys"), stamp, body);
  async function load() {
    try {
      const out = await get("/v1/endpoints");
      if (stopped) return;
      clear(body, out.items.map(endpointView));
      stamp.textContent = `Refreshed ${new Date().toLocaleTimeString()} (every ${EVERY / 1000} s)`;
    } catch (err) {
      clear(body, message(err.message));
    }
    if (!stopped) timer = setTimeout(load, EVERY);
  }
  load();
  return () => { stopped = true; clearTimeout(timer); };
}
