// The upload page: pick, drop or photograph images; each is sent to POST /v1/scan with heatmap=true
// and drawn as a card: the photo, boxes as positioned divs (percent of the image, so they follow any
// screen width), the heatmap overlays (toggled without a new request), the verdict and the scores.
// No external assets, no framework: this file, style.css and index.html are the whole page.
"use strict";

const KEY_STORE = "logo-detector.api-key";
const PARALLEL = 3; // requests in flight from this page; the server micro-batches them together
const COLORS = ["#ff4020", "#20c8ff", "#ffd200", "#a05aff", "#00dc78"];

const $ = (sel) => document.querySelector(sel);
const state = { key: localStorage.getItem(KEY_STORE) || "", authRequired: false, classes: [], queue: [], active: 0 };

function headers() {
  return state.key ? { Authorization: "Bearer " + state.key } : {};
}

function setStatus(text) {
  $("#status").textContent = text;
}

function showKeyPanel(message) {
  $("#key-panel").hidden = false;
  $("#key-message").textContent = message || "";
  $("#api-key").value = state.key;
}

async function errorMessage(resp) {
  try {
    const body = await resp.json();
    if (body && body.error) return body.error.message + " (" + body.error.code + ")";
  } catch (e) {
    /* not JSON */
  }
  return "HTTP " + resp.status;
}

async function loadModelInfo() {
  try {
    const health = await (await fetch("/healthz")).json();
    state.authRequired = health.auth_required;
    if (state.authRequired && !state.key) {
      showKeyPanel("Enter the key the server was started with (--api-key).");
    }
    const resp = await fetch("/v1/model", { headers: headers() });
    if (resp.status === 401) {
      showKeyPanel(state.key ? "That key was refused." : "Enter the key the server was started with (--api-key).");
      $("#model-info").textContent = "model: API key needed";
      return;
    }
    if (!resp.ok) throw new Error(await errorMessage(resp));
    const m = await resp.json();
    state.classes = m.positive_classes;
    $("#key-panel").hidden = true;
    $("#model-info").textContent =
      m.model.name + " · " + m.positive_classes.join(", ") + " · " + m.input_size + " px tiles · " + m.model.backend;
  } catch (e) {
    $("#model-info").textContent = "model info unavailable: " + e.message;
  }
}

function colorFor(label) {
  const i = state.classes.indexOf(label);
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}

function pct(v, total) {
  return (100 * v) / total + "%";
}

function newCard(file) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name || "photo";
  const img = card.querySelector(".photo");
  img.src = URL.createObjectURL(file);
  img.alt = file.name || "uploaded photo";
  $("#results").prepend(card);
  $("#clear").hidden = false;
  return card;
}

function fill(card, r) {
  const verdict = card.querySelector(".verdict");
  verdict.classList.remove("pending");
  verdict.classList.toggle("found", r.has_logo);
  verdict.textContent = r.has_logo ? "Logo found: " + r.labels.join(", ") : "No logo found";

  const scores = card.querySelector(".scores");
  scores.replaceChildren();
  for (const [label, score] of Object.entries(r.scores)) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fillEl = document.createElement("span");
    fillEl.style.width = Math.max(1, score * 100) + "%";
    fillEl.style.background = colorFor(label);
    bar.append(fillEl);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = score.toFixed(3);
    li.append(name, bar, value);
    scores.append(li);
  }

  const layer = card.querySelector(".box-layer");
  const list = card.querySelector(".box-list");
  layer.replaceChildren();
  list.replaceChildren();
  r.boxes.forEach((b, i) => {
    const box = document.createElement("div");
    box.className = "box";
    box.style.left = pct(b.x1, r.width);
    box.style.top = pct(b.y1, r.height);
    box.style.width = pct(b.x2 - b.x1, r.width);
    box.style.height = pct(b.y2 - b.y1, r.height);
    box.style.borderColor = colorFor(b.label);
    const tag = document.createElement("span");
    // Keep the tag inside the picture: below a box at the top edge, right-aligned near the right edge.
    tag.className =
      "box-label" + (b.y1 / r.height < 0.08 ? " below" : "") + (b.x1 / r.width > 0.6 ? " right" : "");
    tag.style.background = colorFor(b.label);
    tag.textContent = b.label + " " + b.score.toFixed(2);
    box.append(tag);
    layer.append(box);
    const li = document.createElement("li");
    li.textContent =
      "#" + (i + 1) + " " + b.label + " " + b.score.toFixed(2) + " at (" + Math.round(b.x1) + ", " +
      Math.round(b.y1) + ")–(" + Math.round(b.x2) + ", " + Math.round(b.y2) + ")";
    list.append(li);
  });

  const heat = card.querySelector(".heat-layer");
  heat.replaceChildren();
  for (const [label, url] of Object.entries(r.heatmaps || {})) {
    const h = document.createElement("img");
    h.src = url;
    h.alt = "heatmap of " + label;
    heat.append(h);
  }

  const t = r.timings_ms || {};
  const ms = (t.tiling || 0) + (t.model || 0) + (t.boxes || 0);
  card.querySelector(".facts").textContent =
    r.width + "×" + r.height + " px · " + r.boxes.length + " box(es) · " + (t.tiles || 0) + " tiles · " +
    (ms / 1000).toFixed(2) + " s";
}

