"""LLM layer: JSON repair, the resumable call cache, loading choices, generation, pooling.

Everything here uses tiny random models or fakes, so it needs no model files.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hnlmrec_lib.config import LLMConfig
from hnlmrec_lib.llm import loading
from hnlmrec_lib.llm.cache import LLMCallCache, structured_generate, summarize
from hnlmrec_lib.llm.generate import (MIN_SHARED_PREFIX, _common_prefix_length, _SharedPrefix,
                                      generate, render_prompt)
from hnlmrec_lib.llm.hidden import encode_last_token
from hnlmrec_lib.llm.jsonparse import extract_json
from hnlmrec_lib.llm.loading import LLMLoadError, load_causal_lm

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a shared, busy 2-core machine
    two threads make each small matmul wait for the other (measured ~100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
KEYS = ("summarization", "reasoning")
NEG_KEYS = ("hard_negative_item", "reasoning")

# --- JSON extraction -----------------------------------------------------------------

GOOD = {"summarization": "likes action films", "reasoning": "rated Heat 5"}
JSON_CASES = [
    ("plain", json.dumps(GOOD), KEYS, GOOD),
    ("prose and fence",
     'Sure! Here is the profile:\n```json\n{"summarization": "likes action films", '
     '"reasoning": "rated Heat 5"}\n```\nLet me know if you need more.', KEYS, GOOD),
    ("trailing comma", '{"summarization": "likes action films", "reasoning": "rated Heat 5",}',
     KEYS, GOOD),
    ("single quotes and apostrophe",
     "{'hard_negative_item': 'Schindler's List', 'reasoning': 'too \"heavy\" for him'}",
     NEG_KEYS, {"hard_negative_item": "Schindler's List", "reasoning": 'too "heavy" for him'}),
    ("nested answer",
     '{"response": {"summarization": "likes action films", "reasoning": "rated Heat 5"}}',
     KEYS, GOOD),
    ("nested value kept", '{"summarization": {"genres": ["action", "crime"]}, "reasoning": "r"}',
     KEYS, {"summarization": {"genres": ["action", "crime"]}, "reasoning": "r"}),
    ("cut off mid value", '{"summarization": "likes action films", "reasoning": "rated He',
     KEYS, {"summarization": "likes action films", "reasoning": "rated He"}),
    ("missing two braces", '{"summarization": "s", "reasoning": {"why": ["a", "b"',
     KEYS, {"summarization": "s", "reasoning": {"why": ["a", "b"]}}),
    ("several objects, first lacks keys",
     'Example: {"item": "x"}\nAnswer: {"hard_negative_item": "Babe", "reasoning": "r"} '
     '{"hard_negative_item": "Heat", "reasoning": "q"}',
     NEG_KEYS, {"hard_negative_item": "Babe", "reasoning": "r"}),
    ("python literals and bare keys", '{hard_negative_item: None, reasoning: "no fit", ok: True}',
     NEG_KEYS, {"hard_negative_item": None, "reasoning": "no fit", "ok": True}),
    ("key spelling", '{"Hard Negative Item": "Fargo", "Reasoning": "r"}',
     NEG_KEYS, {"hard_negative_item": "Fargo", "reasoning": "r"}),
    ("missing comma between members", '{"summarization": "s"\n"reasoning": "r"}',
     KEYS, {"summarization": "s", "reasoning": "r"}),
    ("doubled braces", '{{"summarization": "s", "reasoning": "r"}}', KEYS,
     {"summarization": "s", "reasoning": "r"}),
    ("braces inside strings", '{"summarization": "a {weird}, b: c", "reasoning": "x, ]"}', KEYS,
     {"summarization": "a {weird}, b: c", "reasoning": "x, ]"}),
    # failures: None and a reason
    ("no object", "I'm sorry, I cannot determine the user's preferences.", KEYS, None),
    ("empty", "   ", KEYS, None),
    ("not a string", None, KEYS, None),
    ("missing key", '{"summarization": "likes action films"}', KEYS, None),
    ("array only", '["summarization", "reasoning"]', KEYS, None),
    ("garbage in braces", "{ ::: }}} {{{ ,,, }", KEYS, None),
    ("a key cut off", '{"summarization": "s", "reaso', KEYS, None),
]


@pytest.mark.parametrize("label,text,keys,expected", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_extract_json_table(label, text, keys, expected):
    obj, reason = extract_json(text, keys)
    if expected is None:
        assert obj is None and reason, label
    else:
        assert reason == "" and obj is not None, reason
        assert {k: obj[k] for k in expected} == expected


def test_extract_json_reasons_and_never_raises():
    assert "lacks required keys ['reasoning']" in extract_json('{"summarization": "s"}', KEYS)[1]
    assert extract_json("", KEYS)[1] == "empty output"
    rng = np.random.default_rng(0)
    alphabet = list('{}[]"\':,\\ \nabcTrueNone0123')
    for _ in range(300):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 60))))
        obj, reason = extract_json(text, KEYS)
        assert obj is None or set(KEYS) <= set(obj)
    assert extract_json("{" * 5000, KEYS)[0] is None


# --- LLM-call cache: retries and resume after a kill ---------------------------------

def _fake_generate(calls: list):
    """Valid JSON for greedy calls, except prompts holding 'flaky' (valid when sampled)
    and 'hopeless' (never valid)."""
    def fake(model, tok, prompts, cfg, *, seed=None, temperature=None, **_):
        calls.append(list(prompts))
        out = []
        for p in prompts:
            if "hopeless" in p or ("flaky" in p and not temperature):
                out.append("Sorry, no JSON today.")
            else:
                out.append(f'Answer: {{"summarization": "{p}", "reasoning": "seed {seed}"}}')
        return out
    return fake


def test_structured_generate_retries_and_never_crashes(tmp_path):
    calls: list = []
    cfg = LLMConfig(max_retries=2, batch_size=4)
    cache = LLMCallCache(tmp_path)
    prompts = ["p0", "flaky p1", "hopeless p2", "p0"]
    answers = structured_generate(None, None, prompts, KEYS, cfg, cache, "fake",
                                  generate_fn=_fake_generate(calls))
    assert [a.ok for a in answers] == [True, True, False, True]
    assert [a.attempts for a in answers] == [1, 2, 3, 1]
    assert answers[2].parsed is None and len(answers[2].errors) == 3
    assert answers[1].parsed["reasoning"] == "seed 1000"  # the retry sampled with a new seed
    assert [len(c) for c in calls] == [3, 2, 1]            # duplicate prompt generated once
    stats = summarize(answers)
    assert stats["ok"] == 3 and stats["first_try_ok"] == 2 and stats["from_cache"] == 0
    again = structured_generate(None, None, prompts, KEYS, cfg, LLMCallCache(tmp_path), "fake",
                                generate_fn=_fake_generate(calls))
    assert len(calls) == 3 and all(a.cached for a in again)
    assert [a.parsed for a in again] == [a.parsed for a in answers]
    other = structured_generate(None, None, ["p0"], KEYS, cfg, LLMCallCache(tmp_path), "other",
                                generate_fn=_fake_generate(calls))
    assert len(calls) == 4 and not other[0].cached     # the model id is part of the key


def test_uncached_calls_are_batched_by_length(tmp_path):
    """A batch is padded to its longest prompt, so chunks hold prompts of similar length."""
    calls: list = []
    prompts = ["x" * n for n in (50, 3, 40, 5, 30, 4)]
    answers = structured_generate(None, None, prompts, KEYS, LLMConfig(max_retries=0), LLMCallCache(tmp_path),
                                  "fake", generate_fn=_fake_generate(calls), chunk_size=2)
    assert [[len(p) for p in c] for c in calls] == [[3, 4], [5, 30], [40, 50]]
    assert [a.parsed["summarization"] for a in answers] == prompts   # answers in prompt order


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from hnlmrec_lib.config import LLMConfig
    from hnlmrec_lib.llm.cache import LLMCallCache, structured_generate
    n = 0
    def fake(model, tok, prompts, cfg, **kw):
        global n
        n += 1
        if n == 3:
            os.kill(os.getpid(), signal.SIGKILL)   # killed while the third chunk runs
        return ['{{"summarization": "%s", "reasoning": "r"}}' % p for p in prompts]
    prompts = ["prompt %d" % i for i in range(10)]
    structured_generate(None, None, prompts, ["summarization", "reasoning"], LLMConfig(),
                        LLMCallCache({store!r}), "fake", generate_fn=fake, chunk_size=2)
""")


