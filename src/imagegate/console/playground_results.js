// Playground answers: the result cards (picture, download link, cost, latency), an async task watched to its end
// with a live progress bar (Cancel included), and the streamed reader that shows previews as they come.

import { $, ApiError, api, el, showError } from "./api.js";

const POLL_MS = 500;
let run = null;  // the task being watched: { id, timer, stopped }

export function watching() {
  return Boolean(run);
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
  const cost = answer.cost === undefined || answer.cost === null ? "cost unknown" : `cost $${answer.cost}`;
  const latency = answer.latency === undefined ? `${wall} ms` : `${answer.latency} ms (round trip ${wall} ms)`;
  const facts = el("span", `${answer.size || ""} · ${cost} · latency ${latency}`, { className: "facts" });
  const caption = el("figcaption");
  caption.append(link, facts);
  const figure = el("figure", null, { className: "result" });
  figure.append(img, caption);
  return figure;
}

export function showImages(answer, started) {
  const wall = Math.round(performance.now() - started);
  const data = answer.data || [];
  $("results").replaceChildren(...data.map((item, i) => resultCard(item, answer, i, wall)));
  $("generate-status").textContent = `Done: ${data.length} image(s) in ${wall} ms.`;
}

export function isTask(answer) {
  return answer?.object === "image.task";
}

export function watch(task, started) {
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

export function finish() {
  const ended = run;
  if (ended) {
    ended.stopped = true;
    clearTimeout(ended.timer);
  }
  run = null;
  $("cancel-task").hidden = true;
  $("generate").disabled = false;
}

export async function cancel() {
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

export async function streamed(path, body) {
  const res = await api("POST", `v1/${path}`, body, { as: "response" });
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
