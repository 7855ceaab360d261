// The /runs page: the registry's runs, one run's lineage, and its learning curves drawn as SVG.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const tbody = document.querySelector("#runs tbody");
const detail = document.getElementById("detail");
const metricSelect = document.getElementById("metric");
const chart = document.getElementById("chart");
const curveStatus = document.getElementById("curve-status");
let records = [];

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600), minutes = Math.floor((whole % 3600) / 60), rest = whole % 60;
  return hours ? `${hours}h ${minutes}m` : minutes ? `${minutes}m ${rest}s` : `${rest}s`;
}

function keyMetric(run) {
  if (!run.key_metric) return "–";
  const value = run.key_metric.value;
  return `${run.key_metric.name} ${Math.abs(value) < 1 ? value.toFixed(4) : value.toPrecision(5)}`;
}

function runLink(name) {
  return el("button", { type: "button", class: "link", onclick: () => showRun(name) }, name);
}

async function listRuns() {
  let listing;
  try {
    listing = await api("/v1/runs");
  } catch (error) {
    document.getElementById("registry").replaceChildren(el("span", { class: "error" }, error.message));
    return;
  }
  document.getElementById("registry").textContent = listing.message || `Registry: ${listing.registry}`;
  tbody.replaceChildren(...listing.runs.map((run) => el("tr", { "data-name": run.name },
    el("td", {}, runLink(run.name), run.artifact_exists ? null : " (folder missing)"),
    el("td", {}, run.kind), el("td", {}, run.parent || "–"), el("td", {}, run.status), el("td", {}, keyMetric(run)),
    el("td", {}, (run.started_at || "").replace("T", " ").replace("+00:00", "")), el("td", {}, duration(run.duration_seconds)),
    el("td", {}, run.served_as.length ? run.served_as.flatMap((name, index) => [index ? ", " : null, el("a", { href: "/?model=" + encodeURIComponent(name) }, name)]) : "–"))));
  const wanted = new URLSearchParams(location.search).get("run");
  if (wanted) showRun(wanted);
}

async function showRun(name) {
  for (const row of tbody.querySelectorAll("tr")) row.classList.toggle("selected", row.dataset.name === name);
  let run;
  try {
    run = await api("/v1/runs/" + encodeURIComponent(name));
  } catch (error) {
    detail.hidden = false;
    document.getElementById("detail-title").textContent = name;
    curveStatus.textContent = error.message;
    return;
  }
  detail.hidden = false;
  document.getElementById("detail-title").textContent = `${run.kind} ${run.name}`;
  const lineage = document.getElementById("lineage");
  const chain = [...run.ancestors].reverse().map((other) => el("li", {}, runLink(other.name), ` (${other.kind}, ${keyMetric(other)})`));
  chain.push(el("li", { class: "current", "aria-current": "true" }, `${run.name} (${run.kind}, ${keyMetric(run)})`));
  const children = run.descendants.map((other) => el("li", { style: `margin-left:${other.depth * 1.25}rem` }, "↳ ", runLink(other.name), ` (${other.kind}, ${keyMetric(other)})`));
  lineage.replaceChildren(...chain, ...children);

  try {
    records = (await api("/v1/runs/" + encodeURIComponent(name) + "/metrics")).records;
  } catch (error) {
    records = [];
  }
  const metrics = [...new Set(records.flatMap((record) => Object.keys(record).filter((key) => key !== "step" && typeof record[key] === "number")))].sort();
  metricSelect.replaceChildren(...metrics.map((metric) => el("option", { value: metric }, metric)));
  const preferred = metrics.find((metric) => metric === "train/loss") || metrics.find((metric) => metric.startsWith("eval/")) || metrics[0];
  if (preferred) metricSelect.value = preferred;
  drawCurve();
}

function drawCurve() {
  const metric = metricSelect.value;
  const points = records.filter((record) => typeof record[metric] === "number" && typeof record.step === "number").map((record) => [record.step, record[metric]]);
  chart.replaceChildren();
  if (points.length === 0) {
    curveStatus.textContent = "This run logged no metrics.";
    return;
  }
  curveStatus.textContent = `${metric}: ${points.length} points, last ${points[points.length - 1][1].toPrecision(4)} at step ${points[points.length - 1][0]}`;
  const width = 720, height = 300, left = 60, right = 16, top = 16, bottom = 36;
  const xs = points.map((point) => point[0]), ys = points.map((point) => point[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (width - left - right);
  const sy = (y) => top + (y1 === y0 ? 0.5 : 1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${metric} by step, from ${ys[0].toPrecision(4)} to ${ys[ys.length - 1].toPrecision(4)}`);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  add("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom });
  add("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom });
  add("text", { x: left - 6, y: top + 4, "text-anchor": "end" }, y1.toPrecision(3));
  add("text", { x: left - 6, y: height - bottom, "text-anchor": "end" }, y0.toPrecision(3));
  add("text", { x: left, y: height - 12 }, `step ${x0}`);
  add("text", { x: width - right, y: height - 12, "text-anchor": "end" }, `step ${x1}`);
  add("polyline", { class: "curve", points: points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ") });
  if (points.length <= 60) for (const [x, y] of points) add("circle", { class: "dot", cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 3 });
  chart.append(svg);
}

metricSelect.addEventListener("change", drawCurve);
if (keyInput) keyInput.addEventListener("change", listRuns);
listRuns();
