// Spend (admin keys only): usage over a date range (UTC days), for every key or one, as two bar charts
// (spend per day, spend per model) drawn in SVG with a data table each, the totals, and the CSV export.

import { $, ApiError, api, el, option, showError } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const DAY_MS = 86_400_000;
let generation = 0;  // an answer to an older query than the last one sent is dropped
const WIDTH = 480;  // the charts' viewBox width: they scale to their box

const isoDay = (date) => date.toISOString().slice(0, 10);
const dollars = (value) => `$${Number(value || 0).toFixed(Number(value) && Number(value) < 0.01 ? 4 : 2)}`;

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// the form's range as the API's query: "to" is inclusive on the page, exclusive in the API
function query(extra = {}) {
  const from = $("spend-from").value;
  const to = $("spend-to").value;
  if (!from || !to) {
    throw new ApiError(0, { message: "Enter both dates of the period.", param: from ? "to" : "from" });
  }
  const params = new URLSearchParams({ from, to: isoDay(new Date(Date.parse(to) + DAY_MS)), ...extra });
  if ($("spend-key").value) params.set("key_id", $("spend-key").value);
  return params;
}

// every day of the range, with the API's rows where it has one (days without tasks spend nothing)
function everyDay(rows) {
  const byDay = new Map(rows.map((r) => [r.group, r]));
  const out = [];
  const last = Date.parse($("spend-to").value);
  for (let t = Date.parse($("spend-from").value); t <= last && out.length < 1000; t += DAY_MS) {
    const day = isoDay(new Date(t));
    out.push(byDay.get(day) || { group: day, tasks: 0, succeeded: 0, errors: 0, images: 0, spend_usd: 0 });
  }
  return out;
}

// vertical bars, one per day
function dayChart(rows, summary) {
  const height = 150;
  const top = Math.max(...rows.map((r) => r.spend_usd), 0);
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${height + 26}`, role: "img", "aria-label": summary,
    class: "bars days" });
  const slot = WIDTH / Math.max(rows.length, 1);
  rows.forEach((r, i) => {
    if (!r.spend_usd) return;
    const h = Math.max(1, (r.spend_usd / top) * (height - 24));  // room above for the "max" label
    const bar = svg("rect", { x: i * slot + slot * 0.1, y: height - h, width: Math.max(slot * 0.8, 1), height: h });
    bar.append(svg("title", {}, `${r.group}: ${dollars(r.spend_usd)}, ${r.images} image(s)`));
    chart.append(bar);
  });
  chart.append(svg("line", { x1: 0, x2: WIDTH, y1: height, y2: height, class: "axis" }));
  if (rows.length) {
    chart.append(svg("text", { x: 0, y: height + 20 }, rows[0].group));
    chart.append(svg("text", { x: WIDTH, y: height + 20, "text-anchor": "end" }, rows[rows.length - 1].group));
  }
  chart.append(svg("text", { x: 4, y: 16 }, `max ${dollars(top)}`));
  return chart;
}

// horizontal bars, one per model, the most spent first
function modelChart(rows, summary) {
  const line = 30;
  const label = 180;
  const room = WIDTH - label - 70;
  const top = Math.max(...rows.map((r) => r.spend_usd), 0);
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${Math.max(rows.length, 1) * line}`, role: "img",
    "aria-label": summary, class: "bars models" });
  rows.forEach((r, i) => {
    const y = i * line;
    const w = top ? Math.max(r.spend_usd ? 1 : 0, (r.spend_usd / top) * room) : 0;
    chart.append(svg("text", { x: label - 8, y: y + line * 0.65, "text-anchor": "end" }, r.group));
    if (w) {
      const bar = svg("rect", { x: label, y: y + 4, width: w, height: line - 8 });
      bar.append(svg("title", {}, `${r.group}: ${dollars(r.spend_usd)}, ${r.images} image(s)`));
      chart.append(bar);
    }
    chart.append(svg("text", { x: label + w + 6, y: y + line * 0.65 }, dollars(r.spend_usd)));
  });
  return chart;
}

function dataTable(caption, first, rows) {
  const table = el("table", null, { className: "data" });
  table.append(el("caption", caption));
  const head = el("tr");
  for (const name of [first, "Spend", "Images", "Tasks", "Errors"]) head.append(el("th", name, { scope: "col" }));
  table.append(el("thead"));
  table.tHead.append(head);
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    tr.append(el("th", r.group, { scope: "row" }), el("td", dollars(r.spend_usd)), el("td", String(r.images)),
      el("td", String(r.tasks)), el("td", String(r.errors)));
    body.append(tr);
  }
  table.append(body);
  const box = el("details", null, { className: "chart-data" });
  box.append(el("summary", `Show the numbers (${caption.toLowerCase()})`), el("div", null, { className: "table-wrap" }));
  box.lastChild.append(table);
  return box;
}

