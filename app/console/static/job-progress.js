// <job-progress job-id="…" base-url="https://jobs.example.com"> — a live progress bar for one job,
// for an application's own page:
//
//   <script type="module" src="https://jobs.example.com/console/job-progress.js"></script>
//   <job-progress job-id="5f0c…" base-url="https://jobs.example.com"></job-progress>
//   <script type="module">document.querySelector("job-progress").addEventListener("job-ended", (e) => console.log(e.detail.status))</script>
//
// It shows a role="progressbar" bar and the job's latest message, follows the job's event stream
// (GET /jobs/{id}/events, read with fetch so a key can go in a header), and dispatches `job-ended`
// (bubbling; `detail`: the final job view) once. Across origins the service must list the page's
// origin in CORS_ORIGINS. Where API keys are configured, set the `apiKey` property (never an
// attribute or a URL): `element.apiKey = key`.

import { openStream } from "./assets/sse.js";

const FINAL = ["finished", "failed", "stopped", "canceled"];

const CSS = `
:host { display: block; font: inherit; color: inherit; --job-progress-color: #2456d6; --job-progress-track: rgba(127,127,127,.22); }
:host([hidden]) { display: none; }
.bar { height: .6rem; border-radius: 999px; background: var(--job-progress-track); overflow: hidden; }
.fill { height: 100%; width: 0; background: var(--job-progress-color); border-radius: inherit; transition: width .25s ease; }
.row { display: flex; justify-content: space-between; gap: 1rem; margin-top: .35rem; font-size: .875em; }
.message { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.pct { font-variant-numeric: tabular-nums; opacity: .75; }
:host([status="failed"]) .fill, :host([status="stopped"]) .fill { background: #c4314b; }
:host([status="finished"]) .fill { background: #1f8a4c; }
@media (prefers-reduced-motion: reduce) { .fill { transition: none; } }
`;

class JobProgress extends HTMLElement {
  static observedAttributes = ["job-id", "base-url"];

  #stream = null;
  #job = null;
  #ended = false;
  #key = "";

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
    this.bar = document.createElement("div");
    this.bar.className = "bar";
    this.bar.setAttribute("role", "progressbar");
    this.bar.setAttribute("aria-valuemin", "0");
    this.bar.setAttribute("aria-valuemax", "100");
    this.bar.setAttribute("aria-valuenow", "0");
    this.bar.setAttribute("part", "bar");
    this.fill = document.createElement("div");
    this.fill.className = "fill";
    this.fill.setAttribute("part", "fill");
    this.bar.append(this.fill);
    const row = document.createElement("div");
    row.className = "row";
    this.message = document.createElement("span");
    this.message.className = "message";
    this.message.setAttribute("part", "message");
    this.message.setAttribute("aria-live", "polite");
    this.pct = document.createElement("span");
    this.pct.className = "pct";
    this.pct.textContent = "0%";
    row.append(this.message, this.pct);
    root.append(this.bar, row);
  }

  /** The API key to send in `Authorization` (kept in memory only). */
  get apiKey() {
    return this.#key;
  }

  set apiKey(value) {
    this.#key = value || "";
    if (this.isConnected) this.#follow();
  }

  /** The latest job view (null until the first status event). */
  get job() {
    return this.#job;
  }

  // A page in the back/forward cache keeps no stream open (browsers allow six connections per host).
  #onHide = () => {
    this.#stream?.close();
    this.#stream = null;
  };

  #onShow = (event) => {
    if (event.persisted && !this.#ended) this.#follow();
  };

  connectedCallback() {
    window.addEventListener("pagehide", this.#onHide);
    window.addEventListener("pageshow", this.#onShow);
    this.#follow();
  }

  disconnectedCallback() {
    window.removeEventListener("pagehide", this.#onHide);
    window.removeEventListener("pageshow", this.#onShow);
    this.#onHide();
  }

  attributeChangedCallback(name, before, after) {
    if (before !== after && this.isConnected) {
      this.#ended = false;
      this.#follow();
    }
  }

  #follow() {
    this.#stream?.close();
    const id = this.getAttribute("job-id");
    if (!id) return;
    const base = (this.getAttribute("base-url") || new URL(import.meta.url).origin).replace(/\/+$/, "");
    this.bar.setAttribute("aria-label", this.getAttribute("label") || "Job progress");
    this.#stream = openStream(`${base}/jobs/${encodeURIComponent(id)}/events`, {
      headers: () => (this.#key ? { Authorization: `Bearer ${this.#key}` } : {}),
      reconnect: () => !this.#ended,
      onEvent: (event) => this.#onEvent(event),
      onError: (error) => {
        if (error.status >= 400 && error.status < 500) {
          this.#show(null, error.status === 404 ? "No such job" : `Not allowed (${error.status})`);
          this.dispatchEvent(new CustomEvent("job-error", { bubbles: true, composed: true, detail: { status: error.status } }));
          return false;
        }
        return true;
      },
    });
  }

  #show(progress, message) {
    if (progress !== null && progress !== undefined) {
      const value = Math.max(0, Math.min(100, Number(progress) || 0));
      this.bar.setAttribute("aria-valuenow", String(Math.round(value * 10) / 10));
      this.fill.style.width = `${value}%`;
      this.pct.textContent = `${Math.round(value)}%`;
    }
    if (message) this.message.textContent = message;
  }

  #onEvent(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (event.event === "progress") {
      this.#show(data.progress, data.message);
    } else if (event.event === "status") {
      this.#job = data;
      this.setAttribute("status", data.status);
      const last = [...(data.messages || [])].reverse().find((m) => m.message);
      this.#show(data.progress, FINAL.includes(data.status) ? data.error || last?.message || data.status : last?.message);
      if (FINAL.includes(data.status) && !this.#ended) {
        this.#ended = true;
        this.dispatchEvent(new CustomEvent("job-ended", { bubbles: true, composed: true, detail: data }));
      }
    }
  }
}

if (!customElements.get("job-progress")) customElements.define("job-progress", JobProgress);
export { JobProgress };
