"""Why LLM negatives lose here: scores and norms of e_hard during training; writes
benchmarks/results/llm_negatives.json.

    python benchmarks/diag_llm_negatives.py                      # bank "hnlmrec", 12 epochs
    python benchmarks/diag_llm_negatives.py --bank naive-gemma3-270m --epochs 20

Trains LightGCN with the LLM sampler of one negative bank (notebooks 02/03 build them) for
a fixed number of epochs, for each variant: with alignment, BPR gradient through the
projector or not, optionally the Eq. 7 (v1) mix, e_hard in the L2 term, or e_hard rescaled
to its label's norm. After every epoch it samples one batch
without gradient and records, over the pairs that have LLM candidates: the mean norm of the
BPR negative and of item embeddings, the mean scores s(u, v+), s(u, negative) and
s(u, random item), and valid NDCG@20 (validation only; test is not read).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hnlmrec_lib import notebook  # noqa: E402
from hnlmrec_lib.artifacts import atomic_write_text  # noqa: E402
from hnlmrec_lib.cf import build_backbone  # noqa: E402
from hnlmrec_lib.negatives.methods import sampler_factory  # noqa: E402
from hnlmrec_lib.train import TrainingView, evaluate_valid, train_epoch  # noqa: E402


@torch.no_grad()
def probe(model, sampler, pairs: torch.Tensor, generator: torch.Generator) -> dict:
    hops = model.hop_embeddings()
    user_emb, item_emb = model.pool(hops[0]), model.pool(hops[1])
    users, pos = pairs[:, 0], pairs[:, 1]
    res = sampler.sample(model, users, pos, user_emb, item_emb, generator, hops=hops)
    has = sampler.last.has_candidates
    u = user_emb[users][has]
    neg = res.neg_emb[has][:, 0]
    rnd = item_emb[sampler.last.random_items[has][:, 0]]
    return {"neg_norm": float(neg.norm(dim=-1).mean()), "item_norm": float(item_emb.norm(dim=-1).mean()),
            "s_pos": float((u * item_emb[pos[has]]).sum(-1).mean()),
            "s_neg": float((u * neg).sum(-1).mean()), "s_random": float((u * rnd).sum(-1).mean()),
            "share_with_candidates": float(has.float().mean())}


def trace(cfg, data, store, bank: str, bpr_through: bool, alpha: float | None, l2: bool,
          norm: bool, epochs: int) -> dict:
    view = TrainingView.from_data(data)
    torch.manual_seed(0)
    model = build_backbone("lightgcn", view, cfg.cf)
    sampler = sampler_factory(bank, True, bpr_through, alpha, l2, norm)(view, cfg, store, model)
    opt = torch.optim.Adam([*model.parameters(), *sampler.parameters()], lr=model.lr)
    pairs = torch.from_numpy(np.asarray(view.train)).long()
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    probe_pairs = pairs[torch.randperm(len(pairs), generator=torch.Generator().manual_seed(1))[:2048]]
    rows = []
    for epoch in range(1, epochs + 1):
        stats, _ = train_epoch(model, sampler, opt, pairs, cfg.cf.batch_size, rng, gen)
        model.eval()
        row = {"epoch": epoch, "bpr": stats["bpr"], "aux": stats["aux"],
               **probe(model, sampler, probe_pairs, torch.Generator().manual_seed(2)),
               "valid_ndcg@20": evaluate_valid(model, view, cfg.cf)["ndcg@20"]}
        rows.append({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()})
    return {"bank": bank, "bpr_through_projector": bpr_through, "alpha_mix": alpha,
            "regularize_hard": l2, "match_norm": norm, "epochs": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--bank", default="hnlmrec")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "llm_negatives.json"))
    args = ap.parse_args()
    session = notebook.start(args.preset, {"cf.threads": args.threads})
    cfg, store, data = session.cfg, session.store, session.data()
    variants = [(True, None, False, False), (False, None, False, False), (False, 0.01, False, False),
                (True, None, True, False), (False, None, True, False),
                (True, None, False, True), (False, None, False, True)]
    runs = [trace(cfg, data, store, args.bank, *v, args.epochs) for v in variants]
    atomic_write_text(Path(args.out), json.dumps({"preset": args.preset, "runs": runs}, indent=1))
    for r in runs:
        last = r["epochs"][-1]
        print(r["bpr_through_projector"], r["alpha_mix"], r["regularize_hard"], r["match_norm"],
              {k: last[k] for k in
              ("neg_norm", "item_norm", "s_pos", "s_neg", "s_random", "valid_ndcg@20")})


if __name__ == "__main__":
    main()
