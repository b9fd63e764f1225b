"""Benchmarks: imagegate side by side with the bare upstream and LiteLLM's proxy (see README.md)."""