def test_cache_resumes_after_killed_run(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT), store=str(tmp_path / "store")))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    log = tmp_path / "store" / "llm_calls" / "calls.jsonl"
    assert len(log.read_text().splitlines()) == 4          # two finished chunks of two
    with open(log, "a") as fh:                              # and a torn half-written record
        fh.write('{"key": "abc", "raw": "half')
    calls: list = []
    prompts = [f"prompt {i}" for i in range(10)]
    answers = structured_generate(None, None, prompts, KEYS, LLMConfig(),
                                  LLMCallCache(tmp_path / "store"), "fake",
                                  generate_fn=_fake_generate(calls), chunk_size=2)
    computed = [p for c in calls for p in c]
    assert sorted(computed) == sorted(prompts[4:])          # only the unfinished calls
    assert all(a.ok for a in answers)
    assert [a.cached for a in answers] == [True] * 4 + [False] * 6
    assert answers[0].parsed["summarization"] == "prompt 0"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 10 and all(r["ok"] for r in records)


# --- loading -----------------------------------------------------------------------

@pytest.mark.parametrize("name,arch,family", [("gemma3-270m", "Gemma3ForCausalLM", "gemma3"),
                                              ("smollm2-135m-instruct", "LlamaForCausalLM", "llama")])
def test_tiny_random_builds_without_files(tmp_path, monkeypatch, name, arch, family):
    from transformers import AutoModelForCausalLM

    def refuse(*a, **k):
        raise AssertionError("tiny_random must not load weights")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    model, tok = load_causal_lm(name, tmp_path, tiny_random=True)
    assert type(model).__name__ == arch
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert tok.pad_token_id is not None and tok.padding_side == "left"
    assert model.hnlmrec_id == f"tiny-random-{family}/fallback-tok-v1"
    assert (tok.chat_template is not None) == (family == "llama")  # mirrors the real models
    again, _ = load_causal_lm(name, tmp_path, tiny_random=True)
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)                             # seeded: the same tiny model


