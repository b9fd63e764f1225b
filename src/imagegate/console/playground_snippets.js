// Playground "copy as curl / Python / JS": the three snippets built from the form's request (the key left as
// $IMAGEGATE_API_KEY), shown in the snippet box and copied (or selected for Ctrl+C where no clipboard is offered).

import { $ } from "./api.js";

const ENV_KEY = "IMAGEGATE_API_KEY";
// the parameters OpenAI's SDK takes by name; the others go in extra_body
const SDK_PARAMS = {
  generate: new Set(["model", "prompt", "n", "size", "quality", "style", "response_format", "output_format",
    "background", "moderation", "output_compression", "user", "stream", "partial_images"]),
  edit: new Set(["model", "prompt", "n", "size", "quality", "response_format", "output_format", "background",
    "input_fidelity", "output_compression", "user", "stream", "partial_images"]),
};

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

// request(): what the form asks for now, as the panel builds it for its own submit
export function wireSnippets(request) {
  for (const button of document.querySelectorAll("#panel-playground [data-lang]")) {
    button.addEventListener("click", () => showSnippet(button.dataset.lang, request));
  }
  $("copy-snippet").addEventListener("click", copySnippet);
}

async function showSnippet(lang, request) {
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
