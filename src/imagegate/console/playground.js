// Playground: pick a model, and the form offers only what its /v1/models capabilities accept; generate or edit
// (input images by file, drop or URL, an optional painted mask), sync, streamed (previews as they come) or as a
// task with a live progress bar; the pictures show with download links, cost and latency; the request is offered as curl,
// Python (the openai SDK) or JS (fetch), the key left as $IMAGEGATE_API_KEY.

import { $, ApiError, api, el, option, showError, state } from "./api.js";

const PRESETS = [
  "64x64", "256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024",
  "1536x1024", "1024x1536", "1792x1024", "1024x1792", "2048x2048",
];
const CUSTOM = "custom";
const DEFAULT = "";
const POLL_MS = 500;
const ENV_KEY = "IMAGEGATE_API_KEY";
const PARTIALS = 2;  // previews asked for when streaming (a model may make fewer, or none)
// select id -> [request parameter, capability listing its values, only in edit mode]
const CHOICES = {
  resolution: ["resolution", "resolutions"],
  "aspect-ratio": ["aspect_ratio", "aspect_ratios"],
  quality: ["quality", "qualities"],
  style: ["style", "styles"],
  background: ["background", "backgrounds"],
  "output-format": ["output_format", "formats"],
  moderation: ["moderation", "moderations"],
  "input-fidelity": ["input_fidelity", "input_fidelities", true],
};
// the parameters OpenAI's SDK takes by name; the others go in extra_body
const SDK_PARAMS = {
  generate: new Set(["model", "prompt", "n", "size", "quality", "style", "response_format", "output_format",
    "background", "moderation", "output_compression", "user", "stream", "partial_images"]),
  edit: new Set(["model", "prompt", "n", "size", "quality", "response_format", "output_format", "background",
    "input_fidelity", "output_compression", "user", "stream", "partial_images"]),
};

const inputs = [];  // the edit's input images, in order: { file, name, src } or { url, name, src }
const mask = { painted: false, drawing: false, last: null, src: null };
let run = null;  // the task being watched: { id, timer, stopped }

// ---- the model and its capabilities

function fits(size, rule) {
  const [w, h] = size.split("x").map(Number);
  const multiple = rule.multiple_of || 1;
  return w >= (rule.min_side || 1) && h >= (rule.min_side || 1)
    && w <= (rule.max_side || Infinity) && h <= (rule.max_side || Infinity)
    && w % multiple === 0 && h % multiple === 0
    && (!rule.max_pixels || w * h <= rule.max_pixels)
    && (!rule.min_pixels || w * h >= rule.min_pixels)
    && (!rule.min_ratio || w / h >= rule.min_ratio) && (!rule.max_ratio || w / h <= rule.max_ratio);
}

function sizesOf(caps) {
  if (caps.sizes) return { sizes: caps.sizes, custom: false };
  if (caps.size_rule) return { sizes: PRESETS.filter((s) => fits(s, caps.size_rule)), custom: true };
  return { sizes: [], custom: false };
}

function currentModel() {
  return state.models.find((m) => m.id === $("model").value);
}

function caps() {
  return currentModel()?.capabilities || {};
}

function modesOf(c) {
  const modes = c.modes || ["generate"];
  const edit = modes.some((m) => m === "edit" || m === "multi_image") && (c.max_input_images || 0) > 0;
  return { generate: modes.includes("generate"), edit, mask: edit && modes.includes("mask") };
}

function mode() {
  return $("mode-edit").checked ? "edit" : "generate";
}

function maxInputs() {
  return Math.max(caps().max_input_images || 0, 1);
}

function fillSelect(select, values) {
  const before = select.value;
  select.replaceChildren(option(DEFAULT, "model default"), ...values.map((v) => option(v, v)));
  if (values.includes(before)) select.value = before;
}

