// The openai Node SDK against the gateway: generate, edit with toFile, and a typed error.
// Env: IG_BASE_URL, IG_API_KEY, IG_IMAGE (a PNG path). Prints one JSON object.
import { readFileSync } from "node:fs";
import OpenAI, { BadRequestError, toFile } from "openai";

const client = new OpenAI({ baseURL: `${process.env.IG_BASE_URL}/v1`, apiKey: process.env.IG_API_KEY, maxRetries: 0 });
const png = readFileSync(process.env.IG_IMAGE);
const item = (r) => ({ b64_json: r.data[0].b64_json ?? null, url: r.data[0].url ?? null, usage: r.usage ?? null });
const failure = async (call) => {
  try {
    await call();
    return null;
  } catch (e) {
    return { name: e.constructor.name, badRequest: e instanceof BadRequestError, status: e.status, param: e.param, code: e.code, message: e.message };
  }
};

const out = {};
out.gpt = item(await client.images.generate({ model: "gpt-image-1", prompt: "a lighthouse", quality: "low", moderation: "low" }));
out.dalle = item(await client.images.generate({ model: "dall-e-3", prompt: "a lighthouse" }));
out.edit = item(
  await client.images.edit({
    model: "gpt-image-1",
    prompt: "add snow",
    image: [await toFile(png, "a.png", { type: "image/png" }), await toFile(png, "b.png", { type: "image/png" })],
    input_fidelity: "high",
  }),
);
out.badN = await failure(() => client.images.generate({ model: "dall-e-3", prompt: "x", n: 2 }));
const one = await toFile(png, "a.png", { type: "image/png" });
out.badFidelity = await failure(() => client.images.edit({ model: "gpt-image-2", prompt: "x", image: one, input_fidelity: "high" }));
out.moderated = await failure(() => client.images.generate({ model: "gpt-image-1", prompt: "a cat [sandbox:moderated]" }));
console.log(JSON.stringify(out));
