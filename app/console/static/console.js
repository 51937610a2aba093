// The console's entry point: client-side routing over /console/..., the header (queues and
// workers), the API key dialog, and one shared "jobs changed" stream that live pages listen to.

import { api, apiKey, keyEvents, setApiKey, stream } from "./api.js";
import { h, replace } from "./ui.js";
import { jobsPage } from "./pages/jobs.js";
import { jobPage } from "./pages/job.js";
import { newJobPage } from "./pages/new.js";
import { schedulesPage } from "./pages/schedules.js";
import { batchesPage, batchPage } from "./pages/batches.js";

const BASE = "/console";
const main = document.getElementById("main");

/** Fires "jobs" after any job changed (at most about once a second). */
export const activity = new EventTarget();
let activityStream = null;

const ROUTES = [
  [/^\/?$/, "jobs", () => jobsPage],
  [/^\/jobs\/([^/]+)\/?$/, "jobs", () => jobPage],
  [/^\/new\/?$/, "new", () => newJobPage],
  [/^\/schedules\/?$/, "schedules", () => schedulesPage],
  [/^\/batches\/?$/, "batches", () => batchesPage],
  [/^\/batches\/([^/]+)\/?$/, "batches", () => batchPage],
];

let cleanup = null;

function notFoundPage(ctx) {
  ctx.title("Not found");
  return [h("h1", { tabindex: -1 }, "Page not found"), h("p", {}, h("a", { href: `${BASE}/`, "data-nav": "" }, "Back to the jobs"))];
}

function render({ focus = false } = {}) {
  cleanup?.();
  cleanup = null;
  const path = decodeURIComponent(location.pathname.slice(BASE.length)) || "/";
  let page = notFoundPage;
  let params = [];
  let section = "";
  for (const [pattern, name, get] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      page = get();
      params = match.slice(1);
      section = name;
      break;
    }
  }
  for (const a of document.querySelectorAll("nav a[data-section]")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const disposers = [];
  const ctx = {
    params,
    query: new URLSearchParams(location.search),
    title: (text) => (document.title = `${text} · Jobs console`),
    onDispose: (fn) => disposers.push(fn),
    navigate,
    activity,
    refreshVitals,
  };
  replace(main, page(ctx));
  cleanup = () => disposers.forEach((fn) => fn());
  if (focus) (main.querySelector("h1") || main).focus({ preventScroll: false });
}

export function navigate(href, { replace: replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  render({ focus: true });
  window.scrollTo(0, 0);
}

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[href]");
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(`${BASE}/`) || a.target || a.hasAttribute("download")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => render({ focus: true }));

// -- header: queues and workers ----------------------------------------------------------

const vitals = document.getElementById("vitals");
let vitalsTimer = null;

let vitalsAgain = false;

/** Re-read the header's counts: at once, then at most once a second (a call meanwhile runs after). */
function refreshVitals() {
  if (vitalsTimer) {
    vitalsAgain = true;
    return;
  }
  vitalsTimer = setTimeout(() => {
    vitalsTimer = null;
    if (vitalsAgain) {
      vitalsAgain = false;
      refreshVitals();
    }
  }, 1000);
  Promise.allSettled([api("/stats"), api("/readyz")]).then(([stats, ready]) => drawVitals(stats, ready));
}

function drawVitals(stats, ready) {
  const items = [];
  if (stats.status === "fulfilled") {
    for (const [name, counts] of Object.entries(stats.value.queues || {})) {
      const parts = [["queued", counts.queued], ["running", counts.started], ["failed", counts.failed]].filter(([, n]) => n);
      items.push(h("li", { class: "queue" },
        h("span", { class: "queue-name" }, name),
        parts.length
          ? parts.map(([label, n], i) => h("span", { class: `count count-${label === "running" ? "started" : label}` }, i ? " · " : "", h("b", {}, String(n)), ` ${label}`))
          : h("span", { class: "idle" }, "idle")));
    }
  }
  if (stats.status === "fulfilled") {
    for (const [name, limit] of Object.entries(stats.value.limits || {})) {
      const full = limit.running >= limit.limit;
      items.push(h("li", { class: `limit${full ? " full" : ""}`, title: `Flow-control limit on ${name}` },
        h("span", { class: "queue-name" }, name),
        h("span", { class: "count count-started" }, h("b", {}, `${limit.running}/${limit.limit}`), " running"),
        limit.waiting ? h("span", { class: "count count-queued" }, " · ", h("b", {}, String(limit.waiting)), " held back") : null));
    }
  }
  if (ready.status === "fulfilled") {
    const { workers, workers_busy: busy } = ready.value;
    items.push(h("li", { class: `workers ${workers ? "ok" : "none"}` },
      h("span", { class: "dot", "aria-hidden": "true" }),
      `${workers} worker${workers === 1 ? "" : "s"}`, h("span", { class: "muted" }, ` · ${busy} busy`)));
  } else {
    items.push(h("li", { class: "workers down" }, h("span", { class: "dot", "aria-hidden": "true" }), "Redis not ready"));
  }
  replace(vitals, h("ul", {}, items));
}

function openActivity() {
  activityStream?.close();
  activityStream = stream("/console/changes", {
    reconnect: () => true,
    onOpen: () => (document.body.dataset.live = "on"),
    onEvent(event) {
      if (event.event !== "jobs") return;
      refreshVitals();
      activity.dispatchEvent(new Event("jobs"));
    },
    onError: (error) => {
      document.body.dataset.live = "off";
      return error.status !== 401 && error.status !== 404;
    },
  });
}

// -- API key -----------------------------------------------------------------------------

const dialog = document.getElementById("key-dialog");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key-input");
const keyError = document.getElementById("key-error");
const keyButton = document.getElementById("key-button");

function showKeyButton() {
  keyButton.hidden = !apiKey();
}

keyEvents.addEventListener("needed", () => {
  if (dialog.open) return;
  keyError.hidden = !apiKey();
  keyError.textContent = apiKey() ? "That key was refused; try another." : "";
  keyInput.value = "";
  dialog.showModal();
  keyInput.focus();
});
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  setApiKey(key);
  dialog.close();
  showKeyButton();
  openActivity();
  refreshVitals();
  render({ focus: true });
});
keyButton.addEventListener("click", () => {
  setApiKey("");
  showKeyButton();
  activityStream?.close();
  render({ focus: true });
});
dialog.addEventListener("cancel", (event) => event.preventDefault()); // the page cannot work without a key

// A page kept in the back/forward cache would keep its streams open, and a browser opens only six
// connections per host over HTTP/1.1: close them when the page is hidden, reopen when it is back.
window.addEventListener("pagehide", () => {
  activityStream?.close();
  activityStream = null;
  cleanup?.();
  cleanup = null;
});
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  openActivity();
  refreshVitals();
  render();
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshVitals();
});

showKeyButton();
openActivity();
refreshVitals();
render();