function fillModel() {
  const model = currentModel();
  const c = caps();
  const { sizes, custom } = sizesOf(c);
  const size = $("size");
  const before = size.value;
  size.replaceChildren(option(DEFAULT, "model default"), ...sizes.map((s) => option(s, s)));
  if (custom) size.append(option(CUSTOM, "custom…"));
  if ([...size.options].some((o) => o.value === before)) size.value = before;
  $("size-field").hidden = !sizes.length && !custom;
  $("custom-size-field").hidden = size.value !== CUSTOM || $("size-field").hidden;
  for (const [id, [, capName]] of Object.entries(CHOICES)) fillSelect($(id), c[capName] || []);
  const maxN = c.max_n || 1;
  $("n").max = maxN;
  if (Number($("n").value) > maxN) $("n").value = maxN;
  $("n-field").hidden = maxN <= 1;
  $("n-hint").textContent = `1 to ${maxN}`;
  $("seed-field").hidden = !c.seed;
  $("negative-prompt-field").hidden = !c.negative_prompt;
  const modes = modesOf(c);
  $("mode-generate-choice").hidden = !modes.generate;
  $("mode-edit-choice").hidden = !modes.edit;
  $("mode-field").hidden = !(modes.generate && modes.edit);
  if (mode() === "edit" && !modes.edit) $("mode-generate").checked = true;
  if (mode() === "generate" && !modes.generate) $("mode-edit").checked = true;
  const parts = [];
  if (model) {
    parts.push(model.description || model.id);
    const price = model.pricing?.per_image;
    if (price !== undefined) parts.push(`$${price} per image`);
    if (model.ready === false) parts.push("not ready: its provider is not configured");
  }
  $("model-info").textContent = parts.join(" · ");
  showMode();
}

function showMode() {
  const c = caps();
  const edit = mode() === "edit";
  for (const [id, [, capName, editOnly]] of Object.entries(CHOICES)) {
    $(`${id}-field`).hidden = !(c[capName] || []).length || (editOnly && !edit);
  }
  $("edit-inputs").hidden = !edit;
  const over = Math.max(inputs.length - maxInputs(), 0);
  for (let i = 0; i < over; i++) dropInput(inputs.length - 1);
  renderInputs(over ? `The last ${over} left out: this model takes at most ${maxInputs()}.` : "");
}

async function loadModels() {
  const select = $("model");
  try {
    const listing = await api("GET", "v1/models");
    state.models = (listing.data || []).filter((m) => {
      const modes = modesOf(m.capabilities || {});
      return modes.generate || modes.edit;
    });
  } catch (err) {
    showError($("generate-error"), err);
    return;
  }
  const before = select.value;
  select.replaceChildren(...state.models.map((m) => option(m.id, m.ready === false ? `${m.id} (not ready)` : m.id)));
  if (state.models.some((m) => m.id === before)) select.value = before;
  fillModel();
}

// ---- input images and the mask painter

function addFiles(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/"));
  let refused = files.length - images.length;
  for (const file of images) {
    if (inputs.length >= maxInputs()) {
      refused += 1;
      continue;
    }
    inputs.push({ file, name: file.name || "image.png", src: URL.createObjectURL(file) });
  }
  renderInputs(refused ? `${refused} file(s) not added: images only, at most ${maxInputs()} for this model.` : "");
}

function addUrl() {
  const field = $("image-url");
  const text = field.value.trim();
  let url = null;
  try {
    url = new URL(text);
  } catch {
    url = null;
  }
  if (!url || !["http:", "https:"].includes(url.protocol)) {
    renderInputs("Enter an http(s) address of an image.");
    field.focus();
    return;
  }
  if (inputs.length >= maxInputs()) {
    renderInputs(`This model takes at most ${maxInputs()} input image(s).`);
    return;
  }
  inputs.push({ url: url.href, name: url.pathname.split("/").pop() || "image", src: url.href });
  field.value = "";
  renderInputs();
}

function dropInput(index) {
  const [gone] = inputs.splice(index, 1);
  if (gone?.file) URL.revokeObjectURL(gone.src);
}

function removeInput(index) {
  dropInput(index);
  renderInputs(`Input ${index + 1} removed.`);
  const buttons = $("input-previews").querySelectorAll("button");
  (buttons[Math.min(index, buttons.length - 1)] || $("input-images")).focus();
}

