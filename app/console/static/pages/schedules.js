// /console/schedules — periodic schedules (GET /schedules): when each fires next, its last run,
// runs and skips; pause/resume (PATCH enabled) and delete. A server without schedules (404)
// gets a plain "not available" note.

import { api, ApiError } from "../api.js";
import { h, notice, replace, timeElement } from "../ui.js";

function when(schedule) {
  if (schedule.cron) return [h("code", {}, schedule.cron), schedule.timezone && schedule.timezone !== "UTC" ? ` (${schedule.timezone})` : " (UTC)"];
  if (schedule.every) return `every ${schedule.every} s`;
  return "—";
}

export function schedulesPage(ctx) {
  ctx.title("Schedules");
  const box = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const feedback = h("div", { "aria-live": "assertive" });

  function row(schedule) {
    const toggle = h("button", { type: "button", class: "secondary small" }, schedule.enabled ? "Pause" : "Resume");
    const remove = h("button", { type: "button", class: "danger small" }, "Delete");
    toggle.addEventListener("click", () => change(() => api(`/schedules/${encodeURIComponent(schedule.id)}`, { method: "PATCH", body: { enabled: !schedule.enabled } })));
    remove.addEventListener("click", () => {
      if (confirm(`Delete the schedule ${schedule.description || schedule.type}? Jobs it already submitted stay.`)) {
        change(() => api(`/schedules/${encodeURIComponent(schedule.id)}`, { method: "DELETE" }));
      }
    });
    return h("tr", {},
      h("td", {}, h("span", { class: "job-type" }, schedule.type), schedule.description ? h("div", { class: "muted desc" }, schedule.description) : null),
      h("td", { "data-label": "When" }, when(schedule)),
      h("td", { "data-label": "State" }, h("span", { class: `badge ${schedule.enabled ? "status-started" : "status-canceled"}` }, schedule.enabled ? "enabled" : "paused")),
      h("td", { "data-label": "Next run" }, timeElement(schedule.next_run_at)),
      h("td", { "data-label": "Last run" }, schedule.last_job_id
        ? h("a", { href: `/console/jobs/${encodeURIComponent(schedule.last_job_id)}` }, timeElement(schedule.last_run_at))
        : timeElement(schedule.last_run_at)),
      h("td", { "data-label": "Runs" }, `${schedule.runs ?? 0}`, schedule.skipped ? h("span", { class: "muted" }, ` (${schedule.skipped} skipped)`) : null),
      h("td", { class: "row-actions" }, toggle, " ", remove));
  }

  async function change(request) {
    replace(feedback);
    try {
      await request();
      load();
    } catch (error) {
      replace(feedback, notice("error", "That did not work", error.message));
    }
  }

  async function load() {
    try {
      const page = await api("/schedules?limit=200");
      const list = page.schedules || [];
      replace(box, list.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "jobs schedules" },
          h("caption", { class: "sr-only" }, "Periodic schedules"),
          h("thead", {}, h("tr", {}, ["Job", "When", "State", "Next run", "Last run", "Runs", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, list.map(row))))
        : h("p", { class: "empty" }, "No schedules yet. Create one with POST /schedules (cron or every N seconds)."));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(box, notice("info", "Schedules are not available", "This server does not offer periodic schedules (GET /schedules answered 404)."));
      } else {
        replace(box, notice("error", "Could not load the schedules", error.message));
      }
    }
  }

  const onChange = () => load();
  ctx.activity.addEventListener("jobs", onChange);
  ctx.onDispose(() => ctx.activity.removeEventListener("jobs", onChange));
  load();
  return h("div", { class: "page" }, h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Schedules")), feedback, box);
}

