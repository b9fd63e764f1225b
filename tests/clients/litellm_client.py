"""LiteLLM's Python ``image_generation`` against the gateway, run in LiteLLM's own virtual environment.

Env: IG_BASE_URL, IG_API_KEY. Prints one JSON object on its last line.
"""

import json
import os

import litellm

base, key = os.environ["IG_BASE_URL"] + "/v1", os.environ["IG_API_KEY"]
out = {}
gpt = litellm.image_generation(model="openai/gpt-image-1", prompt="a lighthouse", api_base=base, api_key=key)
out["gpt"] = {"b64_json": gpt.data[0].b64_json, "url": gpt.data[0].url}
dalle = litellm.image_generation(model="openai/dall-e-3", prompt="a lighthouse", api_base=base, api_key=key)
out["dalle"] = {"b64_json": dalle.data[0].b64_json, "url": dalle.data[0].url}
try:
    litellm.image_generation(model="openai/gpt-image-1", prompt="a cat [sandbox:moderated]", api_base=base, api_key=key)
    out["moderated"] = None
except Exception as exc:  # noqa: BLE001  (the class is what the test reads)
    out["moderated"] = {
        "name": type(exc).__name__,
        "content_policy": isinstance(exc, litellm.ContentPolicyViolationError),
    }
print(json.dumps(out))