def test_bundled_cache_miss_then_hit(tmp_path, monkeypatch):
    """A miss dequantises (faked) and saves; a hit loads the folder with identical logits."""
    loads: list = []
    reference = {}

    def fake_load_gguf(path):
        loads.append(path)
        model, tok, _ = loading._tiny_random("smollm2-135m-instruct", tmp_path / "nowhere")
        reference["model"] = model
        return model, tok

    monkeypatch.setattr(loading, "load_gguf", fake_load_gguf)
    monkeypatch.setattr(loading.BundledLLM, "gguf_path", lambda self, scratch: scratch / "x.gguf")
    folder = loading.cached_model_dir("smollm2-135m-instruct", tmp_path)
    folder.mkdir(parents=True)                               # an empty folder is still a miss
    model, tok = load_causal_lm("smollm2-135m-instruct", tmp_path)
    assert len(loads) == 1 and (folder / "config.json").exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp left
    model2, _ = load_causal_lm("smollm2-135m-instruct", tmp_path)
    assert len(loads) == 1                                   # hit: no GGUF load
    ids = tok(["a short prompt"], return_tensors="pt").input_ids
    with torch.no_grad():
        ref = reference["model"](ids).logits
        assert torch.equal(model(ids).logits, ref) and torch.equal(model2(ids).logits, ref)
    assert model.hnlmrec_id.startswith("smollm2-135m-instruct@")


@pytest.mark.parametrize("flag", ["load_in_4bit", "load_in_8bit"])
def test_quantised_refused_without_cuda(tmp_path, monkeypatch, flag):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LLMLoadError, match=f"needs a CUDA GPU.*set {flag}: false"):
        load_causal_lm("gemma3-270m", tmp_path, **{flag: True})


