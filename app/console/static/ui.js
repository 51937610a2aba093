// Small DOM helpers. Job data only ever reaches the page as text (textContent, attribute values),
// never as HTML.

/** h("a", {href: "/x", class: "y"}, "text", child) -> an element; null/false children are skipped. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export const WAITING = ["queued", "scheduled", "deferred"];
export const ENDED = ["finished", "failed", "stopped", "canceled"];
export const STATUSES = ["queued", "scheduled", "deferred", "started", "finished", "failed", "stopped", "canceled"];

export function statusBadge(status) {
  return h("span", { class: `badge status-${status || "unknown"}` }, status || "unknown");
}

/** A progress bar screen readers announce as one: role=progressbar with aria-valuenow. */
export function progressBar(label, value = 0, { small = false } = {}) {
  const fill = h("span", { class: "bar-fill" });
  const bar = h("div", {
    class: small ? "bar bar-small" : "bar",
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": 0,
    "aria-valuemax": 100,
  }, fill);
  setProgress(bar, value);
  return bar;
}

/** Colour a bar by its job's status (finished green, failed red …). */
export function setBarStatus(bar, status) {
  for (const name of [...bar.classList]) if (name.startsWith("bar-") && name !== "bar-small" && name !== "bar-fill") bar.classList.remove(name);
  if (status) bar.classList.add(`bar-${status}`);
}

export function setProgress(bar, value) {
  const percent = Math.max(0, Math.min(100, Number(value) || 0));
  const rounded = Math.round(percent * 10) / 10;
  bar.setAttribute("aria-valuenow", String(rounded));
  bar.setAttribute("aria-valuetext", `${rounded}%`);
  bar.firstElementChild.style.width = `${percent}%`;
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

export function timeElement(iso) {
  return iso ? h("time", { datetime: iso, title: iso }, formatTime(iso)) : "—";
}

export function duration(startIso, endIso) {
  if (!startIso) return "";
  const ms = (endIso ? new Date(endIso) : new Date()) - new Date(startIso);
  if (!(ms >= 0)) return "";
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

/** Say `text` to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  requestAnimationFrame(() => {
    region.textContent = text;
  });
}

export function notice(kind, title, ...body) {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("strong", {}, title), body.length ? h("p", {}, ...body) : null);
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}