function renderInputs(note = "") {
  if (inputs.length && $("generate-error").dataset.inputs) showError($("generate-error"), null);
  const items = inputs.map((inp, i) => {
    const li = el("li");
    const label = `input ${i + 1} (${inp.name})`;
    const remove = el("button", "Remove", { type: "button", className: "secondary", "aria-label": `Remove ${label}` });
    remove.addEventListener("click", () => removeInput(i));
    li.append(el("img", null, { src: inp.src, alt: `Input image ${i + 1}: ${inp.name}` }),
      el("span", inp.name, { className: "name" }), remove);
    return li;
  });
  $("input-previews").replaceChildren(...items);
  const count = `${inputs.length} of at most ${maxInputs()} input image(s).`;
  $("inputs-count").textContent = note ? `${count} ${note}` : count;
  const showMask = mode() === "edit" && modesOf(caps()).mask && inputs.length > 0;
  $("mask-field").hidden = !showMask;
  setMaskImage(showMask ? inputs[0].src : null);
}

function setMaskImage(src) {
  if (mask.src === src) return;
  mask.src = src;
  const img = $("mask-base");
  const canvas = $("mask-canvas");
  canvas.width = 0;
  canvas.height = 0;
  clearMask();
  if (!src) {
    $("mask-note").textContent = "";
    img.removeAttribute("src");
    return;
  }
  $("mask-note").textContent = "";
  img.onload = () => {
    if (mask.src !== src) return;
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    clearMask();
  };
  img.onerror = () => {
    if (mask.src !== src) return;
    $("mask-note").textContent = "This picture does not load here, so no mask can be painted on it; "
      + "it is still sent (the gateway fetches it).";
  };
  img.src = src;
}

function clearMask() {
  const canvas = $("mask-canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  mask.painted = false;
}

function pointAt(event) {
  const canvas = $("mask-canvas");
  const box = canvas.getBoundingClientRect();
  const scale = canvas.width / box.width;
  return { x: (event.clientX - box.left) * scale, y: (event.clientY - box.top) * scale, scale };
}

function paint(from, to) {
  const ctx = $("mask-canvas").getContext("2d");
  const width = Number($("brush-size").value) * to.scale;
  ctx.fillStyle = ctx.strokeStyle = "#e0245e";
  ctx.lineWidth = width;
  ctx.lineCap = "round";
  ctx.beginPath();
  if (from === to) {
    ctx.arc(to.x, to.y, width / 2, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }
  mask.painted = true;
}

function wireMask() {
  const canvas = $("mask-canvas");
  canvas.addEventListener("pointerdown", (event) => {
    if (!canvas.width || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    try {
      canvas.setPointerCapture(event.pointerId);  // keep the stroke when the finger leaves the canvas
    } catch {
      // a pointer the browser no longer tracks: paint without capture
    }
    mask.drawing = true;
    mask.last = pointAt(event);
    paint(mask.last, mask.last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!mask.drawing) return;
    const at = pointAt(event);
    paint(mask.last, at);
    mask.last = at;
  });
  for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) {
    canvas.addEventListener(name, () => { mask.drawing = false; });
  }
  $("mask-clear").addEventListener("click", clearMask);
}

// OpenAI's convention: a PNG the size of the first image, transparent where it may change, opaque elsewhere.
function maskPng() {
  const paintLayer = $("mask-canvas");
  if (!mask.painted || !paintLayer.width) return Promise.resolve(null);
  const out = el("canvas", null, { width: paintLayer.width, height: paintLayer.height });
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.globalCompositeOperation = "destination-out";
  ctx.drawImage(paintLayer, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

function wireInputs() {
  const zone = $("drop-zone");
  $("input-images").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = event.dataTransfer?.files;
    if (files?.length) addFiles(files);
    else {
      const link = (event.dataTransfer?.getData("text/uri-list") || "").split("\n").find((l) => l && !l.startsWith("#"));
      if (link) {
        $("image-url").value = link.trim();
        addUrl();
      }
    }
  });
  $("add-image-url").addEventListener("click", addUrl);
  $("image-url").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addUrl();
    }
  });
  wireMask();
}

