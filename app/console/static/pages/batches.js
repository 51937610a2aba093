// /console/batches and /console/batches/{id} — batches of jobs (GET /batches, GET /batches/{id},
// live from GET /batches/{id}/events): overall progress, members by status as a stacked bar, and
// the members themselves. A server without batches (404 on GET /batches) says so plainly.

import { api, ApiError, stream } from "../api.js";
import { jobRow, jobsTable } from "./jobs.js";
import { STATUSES, announce, h, notice, progressBar, replace, setBarStatus, setProgress, shortId, statusBadge, timeElement } from "../ui.js";

const FINAL = ["finished", "failed", "canceled"];

async function unavailable() {
  try {
    await api("/batches?limit=1");
    return false;
  } catch (error) {
    return error instanceof ApiError && error.status === 404;
  }
}

function notAvailable() {
  return notice("info", "Batches are not available", "This server does not offer batches (GET /batches answered 404).");
}

function countsBar(counts, total) {
  const bar = h("div", { class: "stack", "aria-hidden": "true" });
  for (const status of STATUSES) {
    const n = counts?.[status] || 0;
    if (!n) continue;
    const part = h("span", { class: `stack-part status-${status}`, title: `${status}: ${n}` });
    part.style.width = `${(100 * n) / Math.max(total, 1)}%`;
    bar.append(part);
  }
  const legend = h("ul", { class: "legend" }, STATUSES.filter((s) => counts?.[s]).map((s) =>
    h("li", {}, h("span", { class: `swatch status-${s}`, "aria-hidden": "true" }), `${s} ${counts[s]}`)));
  return [bar, legend];
}

export function batchesPage(ctx) {
  ctx.title("Batches");
  const box = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  async function load() {
    try {
      const page = await api("/batches?limit=100");
      const list = page.batches || [];
      replace(box, list.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "jobs" },
          h("caption", { class: "sr-only" }, "Batches, newest first"),
          h("thead", {}, h("tr", {}, ["Batch", "Status", "Progress", "Jobs", "Created"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, list.map((b) => h("tr", {},
            h("td", {}, h("a", { href: `/console/batches/${encodeURIComponent(b.id)}` }, b.description || h("code", {}, shortId(b.id)))),
            h("td", { "data-label": "Status" }, statusBadge(b.status)),
            h("td", { "data-label": "Progress", class: "cell-progress" }, progressBar(`Progress of batch ${shortId(b.id)}`, b.progress, { small: true }), h("span", { class: "pct" }, `${Math.round(b.progress || 0)}%`)),
            h("td", { "data-label": "Jobs" }, String(b.total)),
            h("td", { "data-label": "Created" }, timeElement(b.created_at)))))))
        : h("p", { class: "empty" }, "No batches yet. Submit one with POST /batches."));
    } catch (error) {
      replace(box, error instanceof ApiError && error.status === 404 ? notAvailable() : notice("error", "Could not load the batches", error.message));
    }
  }
  const onChange = () => load();
  ctx.activity.addEventListener("jobs", onChange);
  ctx.onDispose(() => ctx.activity.removeEventListener("jobs", onChange));
  load();
  return h("div", { class: "page" }, h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Batches")), box);
}

export function batchPage(ctx) {
  const id = ctx.params[0];
  ctx.title(`Batch ${shortId(id)}`);
  const heading = h("h1", { tabindex: -1 }, "Batch ", h("code", { class: "job-id" }, id));
  const statusLine = h("p", { class: "status-line", role: "status", "aria-live": "polite" });
  const bar = progressBar("Batch progress", 0);
  const percent = h("span", { class: "pct-big" }, "0%");
  const countsBox = h("div");
  const membersBox = h("div");
  const infoBox = h("div");
  const root = h("div", { class: "page" },
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "/console/batches" }, "Batches"), " / ", h("code", {}, shortId(id))),
    h("div", { class: "page-head" }, heading, statusLine),
    h("section", { class: "card progress-card", "aria-label": "Progress" }, h("div", { class: "progress-row" }, bar, percent), countsBox),
    infoBox,
    h("section", { "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, "Jobs in this batch"), membersBox));
  let batch = null;
  let events = null;

  function draw() {
    replace(statusLine, "Status: ", statusBadge(batch.status));
    setProgress(bar, batch.progress);
    setBarStatus(bar, batch.status);
    percent.textContent = `${Math.round(batch.progress || 0)}%`;
    replace(countsBox, countsBar(batch.counts, batch.total));
    const rows = [
      ["Description", batch.description || "—"],
      ["Jobs", String(batch.total)],
      ["Created", timeElement(batch.created_at)],
      ["Ended", timeElement(batch.ended_at)],
      ["On completion", batch.on_complete_job_id
        ? h("a", { href: `/console/jobs/${encodeURIComponent(batch.on_complete_job_id)}` }, shortId(batch.on_complete_job_id))
        : "—"],
    ];
    replace(infoBox, h("section", { class: "card", "aria-labelledby": "batch-details" }, h("h2", { id: "batch-details" }, "Details"),
      h("dl", { class: "details" }, rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]))));
  }

  let membersTimer = null;
  function membersSoon() {
    if (membersTimer) return;
    membersTimer = setTimeout(() => {
      membersTimer = null;
      loadMembers();
    }, 1000);
  }

  async function loadMembers() {
    try {
      const page = await api(`/batches/${encodeURIComponent(id)}/jobs?limit=100`);
      replace(membersBox, h("div", { class: "table-wrap" }, jobsTable("Jobs in this batch", h("tbody", {}, page.jobs.map(jobRow)))),
        page.next_cursor ? h("p", { class: "muted" }, "Showing the first 100.") : null);
    } catch (error) {
      replace(membersBox, notice("error", "Could not load the jobs", error.message));
    }
  }

  function follow() {
    events = stream(`/batches/${encodeURIComponent(id)}/events`, {
      reconnect: () => !FINAL.includes(batch?.status),
      onEvent(event) {
        const data = JSON.parse(event.data);
        if (event.event === "progress") {
          Object.assign(batch, { progress: data.progress, counts: data.counts });
        } else if (event.event === "status") {
          if (batch.status !== data.status) announce(`Batch ${data.status}`);
          batch = data;
        }
        draw();
        membersSoon();
      },
    });
  }

  api(`/batches/${encodeURIComponent(id)}`).then((view) => {
    batch = view;
    draw();
    loadMembers();
    follow();
  }).catch(async (error) => {
    const missing = error instanceof ApiError && error.status === 404;
    const none = missing && (await unavailable());
    replace(root, h("h1", { tabindex: -1 }, none ? "Batches" : missing ? "No such batch" : "Could not load the batch"),
      none ? notAvailable() : notice(missing ? "info" : "error", missing ? `There is no batch ${id}` : "Error", missing ? "It never existed, has expired, or belongs to another API key." : error.message));
  });
  ctx.onDispose(() => {
    events?.close();
    clearTimeout(membersTimer);
  });
  return root;
}