function drawChart(figure, ...parts) {
  figure.replaceChildren(figure.querySelector("figcaption"), ...parts);
}

function showTotals(total) {
  const items = [["Spend", dollars(total.spend_usd)], ["Images", total.images], ["Tasks", total.tasks],
    ["Succeeded", total.succeeded], ["Errors", total.errors]];
  const list = $("spend-totals");
  list.replaceChildren();
  for (const [name, value] of items) {
    const item = el("div", null, { className: "total" });
    item.append(el("dt", name), el("dd", String(value), { className: `total-${name.toLowerCase()}` }));
    list.append(item);
  }
}

function render(byDay, byModel) {
  const days = everyDay(byDay.data);
  const models = [...byModel.data].sort((a, b) => b.spend_usd - a.spend_usd || a.group.localeCompare(b.group));
  const total = byDay.total;
  showTotals(total);
  const empty = total.tasks === 0;
  $("spend-empty").hidden = !empty;
  $("spend-charts").hidden = empty;
  const busiest = days.reduce((best, r) => (r.spend_usd > best.spend_usd ? r : best), days[0] || { spend_usd: 0 });
  const range = `${$("spend-from").value} to ${$("spend-to").value}`;
  const daySummary = `Bar chart of spend per day (USD), ${range}: total ${dollars(total.spend_usd)}`
    + (busiest.spend_usd ? `, highest ${dollars(busiest.spend_usd)} on ${busiest.group}` : ", nothing spent");
  const modelSummary = `Bar chart of spend per model (USD), ${range}: `
    + (models.map((r) => `${r.group} ${dollars(r.spend_usd)}`).join(", ") || "none");
  drawChart($("spend-day"), dayChart(days, daySummary), dataTable("Per day", "Day", days.filter((r) => r.tasks)));
  drawChart($("spend-model"), modelChart(models, modelSummary), dataTable("Per model", "Model", models));
}

async function loadUsage(event) {
  event?.preventDefault();
  showError($("spend-error"), null);
  $("spend-status").textContent = "Loading…";
  try {
    const mine = ++generation;
    const [byDay, byModel] = await Promise.all([
      api("GET", `admin/v1/usage?${query({ group_by: "day" })}`),
      api("GET", `admin/v1/usage?${query({ group_by: "model" })}`),
    ]);
    if (mine !== generation) return;
    render(byDay, byModel);
    const who = $("spend-key").value ? $("spend-key").selectedOptions[0].textContent : "every key";
    $("spend-status").textContent = `Usage of ${who}, ${$("spend-from").value} to ${$("spend-to").value} (UTC).`;
  } catch (err) {
    $("spend-status").textContent = "";
    showError($("spend-error"), err);
  }
}

async function loadKeys() {
  const select = $("spend-key");
  const before = select.value;
  try {
    const listing = await api("GET", "admin/v1/keys");
    select.replaceChildren(option("", "All keys"),
      ...(listing.data || []).map((k) => option(k.id, `${k.name} (${k.prefix || k.id})`)));
    if ([...select.options].some((o) => o.value === before)) select.value = before;
  } catch (err) {
    showError($("spend-error"), err);
  }
}

async function downloadCsv() {
  const group = $("spend-csv-group").value;
  const button = $("spend-csv");
  button.disabled = true;
  try {
    const blob = await api("GET", `admin/v1/usage?${query({ group_by: group, format: "csv" })}`, undefined,
      { as: "blob" });
    const url = URL.createObjectURL(blob);
    const link = el("a", "CSV", { href: url, download: `imagegate-usage-by-${group}.csv`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    showError($("spend-error"), null);
  } catch (err) {
    showError($("spend-error"), err);
  } finally {
    button.disabled = false;
  }
}

function defaultRange() {
  const today = new Date();
  $("spend-to").value = isoDay(today);
  $("spend-from").value = isoDay(new Date(today.getTime() - 29 * DAY_MS));
}

export const panel = {
  name: "spend",
  admin: true,
  init() {
    $("spend-form").addEventListener("submit", loadUsage);
    $("spend-csv").addEventListener("click", downloadCsv);
    defaultRange();
  },
  enter() {},
  leave() {
    defaultRange();
    $("spend-key").replaceChildren();
    $("spend-totals").replaceChildren();
    $("spend-status").textContent = "";
    $("spend-empty").hidden = true;
    for (const id of ["spend-day", "spend-model"]) drawChart($(id));
    showError($("spend-error"), null);
  },
  async show() {
    await loadKeys();
    await loadUsage();
  },
  hide() {},
};
