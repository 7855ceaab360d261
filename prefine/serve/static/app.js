// The "try a model" page: pick a served model, fill its inputs, see its prediction drawn by shape.
// Results are rendered from what they hold, not from the task's name, so a task added to prefine
// later shows up with the closest matching view (or as JSON).
"use strict";

const modelSelect = document.getElementById("model");
const fieldsBox = document.getElementById("fields");
const optionsBox = document.getElementById("options");
const compareBox = document.getElementById("compare-box");
const compareList = document.getElementById("compare-list");
const statusLine = document.getElementById("status");
const resultsBox = document.getElementById("results");
const form = document.getElementById("try-form");
const button = document.getElementById("predict");
let models = [];

const FIELD_LABELS = { text: "Text", text_pair: "Second text", question: "Question", context: "Context" };
const SHORT_FIELDS = new Set(["question"]);
const PLACEHOLDERS = {
  "fill-mask": "Write [MASK] where a word should be predicted, e.g. the cat sat on the [MASK].",
};

function selected() {
  return models.find((model) => model.name === modelSelect.value);
}

function showModel() {
  const model = selected();
  if (!model) return;
  document.getElementById("model-info").textContent = `${model.task}: ${model.description} (backend: ${model.backend || "torch"})`;
  fieldsBox.replaceChildren();
  for (const field of model.input_fields) {
    const id = "field-" + field;
    const label = el("label", { for: id }, FIELD_LABELS[field] || field.replace(/_/g, " "));
    const control = SHORT_FIELDS.has(field)
      ? el("input", { id, name: field, type: "text", required: true })
      : el("textarea", { id, name: field, required: field !== "text_pair", rows: field === "context" ? 6 : 3, placeholder: field === "text" ? (PLACEHOLDERS[model.task] || "") : "" });
    fieldsBox.append(label, control);
  }
  optionsBox.replaceChildren();
  for (const [name, value] of Object.entries(model.options || {})) {
    const id = "option-" + name;
    let control;
    if (typeof value === "boolean") control = el("input", { id, name, type: "checkbox", checked: value });
    else if (typeof value === "number") control = el("input", { id, name, type: "number", value, step: Number.isInteger(value) ? 1 : "any" });
    else control = el("input", { id, name, type: "text", value: value === null ? "" : value });
    control.dataset.kind = typeof value;
    optionsBox.append(el("div", { class: "row" }, el("label", { for: id }, name.replace(/_/g, " ")), control));
  }
  const sameInputs = models.filter((other) => other.name !== model.name && other.task === model.task && other.input_fields.join() === model.input_fields.join());
  compareList.replaceChildren(...sameInputs.map((other) =>
    el("label", {}, el("input", { type: "checkbox", name: "compare", value: other.name }), `${other.name} (${other.task})`)));
  compareBox.hidden = sameInputs.length === 0;
}

function readInput() {
  const record = {};
  for (const control of fieldsBox.querySelectorAll("input, textarea")) {
    if (control.value !== "" || control.required) record[control.name] = control.value;
  }
  return record;
}

function readOptions(model) {
  const options = {};
  for (const control of optionsBox.querySelectorAll("input")) {
    if (!(control.name in (model.options || {}))) continue;
    if (control.dataset.kind === "boolean") options[control.name] = control.checked;
    else if (control.dataset.kind === "number") {
      if (control.value === "") continue;
      options[control.name] = Number(control.value);
    } else options[control.name] = control.value;
  }
  return options;
}

// --- views by result shape ------------------------------------------------------------------

function bars(entries) {
  const top = Math.max(...entries.map(([, value]) => value));
  return el("ul", { class: "bars" }, entries.map(([name, value]) =>
    el("li", { class: value === top ? "top" : "" },
      el("span", { class: "name" }, name),
      el("span", { class: "track", role: "img", "aria-label": `${name} ${percent(value)}` }, el("span", { class: "fill", style: `width:${(100 * value).toFixed(1)}%` })),
      el("span", { class: "value" }, percent(value)))));
}

function highlighted(text, spans) {
  // spans: [{start, end, tag}] in characters; overlapping spans keep the first.
  const parts = [];
  let at = 0;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    if (span.start < at || span.end <= span.start) continue;
    parts.push(text.slice(at, span.start));
    parts.push(el("mark", {}, text.slice(span.start, span.end), span.tag ? el("span", { class: "tag" }, span.tag) : null));
    at = span.end;
  }
  parts.push(text.slice(at));
  return el("p", { class: "text" }, parts);
}

function entityTag(entity) {
  return entity.label || entity.type || entity.entity_group || entity.entity || "";
}

function generatedText(output) {
  for (const key of ["generated", "generated_text", "generation", "output", "summary", "translation", "prediction"]) {
    if (typeof output[key] === "string") return output[key];
  }
  return null;
}

