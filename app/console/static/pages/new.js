// /console/new?type=… — submit a job through a form generated from the type's argument schema
// (GET /job-types). `&from={job id}` starts from that job's type, arguments and options (Run again).
// A 422 puts each `errors[].msg` next to the field its `loc` names; the rest go in a summary.

import { api, ApiError } from "../api.js";
import { FieldValueError, clearErrors, collect, field, showErrors } from "../form.js";
import { h, notice, replace, shortId } from "../ui.js";

const ARGS_ITEM = "jobsvc.args.";
const QUEUES = ["high", "default", "low"];

/** Arguments the console submitted, by job id, for Run again when the job view does not carry them. */
function rememberArgs(id, args) {
  try {
    sessionStorage.setItem(ARGS_ITEM + id, JSON.stringify(args));
  } catch {
    // storage full or disabled: Run again starts from the defaults
  }
}

function recalledArgs(id) {
  try {
    return JSON.parse(sessionStorage.getItem(ARGS_ITEM + id) || "null");
  } catch {
    return null;
  }
}

function optionFields(spec, from) {
  return [
    field(["queue"], { title: "Queue", enum: QUEUES, default: from?.queue || spec.queue, description: "Where the job waits; high runs first" }),
    field(["description"], { title: "Description", type: "string", maxLength: 200, description: "Free text shown with the job" }, { value: from?.description ?? undefined }),
    field(["timeout"], { title: "Timeout (s)", anyOf: [{ type: "integer", minimum: 1 }, { type: "null" }], description: `Run-time limit; the type's default is ${spec.timeout} s` }),
    field(["retries"], { title: "Retries", anyOf: [{ type: "integer", minimum: 0 }, { type: "null" }], description: `Extra attempts after a failure; the type's default is ${spec.retries}` }),
    field(["delay"], { title: "Delay (s)", anyOf: [{ type: "number", minimum: 0 }, { type: "null" }], description: "Run no earlier than this many seconds from now" }),
  ];
}

export function newJobPage(ctx) {
  ctx.title("Submit a job");
  const wanted = ctx.query.get("type") || "";
  const fromId = ctx.query.get("from");
  const typeSelect = h("select", { id: "f-type", name: "type" });
  const typeHelp = h("p", { class: "help", id: "f-type-help" });
  const formBox = h("div");
  const intro = fromId ? h("p", { class: "muted" }, "Starting from job ", h("a", { href: `/console/jobs/${encodeURIComponent(fromId)}` }, h("code", {}, shortId(fromId))), ": edit what should change.") : null;
  const root = h("div", { class: "page narrow" },
    h("h1", { tabindex: -1 }, fromId ? "Run again" : "Submit a job"), intro,
    h("div", { class: "field" }, h("label", { for: "f-type" }, "Job type"), typeSelect, typeHelp),
    formBox);

  let types = [];
  let from = null;

  function drawForm(spec) {
    typeHelp.textContent = spec.description || "";
    const schema = spec.args_schema || {};
    const required = new Set(schema.required || []);
    const known = from ? from.args ?? recalledArgs(from.id) : null;
    const fromArgs = known ?? {};
    const argFields = Object.entries(schema.properties || {}).map(([name, property]) =>
      field(["args", name], property, { required: required.has(name), value: fromArgs[name] }));
    const summary = h("div", { class: "summary", tabindex: -1 });
    const submit = h("button", { type: "submit", class: "primary" }, "Submit job");
    const form = h("form", { class: "job-form", novalidate: true, "aria-label": `Submit a ${spec.type} job` },
      from && !known ? notice("info", "Arguments not known here", "The job view does not carry this job's arguments, and it was not submitted from this tab: the fields start from the type's defaults.") : null,
      h("fieldset", {}, h("legend", {}, "Arguments"),
        argFields.length ? argFields : h("p", { class: "muted" }, "This job type takes no arguments.")),
      h("details", { class: "options", open: from ? true : null },
        h("summary", {}, "Options: queue, description, timeout, retries, delay"),
        h("fieldset", {}, h("legend", { class: "sr-only" }, "Options"), optionFields(spec, from))),
      summary,
      h("div", { class: "actions" }, submit));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, summary);
      let body;
      try {
        body = { type: spec.type, ...collect(form) };
      } catch (error) {
        if (error instanceof FieldValueError) return showErrors(form, summary, { title: "Check the marked field", errors: [{ loc: error.loc, msg: error.message }] });
        throw error;
      }
      submit.disabled = true;
      try {
        const job = await api("/jobs", { method: "POST", body });
        rememberArgs(job.id, body.args);
        ctx.navigate(`/console/jobs/${encodeURIComponent(job.id)}`);
      } catch (error) {
        if (error instanceof ApiError) showErrors(form, summary, error.problem);
        else replace(summary, notice("error", "The job was not submitted", String(error)));
      } finally {
        submit.disabled = false;
      }
    });
    replace(formBox, form);
  }

  function choose(type) {
    const spec = types.find((t) => t.type === type) || types[0];
    if (!spec) return replace(formBox, notice("info", "No job types", "This service has no job types registered."));
    typeSelect.value = spec.type;
    drawForm(spec);
  }

  typeSelect.addEventListener("change", () => {
    from = null;
    history.replaceState(null, "", `/console/new?${new URLSearchParams({ type: typeSelect.value })}`);
    choose(typeSelect.value);
  });

  Promise.all([api("/job-types"), fromId ? api(`/jobs/${encodeURIComponent(fromId)}`).catch(() => null) : null])
    .then(([list, job]) => {
      types = list;
      from = job;
      replace(typeSelect, types.map((t) => h("option", { value: t.type }, t.type)));
      choose(job?.type || wanted);
    })
    .catch((error) => replace(formBox, notice("error", "Could not load the job types", error.message)));
  return root;
}