def test_unknown_model_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LLMLoadError, match="not a bundled short name"):
        load_causal_lm("no-such-org/no-such-model", tmp_path)
    with pytest.raises(LLMLoadError, match="dtype"):
        load_causal_lm("gemma3-270m", tmp_path, dtype="float8")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="4-bit loading needs a CUDA GPU")
def test_4bit_loads_on_gpu(tmp_path):
    model, tok = load_causal_lm("smollm2-135m-instruct", tmp_path, tiny_random=True)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    q, qtok = load_causal_lm(str(tmp_path / "tiny"), tmp_path, load_in_4bit=True)
    assert any(type(m).__name__ == "Linear4bit" for m in q.modules())
    out = generate(q, qtok, ["hello", "a longer prompt here"], LLMConfig(max_new_tokens=4))
    assert len(out) == 2 and all(isinstance(o, str) for o in out)


# --- generation --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return load_causal_lm("smollm2-135m-instruct", tmp_path_factory.mktemp("s"), tiny_random=True)


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    return load_causal_lm("gemma3-270m", tmp_path_factory.mktemp("g"), tiny_random=True)


PROMPTS = ["Hi", "Summarize the user in JSON with keys summarization and reasoning.",
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Movies?"}],
           "User profile: likes Heat (1995) and Fargo (1996). Output:", "x"]


@pytest.mark.parametrize("which", ["tiny_llama", "tiny_gemma"])
def test_generate_batch_left_padding(request, which):
    model, tok = request.getfixturevalue(which)
    cfg = LLMConfig(max_new_tokens=6, batch_size=2)
    out = generate(model, tok, PROMPTS, cfg)
    assert len(out) == len(PROMPTS) and all(isinstance(o, str) for o in out)
    assert out == generate(model, tok, PROMPTS, cfg)                       # greedy is repeatable
    assert out == generate(model, tok, PROMPTS, LLMConfig(max_new_tokens=6, batch_size=1))
    sampled = LLMConfig(max_new_tokens=6, batch_size=2, temperature=1.0, seed=3)
    assert generate(model, tok, PROMPTS, sampled) == generate(model, tok, PROMPTS, sampled)


def test_prompt_rendering(tiny_llama, tiny_gemma):
    _, chat_tok = tiny_llama
    _, base_tok = tiny_gemma
    assert render_prompt(chat_tok, "hi").endswith("<|im_start|>assistant\n")
    assert render_prompt(base_tok, "Q: hi\nA:") == "Q: hi\nA:"      # few-shot text verbatim
    assert render_prompt(base_tok, [{"role": "user", "content": "hi"}]) == "User: hi\nAssistant:"
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(*tiny_llama, ["x"], LLMConfig(max_new_tokens=0))
    with pytest.warns(UserWarning, match="lose their first tokens"):
        out = generate(*tiny_gemma, ["a long prompt " * 20], LLMConfig(max_new_tokens=2,
                                                                         max_prompt_tokens=8))
    assert len(out) == 1
    stopped = generate(*tiny_gemma, PROMPTS[:3], LLMConfig(max_new_tokens=8), stop=["e", "\n"])
    assert len(stopped) == 3 and not any("e" in o or "\n" in o for o in stopped)


# --- last-token hidden states ---------------------------------------------------------