// ---- the request the form makes

function fields() {
  const body = { model: $("model").value, prompt: $("prompt").value };
  if (!$("negative-prompt-field").hidden && $("negative-prompt").value.trim()) {
    body.negative_prompt = $("negative-prompt").value.trim();
  }
  if (!$("size-field").hidden) {
    const size = $("size").value === CUSTOM ? $("custom-size").value.trim() : $("size").value;
    if (size) body.size = size;
  }
  for (const [id, [param]] of Object.entries(CHOICES)) {
    if (!$(`${id}-field`).hidden && $(id).value) body[param] = $(id).value;
  }
  const n = Number($("n").value);
  if (!$("n-field").hidden && $("n").value !== "" && n !== 1) body.n = n;
  if (!$("seed-field").hidden && $("seed").value !== "") body.seed = Number($("seed").value);
  if ($("stream").checked) {
    Object.assign(body, { stream: true, partial_images: PARTIALS, response_format: "b64_json" });  // events carry base64
  } else {
    body.response_format = "url";
  }
  if ($("run-async").checked) body.async = true;
  return body;
}

// What the form asks for now: { edit, path, fields, images, masked }; the snippets and the submit share it.
function request() {
  const edit = mode() === "edit";
  return {
    edit,
    path: edit ? "images/edits" : "images/generations",
    fields: fields(),
    images: edit ? inputs.slice() : [],
    masked: edit && !$("mask-field").hidden && mask.painted,
  };
}

async function formData(req) {
  const form = new FormData();
  for (const [name, value] of Object.entries(req.fields)) form.append(name, String(value));
  for (const inp of req.images) {
    if (inp.file) form.append("image[]", inp.file, inp.name);
    else form.append("image[]", inp.url);
  }
  const png = req.masked ? await maskPng() : null;
  if (png) form.append("mask", png, "mask.png");
  return form;
}

// ---- running it

function resultCard(item, answer, index, wall) {
  const src = item.url || `data:image/${answer.output_format || "png"};base64,${item.b64_json}`;
  const img = el("img", null, {
    src, alt: `Generated image ${index + 1} for: ${answer.prompt || $("prompt").value || "(no prompt)"}`,
  });
  const link = el("a", "Download", {
    href: src,
    download: `imagegate-${answer.model || "image"}-${index + 1}.${answer.output_format || "png"}`.replaceAll("/", "-"),
  });
  const cost = answer.cost === undefined || answer.cost === null ? "cost unknown" : `cost $${answer.cost}`;
  const latency = answer.latency === undefined ? `${wall} ms` : `${answer.latency} ms (round trip ${wall} ms)`;
  const facts = el("span", `${answer.size || ""} · ${cost} · latency ${latency}`, { className: "facts" });
  const caption = el("figcaption");
  caption.append(link, facts);
  const figure = el("figure", null, { className: "result" });
  figure.append(img, caption);
  return figure;
}

function showImages(answer, started) {
  const wall = Math.round(performance.now() - started);
  const data = answer.data || [];
  $("results").replaceChildren(...data.map((item, i) => resultCard(item, answer, i, wall)));
  $("generate-status").textContent = `Done: ${data.length} image(s) in ${wall} ms.`;
}

function isTask(answer) {
  return answer?.object === "image.task";
}

