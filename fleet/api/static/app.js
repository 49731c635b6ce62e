// The console's shell: sign-in, the navigation and a router over the URL's hash.
import { identity, signIn, token, whoami } from "./api.js";
import { clear, h, message } from "./dom.js";
import { dashboardPage } from "./page-dashboard.js";
import { endpointsPage } from "./page-endpoints.js";
import { newOperationPage } from "./page-new.js";
import { operationPage } from "./page-operation.js";
import { operationsPage } from "./page-operations.js";
import { policiesPage, policyPage } from "./page-policies.js";
import { schedulePage, schedulesPage } from "./page-schedules.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let leave = null; // what the current page stops when we move on (streams, timers)

const ROUTES = [
  [/^#\/operations\/([^/]+)$/, (m) => operationPage(main, decodeURIComponent(m[1]))],
  [/^#\/new$/, () => newOperationPage(main)],
  [/^#\/endpoints$/, () => endpointsPage(main)],
  [/^#\/dashboard$/, () => dashboardPage(main)],
  [/^#\/policies$/, () => policiesPage(main)],
  [/^#\/policies\/([^/]+)$/, (m) => policyPage(main, decodeURIComponent(m[1]))],
  [/^#\/schedules$/, () => schedulesPage(main)],
  [/^#\/schedules\/([^/]+)$/, (m) => schedulePage(main, decodeURIComponent(m[1]))],
  [/^(#\/operations)?$|^#\/?$/, () => operationsPage(main)],
];

function signInPage(reason) {
  nav.hidden = true;
  clear(who);
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true,
    placeholder: "fleet_…",
  });
  const status = h("div", { "aria-live": "polite" }, reason ? message(reason) : null);
  const form = h("form", { class: "signin", onsubmit: async (event) => {
    event.preventDefault();
    clear(status, message("Signing in…", "info"));
    try {
      await signIn(input.value.trim());
      input.value = "";
      if (!location.hash || location.hash === "#/signin") location.hash = "#/operations";
      else route();
    } catch (err) {
      clear(status, message(`Sign-in failed: ${err.message}`));
    }
  } },
  h("h1", {}, "Sign in"),
  h("p", {}, "Paste an API token (for a local service: the contents of var/admin.token). ",
    "It is kept in this tab only and sent as a bearer header."),
  h("label", { for: "token" }, "Token"),
  input,
  h("button", { type: "submit" }, "Sign in"),
  status);
  clear(main, form);
  input.focus();
}

function shell() {
  const me = identity();
  nav.hidden = false;
  for (const link of nav.querySelectorAll("a")) {
    const current = location.hash.startsWith(link.getAttribute("href"));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clear(who, h("span", { id: "whoami" }, `${me.name} (${me.role})`), " ",
    h("button", { type: "button", class: "link", onclick: () => {
      token.clear();
      location.hash = "#/signin";
      signInPage();
    } }, "Sign out"));
}

async function route() {
  if (leave) { leave(); leave = null; }
  if (!token.get()) return signInPage();
  try {
    await whoami();
  } catch (err) {
    token.clear();
    return signInPage(`Signed out: ${err.message}`);
  }
  shell();
  for (const [pattern, page] of ROUTES) {
    const m = location.hash.match(pattern);
    if (m) {
      clear(main);
      leave = page(m) || null;
      return;
    }
  }
  clear(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/operations" }, "Operations")));
}

window.addEventListener("hashchange", route);
window.addEventListener("fleet:signed-out", (event) => {
  if (leave) { leave(); leave = null; }
  token.clear();
  signInPage(`Signed out: ${event.detail}`);
});
route();
