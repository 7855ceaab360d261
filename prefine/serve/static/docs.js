// The /docs page: every operation of /openapi.json with its summary, request body and responses.
// Drawn here rather than by Swagger UI, which would load its scripts from a CDN.
"use strict";

function resolve(spec, schema) {
  // Follow "$ref": "#/components/schemas/Name" one level, enough to show request bodies.
  if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split("/").pop()] || schema;
  return schema;
}

function schemaList(spec, schema) {
  schema = resolve(spec, schema);
  if (!schema || !schema.properties) return el("pre", {}, JSON.stringify(schema || {}, null, 2));
  const required = new Set(schema.required || []);
  return el("dl", {}, Object.entries(schema.properties).flatMap(([name, property]) => [
    el("dt", {}, el("code", {}, name), required.has(name) ? " (required)" : ""),
    el("dd", {}, property.description || property.title || ""),
  ]));
}

async function start() {
  const status = document.getElementById("status");
  let spec;
  try {
    spec = await (await fetch("/openapi.json")).json();
  } catch (error) {
    status.textContent = "Could not read /openapi.json: " + error.message;
    return;
  }
  document.title = `${spec.info.title} ${spec.info.version}: API`;
  const operations = [];
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const body = operation.requestBody && operation.requestBody.content && operation.requestBody.content["application/json"];
      operations.push(el("section", { class: "result item" },
        el("h2", {}, el("code", {}, `${method.toUpperCase()} ${path}`)),
        el("p", {}, operation.summary || ""),
        body ? [el("h3", {}, "Request body"), schemaList(spec, body.schema)] : null,
        el("h3", {}, "Responses"),
        el("ul", {}, Object.entries(operation.responses || {}).map(([code, response]) => el("li", {}, el("code", {}, code), " ", response.description || "")))));
    }
  }
  document.getElementById("operations").replaceChildren(...operations);
}

start();