async function submit(event) {
  event.preventDefault();
  if (run) return;
  showError($("generate-error"), null);
  $("results").replaceChildren();
  const req = request();
  delete $("generate-error").dataset.inputs;
  if (req.edit && !req.images.length) {
    showError($("generate-error"), new ApiError(0, { message: "Add at least one input image to edit.", param: "image" }));
    $("generate-error").dataset.inputs = "missing";  // the first input added clears it
    $("input-images").focus();
    return;
  }
  $("task-box").hidden = true;
  $("generate-status").textContent = req.edit ? "Editing…" : "Generating…";
  $("generate").disabled = true;
  const started = performance.now();
  try {
    const body = req.edit ? await formData(req) : req.fields;
    if (req.fields.stream) {
      showImages(await streamed(req.path, body), started);
      $("generate").disabled = false;
      return;
    }
    const answer = await api("POST", `v1/${req.path}`, body);
    if (isTask(answer)) {
      watch(answer, started);
      return;
    }
    showImages(answer, started);
  } catch (err) {
    $("generate-status").textContent = "";
    showError($("generate-error"), err instanceof ApiError ? err : new ApiError(0, { message: String(err) }));
  }
  $("generate").disabled = false;
}

function watch(task, started) {
  run = { id: task.id, timer: null, stopped: false, started, said: null };
  $("task-box").hidden = false;
  $("cancel-task").hidden = false;
  $("cancel-task").disabled = false;
  showTask(task);
}

function showTask(task) {
  if (!run || run.id !== task.id) return;
  const bar = $("task-progress");
  const pct = task.status === "succeeded" ? 100 : Math.max(0, Math.min(100, Number(task.progress) || 0));
  bar.value = pct;
  bar.setAttribute("aria-valuetext", `${pct}%, ${task.status}`);
  const parts = [`${pct}%`, task.status];
  if (task.status === "queued" && task.queue_position !== undefined && task.queue_position !== null) {
    parts.push(`position ${task.queue_position} in the queue`);
  }
  $("task-state").textContent = `${parts.join(" · ")} · task ${task.id}`;
  if (run.said !== task.status) $("generate-status").textContent = `Task ${task.status}…`;  // announced once
  run.said = task.status;
  if (task.status === "succeeded") {
    const { started } = run;
    finish();
    showImages(task, started);
  } else if (task.status === "failed") {
    const error = task.error || {};
    finish();
    $("generate-status").textContent = "The task failed.";
    showError($("generate-error"), new ApiError(0, {
      message: `The task failed: ${error.message || "no reason given"}${error.code ? ` (${error.code})` : ""}`,
    }));
  } else if (task.status === "canceled") {
    finish();
    $("generate-status").textContent = "The task was canceled.";
  } else {
    run.timer = setTimeout(poll, POLL_MS);
  }
}

async function poll() {
  const watched = run;
  if (!watched || watched.stopped) return;
  try {
    const task = await api("GET", `v1/tasks/${encodeURIComponent(watched.id)}`);
    if (run === watched && !watched.stopped) showTask(task);
  } catch (err) {
    if (run !== watched || watched.stopped) return;
    showError($("generate-error"), err);
    watched.timer = setTimeout(poll, POLL_MS * 4);  // a hiccup: keep watching, more slowly
  }
}

function finish() {
  const ended = run;
  if (ended) {
    ended.stopped = true;
    clearTimeout(ended.timer);
  }
  run = null;
  $("cancel-task").hidden = true;
  $("generate").disabled = false;
}

async function cancel() {
  if (!run) return;
  const watched = run;
  $("cancel-task").disabled = true;
  try {
    const task = await api("POST", `v1/tasks/${encodeURIComponent(watched.id)}/cancel`);
    if (run === watched) {
      clearTimeout(watched.timer);
      showTask(task);
    }
  } catch (err) {
    $("cancel-task").disabled = false;
    showError($("generate-error"), err);  // a 409: it finished meanwhile; the next poll shows how
  }
}

// ---- streaming (stream: true): OpenAI's image events as server-sent events, previews shown as they come