@pytest.mark.parametrize("which", ["tiny_llama", "tiny_gemma"])
def test_encode_last_token_left_equals_right(request, which):
    model, tok = request.getfixturevalue(which)
    texts = ["a much longer sequence of several words here", "short", "mid length text"]
    vecs = {}
    for side in ("left", "right"):
        tok.padding_side = side
        enc = tok(texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            vecs[side] = encode_last_token(model, enc.input_ids, enc.attention_mask)
    tok.padding_side = "left"
    assert vecs["left"].shape == (3, model.config.hidden_size)
    torch.testing.assert_close(vecs["left"], vecs["right"], atol=1e-5, rtol=1e-4)
    enc = tok(texts[1:2], return_tensors="pt")
    with torch.no_grad():
        alone = encode_last_token(model, enc.input_ids, enc.attention_mask)
        embeds = model.get_input_embeddings()(enc.input_ids)  # Gemma's module scales itself
        via_embeds = encode_last_token(model, None, enc.attention_mask, inputs_embeds=embeds)
    torch.testing.assert_close(alone[0], vecs["left"][1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(via_embeds, alone, atol=1e-5, rtol=1e-4)


# --- embedding cache (fake embedder: the real one is in test_llm_slow.py) -------------

def test_embed_cached_only_embeds_new_texts(tmp_path):
    from hnlmrec_lib.llm.embedder import TextEmbedder

    seen: list = []

    class Fake(TextEmbedder):
        def __init__(self):
            self.name, self.batch_size = "fake", 2

        dim = 3
        model_id = "fake-1"

        def embed(self, texts, progress=False):
            seen.extend(texts)
            v = np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    emb = Fake()
    first = emb.embed_cached(["a", "bb", "a"], tmp_path)
    assert seen == ["a", "bb"] and first.shape == (3, 3) and first.dtype == np.float32
    second = emb.embed_cached(["bb", "ccc", "a"], tmp_path)
    assert seen == ["a", "bb", "ccc"]
    np.testing.assert_array_equal(second[0], first[1])
    np.testing.assert_array_equal(second[2], first[0])


FEWSHOT = ("You write one-line movie summaries in JSON. Example: Input: Heat (1995) Answer: "
           '{"summarization": "a tense crime epic"}\n')


@pytest.mark.parametrize("which", ["tiny_llama", "tiny_gemma"])
def test_shared_prefix_cache_matches_plain_generation(request, which):
    model, tok = request.getfixturevalue(which)
    prompts = [FEWSHOT + f"Input: {t} Answer:" for t in
               ("Fargo (1996)", "Toy Story (1995)", "Star Wars (1977) and a much longer tail of words",
                "Babe (1995)", "Casablanca (1942)")]
    cfg = LLMConfig(max_new_tokens=8, batch_size=3)
    plain = generate(model, tok, prompts, cfg, prefix_cache=False)
    assert generate(model, tok, prompts, cfg, prefix_cache=True) == plain
    assert _SharedPrefix.build(model, tok, prompts).n_prefix >= MIN_SHARED_PREFIX
    assert _SharedPrefix.build(model, tok, ["Hi", "Hello"]) is None       # nothing worth caching


def test_common_prefix_length():
    assert _common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert _common_prefix_length([[5], [6]]) == 0


def test_shared_prefix_cache_with_a_prompt_over_the_limit(tiny_gemma):
    model, tok = tiny_gemma
    prompts = [FEWSHOT + "Input: Fargo (1996) Answer:", FEWSHOT + "Input: Babe (1995) Answer:",
               FEWSHOT + "Input: " + "a very long list of movies " * 12 + "Answer:"]
    limit = len(tok(prompts[2], add_special_tokens=False).input_ids) - 5
    cfg = LLMConfig(max_new_tokens=6, batch_size=2, max_prompt_tokens=limit)
    with pytest.warns(UserWarning, match="max_prompt_tokens"):
        plain = generate(model, tok, prompts, cfg, prefix_cache=False)
    with pytest.warns(UserWarning, match="max_prompt_tokens"):
        assert generate(model, tok, prompts, cfg, prefix_cache=True) == plain


@pytest.mark.parametrize("full, key", [
    ('{"summarization": "Fans of tense, dark thrillers.", "reasoning": "Heat, Alien"}', "summarization"),
    ('{"summarization": "Likes \\"cult\\" films, e.g. Fargo", "reasoning": "x"}\n\nInput: {', "summarization"),
    ('{"hard negative items": ["Heat (1995)", "Akira (1988)", "Babe"], "reasoning": "dark"}',
     "hard negative items"),
])
def test_answer_stop_keeps_the_answer(full, key):
    """Stopping at the second key loses nothing of the answer the study reads."""
    from hnlmrec_lib.llm.generate import _cut
    from hnlmrec_lib.llm_requests import answer_stops

    stops = answer_stops((key, "reasoning"))
    assert stops == [', "reasoning"']
    cut = _cut(full, stops)
    assert "reasoning" not in cut
    assert extract_json(cut, (key,))[0] == {key: extract_json(full, (key,))[0][key]}
