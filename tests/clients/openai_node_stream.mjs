// The openai Node SDK streaming an image: generate with stream and partial_images, then an edit.
// Env: IG_BASE_URL, IG_API_KEY, IG_IMAGE (a PNG path). Prints one JSON object: each stream's events.
import { readFileSync } from "node:fs";
import OpenAI, { toFile } from "openai";

const client = new OpenAI({ baseURL: `${process.env.IG_BASE_URL}/v1`, apiKey: process.env.IG_API_KEY, maxRetries: 0 });
const seen = async (stream) => {
  const events = [];
  for await (const e of stream) {
    events.push({ type: e.type, index: e.partial_image_index ?? null, b64_json: e.b64_json, size: e.size, usage: e.usage ?? null });
  }
  return events;
};

const out = {};
out.generate = await seen(
  await client.images.generate({ model: "gpt-image-1", prompt: "a lighthouse", size: "1024x1024", stream: true, partial_images: 2 }),
);
const image = await toFile(readFileSync(process.env.IG_IMAGE), "a.png", { type: "image/png" });
out.edit = await seen(await client.images.edit({ model: "gpt-image-1", prompt: "add snow", image, stream: true, partial_images: 1 }));
console.log(JSON.stringify(out));
