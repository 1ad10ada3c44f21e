"""The bundled models for real: the GGUF LLMs (through the dequantised cache) and MiniLM.

The model cache lives in the default preset's artifact store, so running these once also
warms the study (about 2 minutes cold, seconds warm).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hnlmrec_lib.config import LLMConfig, load_preset
from hnlmrec_lib.llm.generate import generate
from hnlmrec_lib.llm.loading import BUNDLED, cached_model_dir, load_causal_lm, load_gguf

pytestmark = pytest.mark.slow

CASES = {  # a prompt each model should get right, and a word the answer must hold
    "smollm2-135m-instruct": ("What is the capital of France? Answer in one word.", "paris"),
    "gemma3-270m": ("Q: What is the capital of Italy?\nA: Rome\n\n"
                    "Q: What is the capital of France?\nA:", "paris"),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # shared busy machine: one thread is as fast and never stalls
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def store_root():
    return load_preset("default").artifact_root


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_llm_generates(store_root, name):
    model, tok = load_causal_lm(name, store_root)
    assert cached_model_dir(name, store_root).joinpath("model.safetensors").exists()
    prompt, word = CASES[name]
    cfg = LLMConfig(max_new_tokens=12, batch_size=2)
    out = generate(model, tok, [prompt, prompt + " "], cfg, stop=["\n\n", "\nQ:"])
    assert all(o.strip() for o in out), out
    assert word in out[0].lower(), out


@pytest.mark.parametrize("name", list(BUNDLED))
def test_cache_matches_gguf_logits(store_root, name, tmp_path):
    """The safetensors cache reproduces the GGUF load exactly (same ids, same logits)."""
    cached, tok = load_causal_lm(name, store_root)
    gguf_model, gguf_tok = load_gguf(BUNDLED[name].gguf_path(tmp_path))
    text = "The user enjoys crime thrillers such as Heat (1995) and Fargo (1996)."
    ids = gguf_tok([text], return_tensors="pt").input_ids
    assert torch.equal(ids, tok([text], return_tensors="pt").input_ids)
    with torch.no_grad():
        assert torch.equal(cached(ids).logits, gguf_model(ids).logits)


def test_embedder_unit_norm_and_similarity(store_root):
    from hnlmrec_lib.llm.embedder import TextEmbedder

    emb = TextEmbedder("all-minilm-l6-v2")
    texts = ["action movie", "thriller film", "cooking recipe"]
    vecs = emb.embed(texts)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sim = vecs @ vecs.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    cached = emb.embed_cached(texts, store_root)
    np.testing.assert_allclose(cached, vecs, atol=1e-6)