function fail(card, message) {
  const verdict = card.querySelector(".verdict");
  verdict.classList.remove("pending");
  verdict.classList.add("error");
  verdict.textContent = message;
}

async function scanOne(file, card, attempt = 0) {
  const body = new FormData();
  body.append("files", file, file.name || "photo.jpg");
  const resp = await fetch("/v1/scan?heatmap=true", { method: "POST", body, headers: headers() });
  if (resp.status === 401) {
    showKeyPanel("The server refused the key; enter it and add the photo again.");
    throw new Error(await errorMessage(resp));
  }
  if (resp.status === 503 && attempt < 5) {
    const wait = Number(resp.headers.get("Retry-After") || "1");
    await new Promise((ok) => setTimeout(ok, wait * 1000));
    return scanOne(file, card, attempt + 1);
  }
  if (!resp.ok) throw new Error(await errorMessage(resp));
  fill(card, await resp.json());
}

function pump() {
  while (state.active < PARALLEL && state.queue.length) {
    const { file, card } = state.queue.shift();
    state.active += 1;
    scanOne(file, card)
      .catch((e) => fail(card, e.message))
      .finally(() => {
        state.active -= 1;
        setStatus(state.active || state.queue.length ? "Scanning " + (state.active + state.queue.length) + "…" : "");
        pump();
      });
  }
  if (state.active) setStatus("Scanning " + (state.active + state.queue.length) + "…");
}

function addFiles(files) {
  const images = Array.from(files).filter((f) => !f.type || f.type.startsWith("image/"));
  if (!images.length) {
    setStatus("No images among the dropped files.");
    return;
  }
  for (const file of images) state.queue.push({ file, card: newCard(file) });
  pump();
}

function wire() {
  for (const id of ["#pick", "#camera"]) {
    $(id).addEventListener("change", (e) => {
      addFiles(e.target.files);
      e.target.value = "";
    });
  }
  const drop = $("#drop");
  ["dragenter", "dragover"].forEach((t) =>
    drop.addEventListener(t, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    addFiles(e.dataTransfer.files);
  });
  // A file dropped next to the zone must not make the browser navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  const syncToggles = () => {
    document.body.classList.toggle("show-heat", $("#show-heat").checked);
    document.body.classList.toggle("hide-boxes", !$("#show-boxes").checked);
  };
  $("#show-heat").addEventListener("change", syncToggles);
  $("#show-boxes").addEventListener("change", syncToggles);
  syncToggles();

  $("#clear").addEventListener("click", () => {
    $("#results").querySelectorAll(".photo").forEach((img) => URL.revokeObjectURL(img.src));
    $("#results").replaceChildren();
    $("#clear").hidden = true;
  });

  $("#key-panel").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("#api-key").value.trim();
    localStorage.setItem(KEY_STORE, state.key);
    loadModelInfo();
  });
}

wire();
loadModelInfo();
