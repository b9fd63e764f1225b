// Catalog (admin keys only): every model with its readiness (naming the credential it is missing), its
// price and capabilities (from /v1/models), its deployments and each one's circuit breaker
// (from /admin/v1/models, as this gateway process sees them).

import { $, api, cell, el, showError } from "./api.js";

const BREAKER = { closed: "closed", open: "open", half_open: "half-open" };

function priceOf(pricing) {
  if (!pricing) return "";
  const parts = [];
  if (pricing.per_image !== undefined) parts.push(`$${pricing.per_image} per image`);
  if (pricing.rules?.length) {
    const units = pricing.rules.map((r) => r.per_image);
    if (pricing.default_per_image !== undefined) units.push(pricing.default_per_image);
    const low = Math.min(...units);
    const high = Math.max(...units);
    parts.push(low === high ? `$${low} per image` : `$${low}–$${high} per image, by request`);
  }
  if (pricing.per_million_tokens) parts.push("token-priced");
  if (pricing.estimate) parts.push("estimate");
  return parts.join(", ") || "free";
}

function sizesOf(caps) {
  if (caps.sizes) return `${caps.sizes.length} size(s)`;
  const rule = caps.size_rule;
  if (rule) return `${rule.min_side || 1}–${rule.max_side || "any"} px a side`;
  if (caps.resolutions) return `resolutions ${caps.resolutions.join(", ")}`;
  return "";
}

function capabilitiesOf(entry) {
  const caps = entry?.capabilities;
  if (!caps) return "";
  const parts = [(caps.modes || []).join(", ")];
  if (caps.max_n) parts.push(`up to ${caps.max_n} image(s) a request`);
  const sizes = sizesOf(caps);
  if (sizes) parts.push(sizes);
  if (caps.formats?.length) parts.push(caps.formats.join("/"));
  return parts.filter(Boolean).join(" · ");
}

function readiness(model) {
  const td = el("td", null, { className: model.ready ? "ready" : "not-ready" });
  td.append(el("strong", model.ready ? "ready" : "not ready"));
  if (!model.ready) {
    const missing = model.missing_env.length ? `missing ${model.missing_env.join(", ")}` : model.not_ready_reason;
    if (missing) td.append(el("span", ` — ${missing}`, { className: "missing" }));
  }
  return td;
}

function deployments(model) {
  const list = el("ul", null, { className: "deployments" });
  for (const d of model.deployments) {
    const item = el("li");
    const breaker = BREAKER[d.breaker] || d.breaker;
    item.append(el("span", d.id, { className: "mono" }), ` ${d.provider} (${d.upstream_model}) · breaker `,
      el("span", breaker, { className: `breaker breaker-${d.breaker}` }));
    if (d.consecutive_failures) item.append(` · ${d.consecutive_failures} failure(s) in a row`);
    if (!d.ready) item.append(el("span", ` · missing ${d.missing_env.join(", ")}`, { className: "missing" }));
    list.append(item);
  }
  const td = el("td");
  td.append(list);
  return td;
}

function modelRow(model, entry) {
  const tr = el("tr");
  tr.dataset.model = model.id;
  tr.append(el("th", model.id, { scope: "row", className: "mono" }), readiness(model), el("td", priceOf(entry?.pricing), { className: "price" }),
    deployments(model), cell(capabilitiesOf(entry)));
  return tr;
}

async function loadModels() {
  const button = $("models-refresh");
  button.disabled = true;
  $("models-status").textContent = "Loading…";
  try {
    const [state, open] = await Promise.all([api("GET", "admin/v1/models"), api("GET", "v1/models?all=true")]);
    const entries = new Map((open.data || []).map((m) => [m.id, m]));
    const models = state.data || [];
    $("models-table").tBodies[0].replaceChildren(...models.map((m) => modelRow(m, entries.get(m.id))));
    const ready = models.filter((m) => m.ready).length;
    $("models-status").textContent = `${models.length} model(s), ${ready} ready; as of ${new Date().toLocaleTimeString()}.`;
    showError($("models-error"), null);
  } catch (err) {
    $("models-status").textContent = "";
    showError($("models-error"), err);
  } finally {
    button.disabled = false;
  }
}

export const panel = {
  name: "models",
  admin: true,
  init() {
    $("models-refresh").addEventListener("click", loadModels);
  },
  enter() {},
  leave() {
    $("models-table").tBodies[0].replaceChildren();
    $("models-status").textContent = "";
    showError($("models-error"), null);
  },
  async show() { await loadModels(); },
  hide() {},
};
