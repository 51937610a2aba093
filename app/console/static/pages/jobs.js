// /console/ — the jobs list: filters by status, queue and type (kept in the URL), newest first,
// re-read whenever the service says jobs changed.

import { api, ApiError } from "../api.js";
import { STATUSES, duration, h, notice, progressBar, replace, setBarStatus, shortId, statusBadge, timeElement } from "../ui.js";

const QUEUES = ["high", "default", "low"];
const PAGE = 50;

function select(name, label, options, value) {
  const id = `filter-${name}`;
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name },
      h("option", { value: "" }, "Any"),
      options.map((option) => h("option", { value: option, selected: option === value }, option))));
}

function coloured(bar, status) {
  setBarStatus(bar, status);
  return bar;
}

/** One job as a row of the jobs table (also used for a batch's members). */
export function jobRow(job) {
  const href = `/console/jobs/${encodeURIComponent(job.id)}`;
  return h("tr", {},
    h("td", { class: "cell-job" },
      h("a", { href, class: "job-link" }, h("span", { class: "job-type" }, job.type || "?"), " ",
        h("code", { class: "job-id", title: job.id }, shortId(job.id))),
      job.description && job.description !== job.type ? h("div", { class: "muted desc" }, job.description) : null),
    h("td", { "data-label": "Status" }, statusBadge(job.status), job.waiting ? h("div", { class: "muted small" }, job.waiting) : null),
    h("td", { "data-label": "Progress", class: "cell-progress" },
      coloured(progressBar(`Progress of ${job.type} ${shortId(job.id)}`, job.progress, { small: true }), job.status),
      h("span", { class: "pct" }, `${Math.round(job.progress || 0)}%`)),
    h("td", { "data-label": "Queue" }, job.queue),
    h("td", { "data-label": "Created" }, timeElement(job.created_at)),
    h("td", { "data-label": "Duration" }, duration(job.started_at, job.ended_at) || "—"));
}

/** The jobs table around `body` (its rows from jobRow). */
export function jobsTable(caption, body) {
  return h("table", { class: "jobs" },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, ["Job", "Status", "Progress", "Queue", "Created", "Duration"].map((t) => h("th", { scope: "col" }, t)))),
    body);
}

export function jobsPage(ctx) {
  ctx.title("Jobs");
  const filters = { status: ctx.query.get("status") || "", queue: ctx.query.get("queue") || "", type: ctx.query.get("type") || "" };
  // the runs of one schedule (a link from the schedules page)
  const scope = ["schedule"].map((name) => [name, ctx.query.get(name)]).find(([, value]) => value);
  if (scope) filters[scope[0]] = scope[1];
  const typeSelect = select("type", "Type", filters.type ? [filters.type] : [], filters.type);
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter jobs" },
    select("status", "Status", STATUSES, filters.status),
    select("queue", "Queue", QUEUES, filters.queue),
    typeSelect);
  const body = h("tbody");
  const table = jobsTable("Jobs, newest first", body);
  const message = h("div", { class: "list-message", "aria-live": "polite" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const live = h("span", { class: "live-dot", title: "Updates as jobs change (hollow: reconnecting)" }, "Live");
  let shown = PAGE;
  let nextCursor = null;
  let loading = false;
  let pending = false;

  function query(extra = {}) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...filters, ...extra })) if (value) params.set(key, value);
    return params;
  }

  async function load() {
    if (loading) {
      pending = true;
      return;
    }
    loading = true;
    try {
      const page = await api(`/jobs?${query({ limit: String(Math.min(shown, 200)) })}`);
      replace(body, page.jobs.map(jobRow));
      nextCursor = page.next_cursor;
      more.hidden = !nextCursor;
      replace(message, page.jobs.length ? "" : h("p", { class: "empty" }, "No jobs match these filters yet. ", h("a", { href: "/console/new" }, "Submit one")));
    } catch (error) {
      replace(message, error instanceof ApiError && error.status === 401
        ? notice("info", "An API key is needed", "Enter one to see the jobs.")
        : notice("error", "Could not load jobs", error instanceof ApiError ? error.message : String(error)));
    } finally {
      loading = false;
      if (pending) {
        pending = false;
        load();
      }
    }
  }

  more.addEventListener("click", async () => {
    try {
      const page = await api(`/jobs?${query({ limit: String(PAGE), cursor: nextCursor })}`);
      body.append(...page.jobs.map(jobRow));
      shown += page.jobs.length;
      nextCursor = page.next_cursor;
      more.hidden = !nextCursor;
    } catch (error) {
      replace(message, notice("error", "Could not load more jobs", error.message));
    }
  });

  form.addEventListener("change", (event) => {
    filters[event.target.name] = event.target.value;
    const search = query().toString();
    history.replaceState(null, "", `/console/${search ? `?${search}` : ""}`);
    shown = PAGE;
    load();
  });

  api("/job-types").then((types) => {
    const select = typeSelect.querySelector("select");
    replace(select, h("option", { value: "" }, "Any"),
      types.map((t) => h("option", { value: t.type, selected: t.type === filters.type }, t.type)));
  }).catch(() => {});

  const onChange = () => load();
  ctx.activity.addEventListener("jobs", onChange);
  ctx.onDispose(() => ctx.activity.removeEventListener("jobs", onChange));
  load();
  ctx.refreshVitals();

  return h("div", { class: "page" },
    h("div", { class: "page-head" },
      h("h1", { tabindex: -1 }, "Jobs"), live,
      h("a", { class: "button primary", href: "/console/new" }, "Submit a job")),
    form,
    scope ? h("p", { class: "scope" }, "Runs of schedule ",
      h("code", {}, shortId(scope[1])), " · ", h("a", { href: "/console/" }, "Show all jobs")) : null,
    h("div", { class: "table-wrap" }, table),
    message,
    h("div", { class: "actions" }, more));
}