async function streamed(path, body) {
  const headers = { authorization: `Bearer ${state.key}` };
  if (!(body instanceof FormData)) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(`v1/${path}`, { method: "POST", headers, body: body instanceof FormData ? body : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { message: `The gateway could not be reached (${err.message}).` });
  }
  if (!res.ok) {
    const text = await res.text();
    let data = null;
    try { data = JSON.parse(text); } catch { data = null; }
    throw new ApiError(res.status, data?.error || { message: text || res.statusText });
  }
  const done = [];
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    buffer += value.replaceAll("\r\n", "\n");
    for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
      const data = buffer.slice(0, cut).split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim());
      buffer = buffer.slice(cut + 2);
      if (data.length) onStreamEvent(JSON.parse(data.join("\n")), done);
    }
  }
  $("previews").replaceChildren();
  $("previews").hidden = true;
  const first = done[0] || {};
  return { data: done.map((e) => ({ b64_json: e.b64_json })), size: first.size, output_format: first.output_format };
}

function onStreamEvent(event, done) {
  if (event.type === "error") throw new ApiError(0, event.error || { message: "the stream ended with an error" });
  if (event.type?.endsWith(".partial_image")) {
    const n = (event.partial_image_index ?? 0) + 1;
    const src = `data:image/${event.output_format || "png"};base64,${event.b64_json}`;
    $("previews").replaceChildren(el("img", null, { src, alt: `Preview ${n} of the image being made` }));
    $("previews").hidden = false;
    $("generate-status").textContent = `Preview ${n}…`;
  } else if (event.type?.endsWith(".completed")) {
    done.push(event);
  }
}

// ---- the request as code

function apiBase() {
  return new URL("v1", document.baseURI).href;
}

function sh(text) {
  return `'${String(text).replaceAll("'", "'\\''")}'`;
}

function fileName(inp, i) {
  const clean = inp.name.replace(/[^\w.-]+/g, "_").replace(/^[.-]+/, "");
  return clean || `input-${i + 1}.png`;
}

function curlSnippet(req) {
  const lines = [`curl -sS${req.fields.stream ? "N" : ""} ${sh(`${apiBase()}/${req.path}`)}`,
    `-H "Authorization: Bearer $${ENV_KEY}"`];
  if (!req.edit) {
    lines.push("-H 'Content-Type: application/json'", `-d ${sh(JSON.stringify(req.fields))}`);
  } else {
    for (const [name, value] of Object.entries(req.fields)) lines.push(`--form-string ${sh(`${name}=${value}`)}`);
    req.images.forEach((inp, i) => {
      lines.push(inp.file ? `-F ${sh(`image[]=@${fileName(inp, i)}`)}` : `--form-string ${sh(`image[]=${inp.url}`)}`);
    });
    if (req.masked) lines.push("-F 'mask=@mask.png'");
  }
  return lines.join(" \\\n  ");
}

