// Playground: pick a model (its sizes come from /v1/models), write a prompt, generate, see the pictures.

import { $, ApiError, api, el, option, showError, state } from "./api.js";

const PRESETS = [
  "64x64", "256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024",
  "1536x1024", "1024x1536", "1792x1024", "1024x1792", "2048x2048",
];
const CUSTOM = "custom";
const DEFAULT = "";

function fits(size, rule) {
  const [w, h] = size.split("x").map(Number);
  const multiple = rule.multiple_of || 1;
  return w >= (rule.min_side || 1) && h >= (rule.min_side || 1)
    && w <= (rule.max_side || Infinity) && h <= (rule.max_side || Infinity)
    && w % multiple === 0 && h % multiple === 0
    && (!rule.max_pixels || w * h <= rule.max_pixels);
}

function sizesOf(model) {
  const caps = model.capabilities || {};
  if (caps.sizes) return { sizes: caps.sizes, custom: false };
  if (caps.size_rule) return { sizes: PRESETS.filter((s) => fits(s, caps.size_rule)), custom: true };
  return { sizes: [], custom: false };
}

function currentModel() {
  return state.models.find((m) => m.id === $("model").value);
}

function fillSizes() {
  const model = currentModel();
  const select = $("size");
  const before = select.value;
  select.replaceChildren(option(DEFAULT, "model default"));
  if (!model) return;
  const { sizes, custom } = sizesOf(model);
  for (const s of sizes) select.append(option(s, s));
  if (custom) select.append(option(CUSTOM, "custom…"));
  if ([...select.options].some((o) => o.value === before)) select.value = before;
  $("custom-size-field").hidden = select.value !== CUSTOM;
  const caps = model.capabilities || {};
  $("n").max = caps.max_n || 1;
  const price = model.pricing?.per_image;
  const parts = [model.description || model.id];
  if (price !== undefined) parts.push(`$${price} per image`);
  if (model.ready === false) parts.push("not ready: its provider is not configured");
  $("model-info").textContent = parts.join(" · ");
}

async function loadModels() {
  const select = $("model");
  try {
    const listing = await api("GET", "v1/models");
    state.models = (listing.data || []).filter((m) => (m.capabilities?.modes || ["generate"]).includes("generate"));
  } catch (err) {
    showError($("generate-error"), err);
    return;
  }
  const before = select.value;
  select.replaceChildren(...state.models.map((m) => option(m.id, m.ready === false ? `${m.id} (not ready)` : m.id)));
  if (state.models.some((m) => m.id === before)) select.value = before;
  fillSizes();
}

function requestBody() {
  const body = { model: $("model").value, prompt: $("prompt").value, response_format: "url" };
  const size = $("size").value === CUSTOM ? $("custom-size").value.trim() : $("size").value;
  if (size) body.size = size;
  const n = Number($("n").value);
  if ($("n").value !== "" && n !== 1) body.n = n;
  return body;
}

function resultCard(item, answer, index, wall) {
  const src = item.url || `data:image/${answer.output_format || "png"};base64,${item.b64_json}`;
  const img = el("img", null, {
    src, alt: `Generated image ${index + 1} for: ${answer.prompt || $("prompt").value || "(no prompt)"}`,
  });
  const link = el("a", "Download", {
    href: src,
    download: `imagegate-${answer.model || "image"}-${index + 1}.${answer.output_format || "png"}`.replaceAll("/", "-"),
  });
  const cost = answer.cost === undefined ? "cost unknown" : `cost $${answer.cost}`;
  const latency = answer.latency === undefined ? `${wall} ms` : `${answer.latency} ms (round trip ${wall} ms)`;
  const facts = el("span", `${answer.size || ""} · ${cost} · latency ${latency}`, { className: "facts" });
  const caption = el("figcaption");
  caption.append(link, facts);
  const figure = el("figure", null, { className: "result" });
  figure.append(img, caption);
  return figure;
}

async function generate(event) {
  event.preventDefault();
  const button = $("generate");
  showError($("generate-error"), null);
  $("results").replaceChildren();
  $("generate-status").textContent = "Generating…";
  button.disabled = true;
  const started = performance.now();
  try {
    const answer = await api("POST", "v1/images/generations", requestBody());
    const wall = Math.round(performance.now() - started);
    $("results").replaceChildren(...(answer.data || []).map((item, i) => resultCard(item, answer, i, wall)));
    $("generate-status").textContent = `Done: ${(answer.data || []).length} image(s) in ${wall} ms.`;
  } catch (err) {
    $("generate-status").textContent = "";
    showError($("generate-error"), err instanceof ApiError ? err : new ApiError(0, { message: String(err) }));
  } finally {
    button.disabled = false;
  }
}

export const panel = {
  name: "playground",
  admin: false,
  init() {
    $("model").addEventListener("change", fillSizes);
    $("size").addEventListener("change", () => {
      $("custom-size-field").hidden = $("size").value !== CUSTOM;
    });
    $("generate-form").addEventListener("submit", generate);
  },
  async enter() { await loadModels(); },
  leave() {
    state.models = [];
    $("results").replaceChildren();
    $("generate-status").textContent = "";
    showError($("generate-error"), null);
  },
  show() {},
  hide() {},
};
