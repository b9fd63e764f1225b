// Playground input images (by file, drop zone or URL: previews, Remove, the model's cap) and the mask painter
// (canvas, pointer strokes, brush, Clear, the PNG mask sent with an edit).

import { $, el, showError } from "./api.js";

export const inputs = [];  // the edit's input images, in order: { file, name, src } or { url, name, src }
const mask = { painted: false, drawing: false, last: null, src: null };
let host = null;  // the panel's view of the current model: { maxInputs(), maskAllowed() }, given to wireInputs

export function maskPainted() {
  return mask.painted;
}

function addFiles(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/"));
  let refused = files.length - images.length;
  for (const file of images) {
    if (inputs.length >= host.maxInputs()) {
      refused += 1;
      continue;
    }
    inputs.push({ file, name: file.name || "image.png", src: URL.createObjectURL(file) });
  }
  renderInputs(refused ? `${refused} file(s) not added: images only, at most ${host.maxInputs()} for this model.` : "");
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
  if (inputs.length >= host.maxInputs()) {
    renderInputs(`This model takes at most ${host.maxInputs()} input image(s).`);
    return;
  }
  inputs.push({ url: url.href, name: url.pathname.split("/").pop() || "image", src: url.href });
  field.value = "";
  renderInputs();
}

export function dropInput(index) {
  const [gone] = inputs.splice(index, 1);
  if (gone?.file) URL.revokeObjectURL(gone.src);
}

function removeInput(index) {
  dropInput(index);
  renderInputs(`Input ${index + 1} removed.`);
  const buttons = $("input-previews").querySelectorAll("button");
  (buttons[Math.min(index, buttons.length - 1)] || $("input-images")).focus();
}

export function renderInputs(note = "") {
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
  const count = `${inputs.length} of at most ${host.maxInputs()} input image(s).`;
  $("inputs-count").textContent = note ? `${count} ${note}` : count;
  const showMask = host.maskAllowed() && inputs.length > 0;
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
export function maskPng() {
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

// host: the current model's cap on input images (maxInputs) and whether a mask may be painted now (maskAllowed)
export function wireInputs(given) {
  host = given;
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
