// Playground panel: pick a model, and the form offers only what its /v1/models capabilities accept; generate or edit,
// sync, streamed or as a task. Input images and the mask: playground_inputs.js; what comes back (results, task
// progress, stream previews): playground_results.js; the request as curl / Python / JS: playground_snippets.js.

import { $, ApiError, api, option, showError, state } from "./api.js";
import { dropInput, inputs, maskPainted, maskPng, renderInputs, wireInputs } from "./playground_inputs.js";
import { cancel, finish, isTask, showImages, streamed, watch, watching } from "./playground_results.js";
import { wireSnippets } from "./playground_snippets.js";

const PRESETS = [
  "64x64", "256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024",
  "1536x1024", "1024x1536", "1792x1024", "1024x1792", "2048x2048",
];
const CUSTOM = "custom";
const DEFAULT = "";
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
    masked: edit && !$("mask-field").hidden && maskPainted(),
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

async function submit(event) {
  event.preventDefault();
  if (watching()) return;
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
    wireSnippets(request);
    wireInputs({ maxInputs, maskAllowed: () => mode() === "edit" && modesOf(caps()).mask });
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
