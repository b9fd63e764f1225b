// The Standard Webhooks reference library verifies a callback the gateway sent. Reads
// {secret, headers, body} as JSON on stdin; prints {payload, tampered} (the error of a changed body).
import { Webhook } from "standardwebhooks";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { secret, headers, body } = JSON.parse(Buffer.concat(chunks).toString());
const wh = new Webhook(secret);
const payload = wh.verify(body, headers);
let tampered = null;
try {
  wh.verify(body.replace("succeeded", "failed"), headers);
} catch (e) {
  tampered = e.constructor.name;
}
console.log(JSON.stringify({ payload, tampered }));
