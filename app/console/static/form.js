// A form generated from a job type's JSON Schema (pydantic's output): one field per property,
// with its title, description, bounds and default; values read back as JSON of the right type.
// Fields carry ids derived from their `loc` (["args", "steps"] -> "f-args-steps") so a 422's
// `errors[].loc` finds the field its message belongs next to.

import { h, notice, replace } from "./ui.js";

export function fieldId(loc) {
  return `f-${loc.map(String).join("-").replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** The schema of one property without its `null` option: {schema, nullable}. */
function unwrap(schema) {
  const options = schema.anyOf || schema.oneOf;
  if (options) {
    const rest = options.filter((option) => option.type !== "null");
    if (rest.length === 1) return { schema: { ...schema, ...rest[0], anyOf: undefined, oneOf: undefined }, nullable: rest.length < options.length };
  }
  return { schema, nullable: false };
}

function bounds(schema) {
  const parts = [];
  if (schema.minimum !== undefined && schema.maximum !== undefined) parts.push(`${schema.minimum}–${schema.maximum}`);
  else if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  else if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maxLength !== undefined) parts.push(`up to ${schema.maxLength.toLocaleString()} characters`);
  return parts.join(", ");
}

function control(id, name, schema, nullable, value) {
  const kind = schema.type;
  if (schema.enum) {
    return h("select", { id, name }, schema.enum.map((option) => h("option", { value: JSON.stringify(option), selected: option === value }, String(option))));
  }
  if (kind === "boolean") return h("input", { id, name, type: "checkbox", checked: value === true });
  if (kind === "integer" || kind === "number") {
    return h("input", {
      id, name, type: "number", inputmode: kind === "integer" ? "numeric" : "decimal",
      step: kind === "integer" ? 1 : "any", min: schema.minimum, max: schema.maximum,
      value: value ?? "", placeholder: nullable ? "none" : null,
    });
  }
  if (kind === "string") {
    const long = !schema.maxLength || schema.maxLength > 200;
    return long
      ? h("textarea", { id, name, rows: 4, spellcheck: "false" }, value ?? "")
      : h("input", { id, name, type: "text", value: value ?? "", spellcheck: "false" });
  }
  // arrays, objects, references: edited as JSON
  return h("textarea", { id, name, rows: 6, class: "mono", spellcheck: "false", dataset: { json: "1" } },
    value === undefined || value === null ? "" : JSON.stringify(value, null, 2));
}

/** A field: label, control, help text, and an (empty) error slot, for the property at `loc`. */
export function field(loc, schema, { required = false, value, label } = {}) {
  const { schema: inner, nullable } = unwrap(schema);
  const id = fieldId(loc);
  const helpId = `${id}-help`;
  const errorId = `${id}-error`;
  const input = control(id, loc.at(-1), inner, nullable, value === undefined ? inner.default : value);
  input.dataset.loc = JSON.stringify(loc);
  input.dataset.kind = inner.enum ? "enum" : inner.type || "json";
  if (nullable) input.dataset.nullable = "1";
  input.setAttribute("aria-describedby", `${helpId} ${errorId}`);
  if (required) input.setAttribute("aria-required", "true");
  const help = [schema.description || inner.description, bounds(inner), inner.default !== undefined && inner.default !== null ? `default ${JSON.stringify(inner.default)}` : null]
    .filter(Boolean).join(" · ");
  const checkbox = inner.type === "boolean";
  return h("div", { class: `field${checkbox ? " field-check" : ""}`, dataset: { field: id } },
    h("label", { for: id }, label || schema.title || inner.title || loc.at(-1), required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    input,
    h("p", { class: "help", id: helpId }, help),
    h("p", { class: "field-error", id: errorId, hidden: true }));
}

export class FieldValueError extends Error {
  constructor(loc, message) {
    super(message);
    this.loc = loc;
  }
}

/** The value a control holds, as JSON; undefined leaves the property out (the server's default applies). */
export function readValue(input) {
  const kind = input.dataset.kind;
  const loc = JSON.parse(input.dataset.loc);
  if (kind === "boolean") return input.checked;
  if (kind === "enum") return JSON.parse(input.value);
  const raw = input.value.trim();
  if (raw === "") return input.dataset.nullable ? null : undefined;
  if (kind === "integer" || kind === "number") {
    const number = Number(raw);
    if (!Number.isFinite(number)) throw new FieldValueError(loc, "Enter a number");
    return number;
  }
  if (kind === "string") return input.value;
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new FieldValueError(loc, `Not valid JSON: ${error.message}`);
  }
}

export function clearErrors(form, summary) {
  for (const slot of form.querySelectorAll(".field-error")) {
    slot.hidden = true;
    slot.textContent = "";
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  replace(summary);
}

/** Put each error next to its field; the ones without a field go to the summary. Focus the first. */
export function showErrors(form, summary, problem) {
  const loose = [];
  let first = null;
  for (const error of problem.errors || []) {
    const loc = error.loc || [];
    let input = null;
    for (let n = loc.length; n > 0 && !input; n -= 1) input = form.querySelector(`#${fieldId(loc.slice(0, n))}`);
    if (!input) {
      loose.push(`${loc.join(".") || "request"}: ${error.msg}`);
      continue;
    }
    const slot = document.getElementById(`${input.id}-error`);
    slot.textContent = slot.textContent ? `${slot.textContent} ${error.msg}` : error.msg;
    slot.hidden = false;
    input.setAttribute("aria-invalid", "true");
    first ??= input;
  }
  replace(summary, notice("error", problem.title || "The job was not submitted",
    problem.detail || "", loose.length ? h("ul", {}, loose.map((text) => h("li", {}, text))) : null));
  (first || summary).focus?.();
  if (!first) summary.scrollIntoView({ block: "nearest" });
}

/** The request body the form holds: top-level fields, and `args` from the fields under it. */
export function collect(form) {
  const body = { args: {} };
  for (const input of form.querySelectorAll("[data-loc]")) {
    const loc = JSON.parse(input.dataset.loc);
    const value = readValue(input);
    if (value === undefined || (value === null && loc[0] !== "args")) continue;
    if (loc[0] === "args") body.args[loc[1]] = value;
    else body[loc[0]] = value;
  }
  return body;
}

