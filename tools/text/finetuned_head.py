#!/usr/bin/env python3
"""Turn finetune.py's head into models/text-sentiment-head.onnx and measure the fine-tuned text stage.

Run AFTER `export_minilm.py --weights DIR` has written the fine-tuned compact encoder to models/.
Embeddings come from that COMPACT encoder (onnxruntime, 1 thread; cached by embed_cache.py keyed by the model
sha256), so every figure is what the daemon computes (up to tract-vs-onnxruntime float differences).

Steps
  1. head.safetensors (fc1 [H,384], fc2 [3,H]) -> numpy MLP.
  2. Optional class-bias offsets (--bias): a 2-D grid over (b_neg, b_pos) (b_neu = 0) maximising TweetEval
     VALIDATION macro-recall; folded into the last Add of the exported head. Off by default; the figures with and
     without are both written.
  3. Temperature: NLL on the pooled dev sets (airline/dev, meld/dev, sst2/dev, tweeteval/val), as train_head.py.
  4. Test once: tweeteval/test, meld/test. Plus the generated neutral evaluation set, GRID's transcripts and
     RAVDESS's statements, the sarcasm/hedge set and the hand-written customer sentences (never trained on).
Writes models/text-sentiment-head.onnx and tools/text/results/head.json (same keys as train_head.py writes, plus
`finetune`, `ood`, `sarcasm`, `bias`).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import embed_cache  # noqa: E402
import neutral_set  # noqa: E402
import textdata  # noqa: E402
from train_head import (HANDWRITTEN, LABELS, ece, eval_split, export_onnx, fit_temperature,  # noqa: E402
                        softmax)

DEV = textdata.DEV_SPLITS
TEST = ["tweeteval/test", "meld/test"]


class FtHead:
    kind = "mlp"

    def __init__(self, path: Path, bias=(0.0, 0.0, 0.0)):
        from safetensors.numpy import load_file
        w = load_file(str(path))
        self.W1, self.b1 = w["fc1.weight"].T.astype(np.float32), w["fc1.bias"].astype(np.float32)
        self.W2, self.b2 = w["fc2.weight"].T.astype(np.float32), w["fc2.bias"].astype(np.float32)
        self.bias = np.asarray(bias, np.float32)
        self.hidden = self.W1.shape[1]

    def logits(self, X):
        h = np.maximum(X.astype(np.float64) @ self.W1 + self.b1, 0)
        return h @ self.W2 + self.b2 + self.bias

    def layers(self):
        return [(self.W1, self.b1), (self.W2, (self.b2 + self.bias).astype(np.float32))]


def macro_recall(z, y):
    p = z.argmax(1)
    return float(np.mean([((p == c) & (y == c)).sum() / max((y == c).sum(), 1) for c in np.unique(y)]))


def read_csv(p: Path):
    with open(p, newline="", encoding="utf-8") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ft", default="/work/gpu-out/text", help="finetune.py output folder")
    ap.add_argument("--cache", default="/work/cache-text")
    ap.add_argument("--bias", action="store_true", help="apply the TweetEval-val-tuned class-bias offsets")
    a = ap.parse_args()
    cache, ft = Path(a.cache), Path(a.ft)
    res_ft = json.loads((ft / "results.json").read_text())
    enc = embed_cache.Encoder(REPO / "models" / "minilm-l6-v2.onnx", REPO / "models" / "minilm-tokenizer.json")
    data = {s: embed_cache.get(s, cache, encoder=enc) for s in DEV + TEST}

    head = FtHead(ft / "head.safetensors")
    Xv, yv = data["tweeteval/val"][0], data["tweeteval/val"][1]
    zv = head.logits(Xv)
    grid = np.round(np.arange(-1.5, 1.51, 0.1), 2)
    best = (macro_recall(zv, yv), 0.0, 0.0)
    for bn in grid:
        for bp in grid:
            m = macro_recall(zv + np.array([bn, 0.0, bp]), yv)
            if m > best[0] + 1e-9:
                best = (m, float(bn), float(bp))
    bias_info = {"grid": "b_neg, b_pos in -1.5..1.5 step 0.1, b_neu = 0", "criterion": "tweeteval/val macro-recall",
                 "val_without": macro_recall(zv, yv), "val_with": best[0], "b_neg": best[1], "b_pos": best[2],
                 "applied": bool(a.bias)}
    if a.bias:
        head = FtHead(ft / "head.safetensors", (best[1], 0.0, best[2]))
    # figures for the other choice, for the record
    alt = FtHead(ft / "head.safetensors", (0.0, 0.0, 0.0) if a.bias else (best[1], 0.0, best[2]))
    bias_info["other_choice_test"] = {s: eval_split(s, alt.logits(data[s][0]), data[s][1])["macro_recall"]
                                      for s in TEST + ["airline/dev"]}

    dev_logits = {s: head.logits(data[s][0]) for s in DEV}
    zall = np.concatenate([dev_logits[s] for s in DEV])
    yall = np.concatenate([data[s][1] for s in DEV])
    T = fit_temperature(zall, yall)
    dev = {s: {"T1": eval_split(s, dev_logits[s], data[s][1]), "T": eval_split(s, dev_logits[s], data[s][1], T)}
           for s in DEV}
    halves = [np.arange(len(yall)) % 2 == 0, np.arange(len(yall)) % 2 == 1]
    pc = np.zeros((len(yall), 3))
    for a_, b_ in (halves, halves[::-1]):
        pc[b_] = softmax(zall[b_] / fit_temperature(zall[a_], yall[a_]))
    calib = {"pooled_dev_ece_T1": ece(softmax(zall), yall), "pooled_dev_ece_T": ece(softmax(zall / T), yall),
             "pooled_dev_ece_T_crossfit": ece(pc, yall)}
    test = {s: eval_split(s, head.logits(data[s][0]), data[s][1], T) for s in TEST}

    out_path = REPO / "models" / "text-sentiment-head.onnx"
    export_onnx(head, out_path)
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    hs = ort.InferenceSession(str(out_path), so, providers=["CPUExecutionProvider"])

    def run(texts):
        out = []
        for t in texts:
            z = hs.run(None, {"embedding": enc(t)[None, :].astype(np.float32)})[0][0]
            out.append(softmax(z[None, :] / T)[0])
        return np.array(out)

    def labelled(rows):
        p = run([t for t, _ in rows])
        gold = [l for _, l in rows]
        pred = [LABELS[i] for i in p.argmax(1)]
        items = [{"text": t, "gold": g, "pred": pr, "probs": [round(float(v), 3) for v in pp]}
                 for (t, g), pr, pp in zip(rows, pred, p)]
        return items, sum(g == pr for g, pr in zip(gold, pred))

    hand, hand_ok = labelled(HANDWRITTEN)
    ood = {}
    for name, rows in [("neutral_eval", [(s, "neutral") for s, _ in neutral_set.eval_rows()]),
                       ("grid", [(s, "neutral") for s in neutral_set.GRID_EVAL]),
                       ("ravdess", [(s, "neutral") for s in neutral_set.RAVDESS_EVAL])]:
        items, ok = labelled(rows)
        ood[name] = {"n": len(rows), "neutral": ok, "neutral_rate": ok / len(rows),
                     "items": items if name != "neutral_eval" else [i for i in items if i["pred"] != "neutral"]}
    sarc_rows = read_csv(HERE / "data" / "sarcasm_hedges.csv")
    sarc, sarc_ok = labelled(sarc_rows)
    Xs = data["tweeteval/val"][0][:200]
    onnx_z = np.stack([hs.run(None, {"embedding": x[None, :]})[0][0] for x in Xs])

    result = {
        "selection": "finetune.py: TweetEval validation macro-recall per half epoch (encoder and head together)",
        "chosen": {"kind": "mlp", "hidden": head.hidden, "finetuned_encoder": True,
                   "epoch": res_ft["chosen"]["epoch"], "frac": res_ft["chosen"].get("frac"),
                   "dev_score": float(np.mean([dev[s]["T"]["macro_recall"] for s in DEV]))},
        "finetune": {k: res_ft[k] for k in ("settings", "device", "torch", "chosen", "wall_s", "train_rows")
                     if k in res_ft},
        "finetune_epochs": [{"epoch": e["epoch"], "frac": e.get("frac"), "select": e["select_macro_recall"],
                             **{k: v["macro_recall"] for k, v in e["val"].items()}} for e in res_ft["epochs"]],
        "bias": bias_info,
        "temperature": T,
        "temperature_fit": "NLL on the pooled dev sets (" + ", ".join(DEV) + ")",
        "calibration": calib,
        "train_counts": json.loads((ft / "pack.json").read_text())["train_counts"] if (ft / "pack.json").exists()
        else res_ft.get("train_counts", {}),
        "dev": dev, "test": test, "handwritten": hand, "handwritten_correct": hand_ok,
        "ood": ood, "sarcasm": {"n": len(sarc), "correct": sarc_ok, "items": sarc},
        "onnx_vs_numpy_max_abs_logit": float(np.abs(onnx_z - head.logits(Xs)).max()),
    }
    (HERE / "results" / "head.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("chosen", "bias", "temperature", "calibration",
                                               "handwritten_correct")}, indent=1))
    for s in DEV:
        print(s, {k: round(v, 4) for k, v in dev[s]["T"].items() if isinstance(v, float)})
    for s in TEST:
        print(s, {k: round(v, 4) for k, v in test[s].items() if isinstance(v, float)})
    for k, v in ood.items():
        print(k, v["neutral"], "/", v["n"])
    print("sarcasm/hedges", sarc_ok, "/", len(sarc))


if __name__ == "__main__":
    main()
