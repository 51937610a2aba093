// A job's run as a picture: queued → started → each message → ended, on one time axis, with each
// attempt drawn as its own segment. Also listed as text below the axis for screen readers and
// for reading exact times.

import { duration, formatTime, h } from "./ui.js";

const BOUNDARY = /^attempt (\d+) (ended|lost)\b/;

/**
 * The attempts of a job, oldest first: [{number, start, end, outcome}]. The view's `started_at` is the
 * latest start; messages before it belong to earlier attempts, which end at an "attempt N ended/lost"
 * message or where the progress starts again from a lower value. `attempt` (a count of starts), where
 * the view carries it, is the authority on how many there were.
 */
export function attempts(job) {
  const started = job.started_at;
  const earlier = [];
  let current = null;
  let lastProgress = -1;
  for (const entry of job.messages || []) {
    if (started && entry.time >= started) break;
    const boundary = BOUNDARY.test(entry.message || "");
    if (!current || (!boundary && (entry.progress ?? 0) < lastProgress)) {
      current = { start: entry.time, end: entry.time, outcome: null };
      earlier.push(current);
    }
    current.end = entry.time;
    lastProgress = entry.progress ?? lastProgress;
    if (boundary) {
      current.outcome = entry.message;
      current = null;
      lastProgress = -1;
    }
  }
  const runs = earlier.map((run, index) => ({ number: index + 1, ...run }));
  if (started) runs.push({ number: runs.length + 1, start: started, end: job.ended_at, outcome: job.status });
  const count = Number.isInteger(job.attempt) ? Math.max(job.attempt, runs.length) : runs.length;
  for (const [index, run] of runs.entries()) run.number = count - runs.length + index + 1;
  return { runs, count };
}

function points(job) {
  const out = [];
  if (job.created_at) out.push({ time: job.created_at, kind: "queued", label: "submitted" });
  const { runs } = attempts(job);
  if (job.enqueued_at && job.created_at && Date.parse(job.enqueued_at) - Date.parse(job.created_at) > 1000) {
    out.push({ time: job.enqueued_at, kind: "queued", label: runs.length > 1 ? "queued again" : "queued" });
  }
  for (const entry of job.messages || []) {
    if (!entry.message) continue;
    const boundary = BOUNDARY.test(entry.message);
    out.push({ time: entry.time, kind: boundary ? "attempt" : "message", label: entry.message, progress: entry.progress });
  }
  for (const run of runs.slice(0, -1)) {
    if (!run.outcome) out.push({ time: run.end, kind: "attempt", label: `attempt ${run.number} ended` });
  }
  if (job.started_at) {
    const label = runs.length > 1 ? `attempt ${runs.at(-1).number} started` : "started";
    out.push({ time: job.started_at, kind: "started", label });
  }
  if (job.ended_at) out.push({ time: job.ended_at, kind: `ended ended-${job.status}`, label: job.status });
  return out.filter((p) => p.time).sort((a, b) => a.time.localeCompare(b.time));
}

/** Every milestone, but of many messages only the first and last few. */
function shorten(list, keep = 4) {
  const messages = list.filter((p) => p.kind === "message");
  if (messages.length <= 3 * keep) return list;
  const hidden = new Set(messages.slice(keep, -keep));
  const out = [];
  for (const point of list) {
    if (!hidden.has(point)) out.push(point);
    else if (!out.at(-1)?.gap) out.push({ gap: hidden.size });
  }
  return out;
}

export function timeline(job) {
  const list = points(job);
  if (!list.length) return h("p", { class: "muted" }, "Nothing has happened yet.");
  const first = Date.parse(list[0].time);
  const last = Math.max(Date.parse(list.at(-1).time), job.ended_at ? 0 : Date.now());
  const span = Math.max(last - first, 1);
  const at = (iso) => `${(100 * (Date.parse(iso) - first)) / span}%`;

  const axis = h("div", { class: "tl-axis", "aria-hidden": "true" });
  const { runs } = attempts(job);
  for (const run of runs) {
    if (!run.start) continue;
    const bar = h("span", { class: `tl-run ${run.end ? "" : "tl-run-open"}`, title: `attempt ${run.number}` });
    bar.style.left = at(run.start);
    bar.style.width = `calc(${at(run.end || new Date(last).toISOString())} - ${at(run.start)})`;
    axis.append(bar);
  }
  const waitEnd = runs.find((r) => r.start)?.start || job.ended_at;
  if (waitEnd) {
    const wait = h("span", { class: "tl-wait", title: "waiting" });
    wait.style.left = "0%";
    wait.style.width = at(waitEnd);
    axis.append(wait);
  }
  const messageCount = list.filter((p) => p.kind === "message").length;
  for (const point of list) {
    if (point.kind === "message" && messageCount > 24) continue; // a chatty job: the runs say enough
    const dot = h("span", { class: `tl-dot tl-${point.kind.split(" ")[0]} ${point.kind}`, title: `${formatTime(point.time)} ${point.label}` });
    dot.style.left = at(point.time);
    axis.append(dot);
  }
  const scale = h("div", { class: "tl-scale", "aria-hidden": "true" },
    h("span", {}, formatTime(list[0].time)),
    h("span", {}, job.ended_at ? `${duration(list[0].time, job.ended_at)} in all` : "running…"),
    h("span", {}, formatTime(new Date(last).toISOString())));
  const items = shorten(list).map((point) => point.gap
    ? h("li", { class: "tl-item tl-item-gap" }, `… ${point.gap} more messages (all of them are listed under Messages)`)
    : 
    h("li", { class: `tl-item tl-item-${point.kind.split(" ")[0]}` },
      h("time", { datetime: point.time }, formatTime(point.time)),
      h("span", { class: "tl-label" }, point.label),
      point.progress !== undefined && point.kind === "message" ? h("span", { class: "muted" }, `${Math.round(point.progress)}%`) : null));
  return h("div", { class: "timeline" },
    axis, scale,
    h("ol", { class: "tl-list", "aria-label": "Events of this job, oldest first" }, items));
}
