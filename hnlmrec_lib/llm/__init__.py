"""LLM layer: loading (GGUF, HF, 4-bit), batched generation, robust JSON parsing,
an LLM-call cache, the text embedder and last-token hidden-state encoding."""
