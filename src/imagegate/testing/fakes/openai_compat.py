"""Fake OpenAI-shaped gateway (xAI / Together / Recraft style) for the ``openai_compat`` adapter.

The OpenAI fake in lenient mode: same paths (with or without ``/v1``), Bearer auth and error
envelope, but any ``WxH`` size, no per-model field rules, and ``data[].url`` links on a signed,
expiring blob store unless ``response_format=b64_json`` is asked. It records the last body in
``state.jobs["last_body"]`` so tests can see renamed and dropped fields.
"""

from __future__ import annotations

from fastapi import FastAPI

from imagegate.testing.fakes import openai as openai_fake
from imagegate.testing.fakes.state import FakeState

PROVIDER = "openai_compat"


def create_app(state: FakeState) -> FastAPI:
    return openai_fake.create_app(state, gateway=True)
