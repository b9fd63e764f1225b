"""LangChain's ``DallEAPIWrapper`` against the gateway, run in its own virtual environment.

Env: IG_BASE_URL, IG_API_KEY. Prints one JSON object on its last line.
"""

import json
import os

import openai
from langchain_community.utilities.dalle_image_generator import DallEAPIWrapper

base, key = os.environ["IG_BASE_URL"] + "/v1", os.environ["IG_API_KEY"]
out = {}
dalle = DallEAPIWrapper(model="dall-e-3", api_key=key, base_url=base, size="1792x1024", quality="hd")
out["urls"] = dalle.run("a lighthouse").split(dalle.separator)  # run() joins the urls with the separator
try:
    dalle.run("a cat [sandbox:moderated]")
    out["moderated"] = None
except openai.BadRequestError as exc:
    out["moderated"] = {"name": type(exc).__name__, "code": exc.code}
print(json.dumps(out))
