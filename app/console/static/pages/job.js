// /console/jobs/{id} — one job, live from its event stream: progress bar, status, latest message,
// Cancel / Retry / Run again, streamed output, result or error, details, the run as a timeline,
// and every message.

import { api, ApiError, stream } from "../api.js";
import { attempts, timeline } from "../timeline.js";
import {
  ENDED, WAITING, announce, duration, h, notice, progressBar, replace, setBarStatus, setProgress, shortId, statusBadge, timeElement,
} from "../ui.js";

const RETRYABLE = ["failed", "stopped"];

function section(title, ...children) {
  const id = `sec-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function details(job) {
  const { count } = attempts(job);
  const rows = [
    ["Queue", job.queue],
    ["Owner", job.owner],
    ["Created", timeElement(job.created_at)],
    ["Enqueued", timeElement(job.enqueued_at)],
    ["Started", timeElement(job.started_at)],
    ["Ended", timeElement(job.ended_at)],
    ["Ran for", job.started_at ? duration(job.started_at, job.ended_at) : "—"],
    ["Attempts", String(count)],
    ["Retries left", String(job.retries_left ?? 0)],
    ["Timeout", job.timeout ? `${job.timeout} s` : "—"],
    job.position !== null && job.position !== undefined ? ["Place in queue", String(job.position + 1)] : null,
    job.waiting ? ["Waiting for", job.waiting] : null,
    job.schedule_id ? ["Schedule", job.schedule_id] : null,
    job.batch_id ? ["Batch", h("a", { href: `/console/batches/${encodeURIComponent(job.batch_id)}` }, shortId(job.batch_id))] : null,
    job.callback ? ["Callback", callbackText(job.callback)] : null,
  ].filter(Boolean);
  return h("dl", { class: "details" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]));
}

function callbackText(callback) {
  const state = callback.delivered ? "delivered" : "not delivered yet";
  const tries = `${callback.attempts} attempt${callback.attempts === 1 ? "" : "s"}`;
  return [`${state}, ${tries}`, callback.last_error ? h("div", { class: "error-text" }, callback.last_error) : null];
}

function messagesTable(job) {
  const messages = (job.messages || []).filter((m) => m.message);
  if (!messages.length) return h("p", { class: "muted" }, "No messages yet.");
  return h("div", { class: "table-wrap messages-wrap", tabindex: 0, "aria-label": "Messages" }, h("table", { class: "messages" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Time"), h("th", { scope: "col" }, "Progress"), h("th", { scope: "col" }, "Message"))),
    h("tbody", {}, messages.map((m) => h("tr", {},
      h("td", {}, timeElement(m.time)), h("td", {}, `${Math.round(m.progress ?? 0)}%`), h("td", {}, m.message))))));
}

export function jobPage(ctx) {
  const id = ctx.params[0];
  ctx.title(`Job ${shortId(id)}`);
  let job = null;
  let events = null;
  let output = "";
  let outputSeq = 0;
  let outputSeen = false;

  const heading = h("h1", { tabindex: -1 }, "Job");
  const statusLine = h("p", { class: "status-line", role: "status", "aria-live": "polite" });
  const bar = progressBar("Job progress", 0);
  const percent = h("span", { class: "pct-big" }, "0%");
  const latest = h("p", { class: "latest" }); // not live: a chatty job would talk over everything
  const feedback = h("div", { class: "feedback", "aria-live": "assertive" });
  const cancel = h("button", { type: "button", class: "danger", hidden: true }, "Cancel");
  const retry = h("button", { type: "button", class: "secondary", hidden: true }, "Retry");
  const again = h("button", { type: "button", class: "secondary" }, "Run again");
  const outcome = h("div", { class: "outcome" });
  const outputBox = h("pre", { class: "output", tabindex: 0, "aria-label": "Output" });
  const outputSection = section("Output", outputBox);
  outputSection.hidden = true;
  const detailsBox = h("div");
  const timelineBox = h("div");
  const messagesBox = h("div");
  const description = h("p", { class: "muted desc" });

  const root = h("div", { class: "page job-page" },
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "/console/" }, "Jobs"), " / ", h("code", {}, shortId(id))),
    h("div", { class: "page-head" }, heading, statusLine),
    description,
    h("section", { class: "card progress-card", "aria-label": "Progress" },
      h("div", { class: "progress-row" }, bar, percent), latest,
      h("div", { class: "actions" }, cancel, retry, again), feedback),
    outcome,
    outputSection,
    h("div", { class: "grid" },
      section("Details", detailsBox),
      section("Timeline", timelineBox)),
    section("Messages", messagesBox));

  function drawProgress() {
    setProgress(bar, job.progress);
    percent.textContent = `${Math.round(job.progress || 0)}%`;
    const last = [...(job.messages || [])].reverse().find((m) => m.message);
    latest.textContent = last ? last.message : "";
  }

  function draw() {
    heading.textContent = job.type || "Job";
    heading.append(" ", h("code", { class: "job-id", title: job.id }, job.id));
    description.textContent = job.description && job.description !== job.type ? job.description : "";
    replace(statusLine, "Status: ", statusBadge(job.status));
    setBarStatus(bar, job.status);
    drawProgress();
    cancel.hidden = !(WAITING.includes(job.status) || job.status === "started");
    retry.hidden = !RETRYABLE.includes(job.status);
    replace(outcome,
      job.status === "finished" ? section("Result", h("pre", { class: "result" }, JSON.stringify(job.result, null, 2))) : null,
      job.error ? section("Error", h("pre", { class: "error-text" }, job.error)) : null);
    replace(detailsBox, details(job));
    replace(timelineBox, timeline(job));
    replace(messagesBox, messagesTable(job));
  }

  let drawPending = false;
  /** Progress events can come by the hundred (a replay): redraw once per frame. */
  function drawSoon() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      drawProgress();
      replace(detailsBox, details(job)); // "ran for" grows while it runs
      replace(timelineBox, timeline(job));
      replace(messagesBox, messagesTable(job));
    });
  }

  let outputPending = false;
  function appendOutput(text) {
    output += text;
    if (outputPending) return;
    outputPending = true;
    requestAnimationFrame(() => {
      outputPending = false;
      outputSection.hidden = false;
      const atBottom = outputBox.scrollTop + outputBox.clientHeight >= outputBox.scrollHeight - 8;
      outputBox.textContent = output;
      if (atBottom) outputBox.scrollTop = outputBox.scrollHeight;
    });
  }

  function onEvent(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (event.event === "progress") {
      job.progress = data.progress ?? job.progress;
      if (data.message) job.messages = [...(job.messages || []), data];
      drawSoon();
    } else if (event.event === "output") {
      if (typeof data.seq === "number" && data.seq <= outputSeq) return;
      outputSeq = data.seq ?? outputSeq;
      outputSeen = true;
      appendOutput(data.text || "");
    } else if (event.event === "status") {
      // The stream's views leave `waiting` out (it is read from the limits, for GET /jobs/{id} only): a job
      // still queued keeps the reason it was shown.
      if (data.status === "queued" && job?.status === "queued" && !data.waiting) data.waiting = job.waiting;
      job = data;
      draw(); // the status line is a live region: a new status is announced
      if (ENDED.includes(job.status) && !outputSeen) loadOutput();
    }
  }

  function follow() {
    events?.close();
    // From event 0: the output kept so far (and the progress events) are replayed, then live.
    events = stream(`/jobs/${encodeURIComponent(id)}/events`, {
      lastEventId: "0",
      onEvent,
      reconnect: () => !ENDED.includes(job?.status),
    });
  }

  async function loadOutput() {
    try {
      const text = await api(`/jobs/${encodeURIComponent(id)}/output`, { accept: "text/plain" });
      if (typeof text === "string" && text && !outputSeen) {
        output = "";
        appendOutput(text);
      }
    } catch {
      // no output endpoint or no output: the section stays hidden
    }
  }

  async function act(button, request, done) {
    button.disabled = true;
    replace(feedback);
    try {
      job = await request();
      draw();
      done?.();
    } catch (error) {
      replace(feedback, notice("error", "That did not work", error.message));
    } finally {
      button.disabled = false;
    }
  }

  cancel.addEventListener("click", () =>
    act(cancel, () => api(`/jobs/${encodeURIComponent(id)}`, { method: "DELETE" }), () => {
      if (job.status === "started") announce("Stop requested");
    }));
  retry.addEventListener("click", () =>
    act(retry, () => api(`/jobs/${encodeURIComponent(id)}/retry`, { method: "POST" }), () => {
      output = "";
      outputSeq = 0;
      outputSeen = false;
      outputBox.textContent = "";
      follow();
    }));
  again.addEventListener("click", () =>
    ctx.navigate(`/console/new?${new URLSearchParams({ type: job?.type || "", from: id })}`));

  api(`/jobs/${encodeURIComponent(id)}`).then((view) => {
    job = view;
    ctx.title(`${job.type} ${shortId(id)}`);
    draw();
    follow();
  }).catch((error) => {
    const missing = error instanceof ApiError && error.status === 404;
    replace(root, h("h1", { tabindex: -1 }, missing ? "No such job" : "Could not load the job"),
      notice(missing ? "info" : "error", missing ? `There is no job ${id}` : "Error", missing ? "It never existed, has expired, or belongs to another API key." : error.message));
  });
  ctx.onDispose(() => events?.close());
  return root;
}