function py(value) {
  if (typeof value === "boolean") return value ? "True" : "False";
  if (Array.isArray(value)) return `[${value.map(py).join(", ")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${py(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

function pythonSnippet(req) {
  const known = SDK_PARAMS[req.edit ? "edit" : "generate"];
  const args = [];
  const extra = {};
  for (const [name, value] of Object.entries(req.fields)) {
    if (known.has(name)) args.push(`${name}=${py(value)}`);
    else extra[name] = value;
  }
  const notes = [];
  if (req.edit) {
    const files = req.images.map((inp, i) => (inp.file ? `open(${py(fileName(inp, i))}, "rb")` : null)).filter(Boolean);
    const urls = req.images.filter((inp) => !inp.file).map((inp) => inp.url);
    args.push(`image=[${files.join(", ")}]`);
    if (req.masked) args.push('mask=open("mask.png", "rb")');
    if (urls.length) extra.image = urls;
    if (urls.length && files.length && req.images[0].file) {
      notes.push("# the SDK sends the image URLs (extra_body) before the files: the first image is then a URL");
    }
  }
  if (Object.keys(extra).length) args.push(`extra_body=${py(extra)}`);
  return [
    "import os", "", "from openai import OpenAI", "",
    `client = OpenAI(base_url=${py(apiBase())}, api_key=os.environ[${py(ENV_KEY)}])`,
    ...notes,
    `result = client.images.${req.edit ? "edit" : "generate"}(`,
    ...args.map((a) => `    ${a},`),
    ")",
    ...(req.fields.stream
      ? ["for event in result:  # partial_image previews, then one completed event per image", "    print(event.type)"]
      : ["print(result.model_dump_json(indent=2))"]),
  ].join("\n");
}

function jsSnippet(req) {
  const url = JSON.stringify(`${apiBase()}/${req.path}`);
  const auth = `Authorization: \`Bearer \${process.env.${ENV_KEY}}\``;
  const lines = [];
  if (!req.edit) {
    lines.push(`const res = await fetch(${url}, {`, '  method: "POST",',
      `  headers: { ${auth}, "Content-Type": "application/json" },`,
      `  body: JSON.stringify(${JSON.stringify(req.fields, null, 2).replaceAll("\n", "\n  ")}),`, "});");
  } else {
    lines.push('import { openAsBlob } from "node:fs";', "", "const form = new FormData();");
    for (const [name, value] of Object.entries(req.fields)) {
      lines.push(`form.append(${JSON.stringify(name)}, ${JSON.stringify(String(value))});`);
    }
    req.images.forEach((inp, i) => {
      const file = JSON.stringify(fileName(inp, i));
      lines.push(inp.file ? `form.append("image[]", await openAsBlob(${file}), ${file});`
        : `form.append("image[]", ${JSON.stringify(inp.url)});`);
    });
    if (req.masked) lines.push('form.append("mask", await openAsBlob("mask.png"), "mask.png");');
    lines.push(`const res = await fetch(${url}, {`, '  method: "POST",', `  headers: { ${auth} },`,
      "  body: form,", "});");
  }
  lines.push(req.fields.stream ? "console.log(res.status, await res.text());  // server-sent events"
    : "console.log(res.status, JSON.stringify(await res.json(), null, 2));");
  return lines.join("\n");
}

const SNIPPETS = { curl: curlSnippet, python: pythonSnippet, js: jsSnippet };
const LANG_NAMES = { curl: "curl", python: "Python", js: "JS" };

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const range = document.createRange();  // no clipboard here: select it for Ctrl+C
    range.selectNodeContents($("snippet"));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    $("snippet").focus();
    return false;
  }
}

async function showSnippet(lang) {
  const text = SNIPPETS[lang](request());
  $("snippet").textContent = text;
  $("snippet").dataset.lang = lang;
  $("snippet-box").hidden = false;
  await copySnippet();
}

async function copySnippet() {
  const lang = LANG_NAMES[$("snippet").dataset.lang] || "";
  const copied = await copyText($("snippet").textContent);
  $("snippet-status").textContent = copied ? `${lang} copied.` : `${lang} selected: press Ctrl+C (⌘C) to copy.`;
}

export const panel = {
  name: "playground",
  admin: false,
  init() {
    $("model").addEventListener("change", fillModel);
    $("size").addEventListener("change", () => {
      $("custom-size-field").hidden = $("size").value !== CUSTOM;
    });
    for (const id of ["mode-generate", "mode-edit"]) $(id).addEventListener("change", showMode);
    $("generate-form").addEventListener("submit", submit);
    $("cancel-task").addEventListener("click", cancel);
    $("stream").addEventListener("change", () => { if ($("stream").checked) $("run-async").checked = false; });
    $("run-async").addEventListener("change", () => { if ($("run-async").checked) $("stream").checked = false; });
    for (const button of document.querySelectorAll("#panel-playground [data-lang]")) {
      button.addEventListener("click", () => showSnippet(button.dataset.lang));
    }
    $("copy-snippet").addEventListener("click", copySnippet);
    wireInputs();
  },
  async enter() { await loadModels(); },
  leave() {
    finish();
    while (inputs.length) dropInput(0);
    renderInputs();
    state.models = [];
    $("task-box").hidden = true;
    $("previews").replaceChildren();
    $("previews").hidden = true;
    $("results").replaceChildren();
    $("generate-status").textContent = "";
    $("snippet").textContent = "";
    $("snippet-box").hidden = true;
    showError($("generate-error"), null);
  },
  show() {},
  hide() {},
};