function renderOutput(output, input) {
  if (output && typeof output.probabilities === "object") {
    const entries = Object.entries(output.probabilities).sort((a, b) => b[1] - a[1]);
    return el("div", {}, el("p", {}, "Label: ", el("strong", {}, output.label)), bars(entries));
  }
  if (output && typeof output.score === "number" && Object.keys(output).length === 1) {
    return el("p", {}, "Score: ", el("strong", {}, output.score.toFixed(4)));
  }
  if (output && "answer" in output && "start" in output) {
    const context = input.context || "";
    if (!output.answer) return el("p", {}, el("strong", {}, "No answer"), ` (probability ${percent(output.probability || 0)})`);
    return el("div", {},
      el("p", {}, "Answer: ", el("strong", {}, output.answer), ` (probability ${percent(output.probability)})`),
      output.start >= 0 ? highlighted(context, [{ start: output.start, end: output.end }]) : null);
  }
  if (output && Array.isArray(output.masks)) {
    return el("div", {},
      el("p", { class: "text" }, output.filled),
      output.masks.map((candidates, index) => el("div", {},
        el("p", { class: "muted" }, `[MASK] ${index + 1}`),
        bars(candidates.map((candidate) => [candidate.token, candidate.probability])))));
  }
  if (output && Array.isArray(output.entities)) {
    const text = input.text || "";
    const spans = output.entities.filter((entity) => Number.isInteger(entity.start) && Number.isInteger(entity.end))
      .map((entity) => ({ start: entity.start, end: entity.end, tag: entityTag(entity) }));
    return el("div", {}, highlighted(text, spans),
      output.entities.length === 0 ? el("p", { class: "muted" }, "No entities found") : null);
  }
  const generated = output && generatedText(output);
  if (generated !== null && generated !== undefined) return el("p", { class: "text generated" }, generated);
  return el("pre", {}, JSON.stringify(output, null, 2));
}

// Streams a model's events (/v1/stream) into `slot`: text deltas appear as they are decoded,
// then the final output replaces them.
async function streamInto(slot, body, input) {
  const headers = { "Content-Type": "application/json" };
  if (keyInput && keyInput.value) headers["Authorization"] = "Bearer " + keyInput.value;
  const response = await fetch("/v1/stream", { method: "POST", headers, body: JSON.stringify(body) });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  const live = el("p", { class: "text generated", "aria-live": "polite" });
  slot.replaceChildren(live);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    pending += decoder.decode(value || new Uint8Array(), { stream: !done });
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines.filter((text) => text.trim())) {
      const event = JSON.parse(line);
      if (event.error) throw new Error(event.error);
      if (typeof event.delta === "string") live.append(event.delta);
      if (event.output !== undefined) slot.replaceChildren(renderOutput(event.output, input));
    }
    if (done) return;
  }
}

async function predict(event) {
  event.preventDefault();
  const model = selected();
  if (!model) return;
  const input = readInput();
  const names = [model.name, ...[...compareList.querySelectorAll("input:checked")].map((box) => box.value)];
  button.disabled = true;
  statusLine.className = "";
  statusLine.textContent = "Predicting…";
  const started = performance.now();
  const slots = names.map(() => el("div", {}, el("p", { class: "muted" }, "…")));
  resultsBox.replaceChildren(...names.map((name, index) =>
    el("article", { class: "result", "aria-label": `result of ${name}` }, el("h3", {}, name), slots[index])));
  const failures = await Promise.all(names.map(async (name, index) => {
    const target = models.find((candidate) => candidate.name === name);
    const body = { model: name, inputs: [input], options: readOptions(target) };
    try {
      if (target.streams) await streamInto(slots[index], body, input);
      else slots[index].replaceChildren(renderOutput((await api("/v1/predict", body)).outputs[0], input));
      return 0;
    } catch (error) {
      slots[index].replaceChildren(el("p", { class: "error" }, error.message));
      return 1;
    }
  }));
  const failed = failures.reduce((sum, value) => sum + value, 0);
  statusLine.className = failed ? "error" : "";
  statusLine.textContent = failed ? `${failed} of ${names.length} failed` : `Done in ${Math.round(performance.now() - started)} ms`;
  button.disabled = false;
}

async function start() {
  try {
    models = (await api("/v1/models")).models;
  } catch (error) {
    statusLine.className = "error";
    statusLine.textContent = "Could not list the models: " + error.message;
    return;
  }
  modelSelect.replaceChildren(...models.map((model) => el("option", { value: model.name }, `${model.name} (${model.task})`)));
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && models.some((model) => model.name === wanted)) modelSelect.value = wanted;
  showModel();
}

modelSelect.addEventListener("change", showModel);
form.addEventListener("submit", predict);
form.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
});
if (keyInput) keyInput.addEventListener("change", start);
start();
