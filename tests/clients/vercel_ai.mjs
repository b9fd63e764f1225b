// The Vercel AI SDK's OpenAI provider against the gateway. It sends no response_format for
// gpt-image-* models and reads data[].b64_json only. Env: IG_BASE_URL, IG_API_KEY, IG_IMAGE,
// IG_MASK (PNG paths). Prints one JSON object.
import { readFileSync } from "node:fs";
import { createOpenAI } from "@ai-sdk/openai";
import { generateImage } from "ai";

const openai = createOpenAI({ baseURL: `${process.env.IG_BASE_URL}/v1`, apiKey: process.env.IG_API_KEY });
const png = readFileSync(process.env.IG_IMAGE);
const mask = readFileSync(process.env.IG_MASK);
const shown = (r) => ({ images: r.images.map((i) => i.base64), usage: r.usage ?? null, meta: r.providerMetadata?.openai ?? null });

const out = {};
out.test = shown(await generateImage({ model: openai.image("test/test"), prompt: "a fox", size: "512x384", maxRetries: 0 }));
out.gpt = shown(
  await generateImage({
    model: openai.image("gpt-image-2"),
    prompt: "a harbour",
    size: "1024x1024",
    providerOptions: { openai: { quality: "low", moderation: "low" } },
    maxRetries: 0,
  }),
);
out.edit = shown(
  await generateImage({
    model: openai.image("gpt-image-2"),
    prompt: { text: "put them side by side", images: [png, png], mask },
    maxRetries: 0,
  }),
);
console.log(JSON.stringify(out));
