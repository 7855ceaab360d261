// Shared by the prefine serve pages: building elements safely and calling the API with the key.
"use strict";

// An element with attributes and children; text always goes in as text, never as HTML.
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const keyInput = document.getElementById("api-key");
if (keyInput) {
  keyInput.value = sessionStorage.getItem("prefine-api-key") || "";
  keyInput.addEventListener("change", () => sessionStorage.setItem("prefine-api-key", keyInput.value));
}

// JSON from the API; throws an Error carrying the server's one-line message.
async function api(path, body) {
  const headers = {};
  const key = keyInput ? keyInput.value : "";
  if (key) headers["Authorization"] = "Bearer " + key;
  const options = { headers };
  if (body !== undefined) {
    options.method = "POST";
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) {
    if (response.status === 401 && keyInput) document.getElementById("key-box").open = true;
    throw new Error((payload && payload.error) || `${response.status} ${response.statusText}`);
  }
  return payload;
}

function percent(value) {
  return (100 * value).toFixed(value >= 0.995 || value < 0.0005 ? 0 : 1) + "%";
}
