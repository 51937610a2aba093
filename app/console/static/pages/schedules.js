// /console/schedules — periodic schedules (GET /schedules): when each fires next, its last run,
// runs and skips; pause/resume (PATCH enabled) and delete. A server without schedules (404)
// gets a plain "not available" note.

import { api, ApiError } from "../api.js";
import { FieldValueError, clearErrors, collect, field, showErrors } from "../form.js";
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
      h("td", {}, h("span", { class: "job-type" }, schedule.type),
        schedule.declared ? h("span", { class: "badge status-queued", title: "Declared in code next to its job type" }, "in code") : null,
        schedule.description ? h("div", { class: "muted desc" }, schedule.description) : null),
      h("td", { "data-label": "When" }, when(schedule)),
      h("td", { "data-label": "State" }, h("span", { class: `badge ${schedule.enabled ? "status-started" : "status-canceled"}` }, schedule.enabled ? "enabled" : "paused")),
      h("td", { "data-label": "Next run" }, timeElement(schedule.next_run_at)),
      h("td", { "data-label": "Last run" }, schedule.last_job_id
        ? h("a", { href: `/console/jobs/${encodeURIComponent(schedule.last_job_id)}` }, timeElement(schedule.last_run_at))
        : timeElement(schedule.last_run_at)),
      h("td", { "data-label": "Runs" }, h("a", { href: `/console/?${new URLSearchParams({ schedule: schedule.id })}` }, `${schedule.runs ?? 0}`), schedule.skipped ? h("span", { class: "muted" }, ` (${schedule.skipped} skipped)`) : null),
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
      if (!creator.hasChildNodes()) newScheduleForm(creator, load);
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

  const creator = h("div");
  const onChange = () => load();
  ctx.activity.addEventListener("jobs", onChange);
  ctx.onDispose(() => ctx.activity.removeEventListener("jobs", onChange));
  load();
  return h("div", { class: "page" }, h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Schedules")), feedback, box, creator);
}


const TIMING = [
  ["cron", { title: "Cron", type: "string", maxLength: 100, description: "minute hour day-of-month month day-of-week, e.g. 0 3 * * mon-fri" }],
  ["every", { title: "Every (s)", anyOf: [{ type: "integer", minimum: 1 }, { type: "null" }], description: "Or a fixed interval in seconds instead of cron" }],
  ["timezone", { title: "Time zone", type: "string", maxLength: 64, description: "IANA zone the cron string is read in, e.g. Europe/Paris; default UTC" }],
  ["description", { title: "Description", type: "string", maxLength: 200, description: "Shown with the schedule and each run" }],
];

/** A form for POST /schedules: the job type's generated argument fields, and when to run. */
async function newScheduleForm(box, reload) {
  let types;
  try {
    types = await api("/job-types");
  } catch {
    return;
  }
  const typeSelect = h("select", { id: "s-type" }, types.map((t) => h("option", { value: t.type }, t.type)));
  const argsBox = h("div");
  const summary = h("div", { class: "summary", tabindex: -1 });
  const submit = h("button", { type: "submit", class: "primary" }, "Create schedule");
  const form = h("form", { class: "job-form", novalidate: true, "aria-label": "New schedule" },
    h("div", { class: "field" }, h("label", { for: "s-type" }, "Job type"), typeSelect),
    argsBox,
    h("fieldset", {}, h("legend", {}, "When"), TIMING.map(([name, schema]) => field([name], schema))),
    summary,
    h("div", { class: "actions" }, submit));
  function drawArgs() {
    const spec = types.find((t) => t.type === typeSelect.value);
    const schema = spec?.args_schema || {};
    const required = new Set(schema.required || []);
    const fields = Object.entries(schema.properties || {}).map(([name, property]) => field(["args", name], property, { required: required.has(name) }));
    replace(argsBox, h("fieldset", {}, h("legend", {}, "Arguments of each run"), fields.length ? fields : h("p", { class: "muted" }, "This job type takes no arguments.")));
  }
  typeSelect.addEventListener("change", drawArgs);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, summary);
    let body;
    try {
      body = { type: typeSelect.value, ...collect(form) };
    } catch (error) {
      if (error instanceof FieldValueError) return showErrors(form, summary, { title: "Check the marked field", errors: [{ loc: error.loc, msg: error.message }] });
      throw error;
    }
    submit.disabled = true;
    try {
      await api("/schedules", { method: "POST", body });
      form.reset();
      reload();
    } catch (error) {
      if (error instanceof ApiError) showErrors(form, summary, error.problem);
    } finally {
      submit.disabled = false;
    }
  });
  drawArgs();
  replace(box, h("details", { class: "card new-schedule" }, h("summary", {}, h("h2", {}, "New schedule")), form));
}
