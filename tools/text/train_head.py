#!/usr/bin/env python3
"""Train the 3-class sentiment head (negative, neutral, positive) on frozen MiniLM embeddings.

Embeddings come from the COMPACT models/minilm-l6-v2.onnx (onnxruntime, 1 thread), cached by embed_cache.py.
Train: airline/train + meld/train + sst2/train (SST-2 has only negative/positive labels).
Dev (model selection, temperature): airline/dev, meld/dev, sst2/dev, tweeteval/val.
Selection criterion: the mean over the four dev sets of macro-recall (SST-2: macro over its two classes,
with the 3-way prediction, so a 'neutral' answer counts as an error).
Test (reported once, after selection): tweeteval/test (and meld/test).

Writes models/text-sentiment-head.onnx (embedding float32 [1,384] -> logits float32 [1,3], raw, i.e. before
temperature; probabilities = softmax(logits / temperature)) and tools/text/results/head.json, head_grid.tsv.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import embed_cache  # noqa: E402
import textdata  # noqa: E402

LABELS = textdata.LABELS
TRAIN = ["airline/train", "meld/train", "sst2/train"]
DEV = textdata.DEV_SPLITS
SEED = 0

# Hand-written customer-service sentences with the label a person would give.
HANDWRITTEN = [
    ("I am not happy at all with this service.", "negative"),
    ("Thanks, that was really helpful!", "positive"),
    ("Great, another hour on hold.", "negative"),
    ("My order still hasn't arrived and nobody answers my emails.", "negative"),
    ("I'd like to change the delivery address on my order.", "neutral"),
    ("What time does the store open on Saturday?", "neutral"),
    ("Your agent solved it in two minutes, brilliant job.", "positive"),
    ("This is the third time I'm calling about the same problem.", "negative"),
    ("I want to cancel my subscription.", "neutral"),
    ("Not bad at all, actually.", "positive"),
    ("Oh wonderful, the app crashed again.", "negative"),
    ("Could you send me the invoice by email, please?", "neutral"),
    ("I'm so frustrated, I've been charged twice.", "negative"),
    ("Perfect, thank you so much for your patience.", "positive"),
    ("The technician was supposed to come yesterday but never showed up.", "negative"),
    ("Okay, I'll wait for the confirmation.", "neutral"),
    ("I love the new update, it's much faster.", "positive"),
    ("I can't say I'm impressed.", "negative"),
    ("Yeah, right, 'we value your call'.", "negative"),
    ("My account number is 4 5 7 2.", "neutral"),
    ("No problem, have a nice day.", "positive"),
    ("That's not what I asked for.", "negative"),
]


# ----------------------------------------------------------------------------------------------- metrics
def metrics(y, pred, classes=(0, 1, 2)):
    cm = np.zeros((3, 3), np.int64)
    for a, b in zip(y, pred):
        cm[a, b] += 1
    rec, f1 = [], []
    for c in classes:
        tp = cm[c, c]
        r = tp / max(cm[c].sum(), 1)
        p = tp / max(cm[:, c].sum(), 1)
        rec.append(r)
        f1.append(0.0 if tp == 0 else 2 * p * r / (p + r))
    return {"n": int(len(y)), "accuracy": float((np.asarray(y) == np.asarray(pred)).mean()),
            "macro_f1": float(np.mean(f1)), "macro_recall": float(np.mean(rec)),
            "confusion": cm.tolist()}


def eval_split(split, logits, y, T=1.0):
    p = softmax(logits / T)
    if split.startswith("sst2"):
        m = metrics(y, p.argmax(1), classes=(0, 2))
        m["binary_accuracy"] = float(((p[:, 2] > p[:, 0]).astype(int) * 2 == y).mean())
    else:
        m = metrics(y, p.argmax(1))
    m["nll"] = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())
    m["ece"] = ece(p, y)
    return m


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def ece(p, y, bins=15):
    conf = p.max(1)
    acc = (p.argmax(1) == y).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            e += m.mean() * abs(acc[m].mean() - conf[m].mean())
    return float(e)


# ----------------------------------------------------------------------------------------------- heads
def sample_weights(parts, sst_weight, balance):
    """parts: list of (split, y). Each dataset gets total weight w_d * mean_N (size-normalised); with balance,
    its classes share that equally."""
    mean_n = np.mean([len(y) for _, y in parts])
    out = []
    for split, y in parts:
        w_d = sst_weight if split.startswith("sst2") else 1.0
        present = np.unique(y)
        if balance:
            cnt = np.bincount(y, minlength=3)
            w = np.array([mean_n / (len(present) * cnt[c]) for c in y])
        else:
            w = np.full(len(y), mean_n / len(y))
        out.append(w_d * w)
    w = np.concatenate(out)
    return w / w.mean()


class LinearHead:
    kind = "logreg"

    def __init__(self, C):
        from sklearn.linear_model import LogisticRegression
        self.m = LogisticRegression(C=C, max_iter=2000, tol=1e-6)
        self.C = C

    def fit(self, X, y, w):
        self.m.fit(X, y, sample_weight=w)
        return self

    def logits(self, X):
        return X @ self.m.coef_.T + self.m.intercept_

    def layers(self):
        return [(self.m.coef_.T.astype(np.float32), self.m.intercept_.astype(np.float32))]


class MLPHead:
    kind = "mlp"

    def __init__(self, hidden, alpha):
        from sklearn.neural_network import MLPClassifier
        self.m = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=alpha, activation="relu", batch_size=256,
                               learning_rate_init=1e-3, max_iter=60, early_stopping=True, validation_fraction=0.1,
                               n_iter_no_change=5, random_state=SEED)
        self.hidden, self.alpha = hidden, alpha

    def fit(self, X, y, w):
        self.m.fit(X, y, sample_weight=w)
        return self

    def logits(self, X):
        h = np.maximum(X @ self.m.coefs_[0] + self.m.intercepts_[0], 0)
        return h @ self.m.coefs_[1] + self.m.intercepts_[1]

    def layers(self):
        return [(c.astype(np.float32), b.astype(np.float32)) for c, b in zip(self.m.coefs_, self.m.intercepts_)]


def fit_temperature(logits, y):
    from scipy.optimize import minimize_scalar

    def nll(logt):
        p = softmax(logits / np.exp(logt))
        return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean()
    r = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20)), method="bounded")
    return float(np.exp(r.x))


def export_onnx(head, path: Path):
    inits, nodes, x = [], [], "embedding"
    layers = head.layers()
    for i, (W, b) in enumerate(layers):
        inits += [numpy_helper.from_array(W, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        mm = f"mm{i}"
        last = i == len(layers) - 1
        out = "logits" if last else f"a{i}"
        nodes.append(helper.make_node("MatMul", [x, f"W{i}"], [mm], name=f"matmul{i}"))
        nodes.append(helper.make_node("Add", [mm, f"b{i}"], [out if last else f"z{i}"], name=f"add{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [out], name=f"relu{i}"))
        x = out
    g = helper.make_graph(nodes, "text_sentiment_head",
                          [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 384])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8,
                          producer_name="affectd tools/text/train_head.py")
    m.doc_string = ("Sentiment head on all-MiniLM-L6-v2 embeddings. logits order: negative, neutral, positive. "
                    "Raw logits: probabilities = softmax(logits / temperature), temperature in manifest.toml.")
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))


# ----------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="/work/cache-text")
    ap.add_argument("--quick", action="store_true", help="2-config smoke run (writes to a temp dir, no test sets)")
    a = ap.parse_args()
    cache = Path(a.cache)

    data = {s: embed_cache.get(s, cache) for s in TRAIN + DEV}
    parts = [(s, data[s][1]) for s in TRAIN]
    Xtr = np.concatenate([data[s][0] for s in TRAIN]).astype(np.float64)
    ytr = np.concatenate([data[s][1] for s in TRAIN])

    grid = []
    for C, sw, bal in itertools.product([1.0, 10.0], [0.3, 1.0], [True, False]):
        grid.append(("logreg", dict(C=C), sw, bal))
    if not a.quick:
        for hid, alpha, sw in itertools.product([256, 512], [1e-3, 1e-2], [0.3, 1.0]):
            grid.append(("mlp", dict(hidden=hid, alpha=alpha), sw, True))
    if a.quick:
        grid = grid[:2]

    rows, best = [], None
    for kind, hp, sw, bal in grid:
        t0 = time.time()
        w = sample_weights(parts, sw, bal)
        head = (LinearHead(**hp) if kind == "logreg" else MLPHead(**hp)).fit(Xtr, ytr, w)
        res = {s: eval_split(s, head.logits(data[s][0].astype(np.float64)), data[s][1]) for s in DEV}
        score = float(np.mean([res[s]["macro_recall"] for s in DEV]))
        row = {"kind": kind, **hp, "sst_weight": sw, "balanced": bal, "score": score,
               **{f"{s}_macroR": res[s]["macro_recall"] for s in DEV},
               **{f"{s}_macroF1": res[s]["macro_f1"] for s in DEV},
               "secs": time.time() - t0}
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        if best is None or score > best[0]:
            best = (score, kind, hp, sw, bal, head)

    score, kind, hp, sw, bal, head = best
    dev_logits = {s: head.logits(data[s][0].astype(np.float64)) for s in DEV}
    T = fit_temperature(np.concatenate([dev_logits[s] for s in DEV]), np.concatenate([data[s][1] for s in DEV]))
    dev = {s: {"T1": eval_split(s, dev_logits[s], data[s][1]), "T": eval_split(s, dev_logits[s], data[s][1], T)}
           for s in DEV}
    # honest calibration figure: 2-fold cross-fitted temperature on the pooled dev (fit on odd rows, score even...)
    zall = np.concatenate([dev_logits[s] for s in DEV])
    yall = np.concatenate([data[s][1] for s in DEV])
    halves = [np.arange(len(yall)) % 2 == 0, np.arange(len(yall)) % 2 == 1]
    pc = np.zeros((len(yall), 3))
    for a_, b_ in (halves, halves[::-1]):
        pc[b_] = softmax(zall[b_] / fit_temperature(zall[a_], yall[a_]))
    calib = {"pooled_dev_ece_T1": ece(softmax(zall), yall), "pooled_dev_ece_T": ece(softmax(zall / T), yall),
             "pooled_dev_ece_T_crossfit": ece(pc, yall)}

    # test: once, after selection
    test = {}
    for s in ([] if a.quick else ["tweeteval/test", "meld/test"]):
        X, y, _ = embed_cache.get(s, cache)
        test[s] = eval_split(s, head.logits(X.astype(np.float64)), y, T)

    out_path = REPO / "models" / "text-sentiment-head.onnx"
    res_dir = HERE / "results"
    if a.quick:
        import tempfile
        res_dir = Path(tempfile.mkdtemp(prefix="head-quick-"))
        out_path = res_dir / "text-sentiment-head.onnx"
    export_onnx(head, out_path)

    # hand-written sentences through the shipped files (compact encoder + exported head, onnxruntime)
    import onnxruntime as ort
    enc = embed_cache.Encoder(REPO / "models" / "minilm-l6-v2.onnx", REPO / "models" / "minilm-tokenizer.json")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    hs = ort.InferenceSession(str(out_path), so, providers=["CPUExecutionProvider"])
    hand = []
    for text, gold in HANDWRITTEN:
        z = hs.run(None, {"embedding": enc(text)[None, :].astype(np.float32)})[0][0]
        p = softmax(z[None, :] / T)[0]
        hand.append({"text": text, "gold": gold, "pred": LABELS[int(p.argmax())],
                     "probs": [round(float(v), 3) for v in p]})
    # exported ONNX == numpy head on the dev set
    Xv = data["tweeteval/val"][0][:200]
    onnx_z = np.stack([hs.run(None, {"embedding": x[None, :]})[0][0] for x in Xv])
    onnx_maxdiff = float(np.abs(onnx_z - head.logits(Xv.astype(np.float64))).max())

    result = {
        "selection": "mean macro-recall over dev sets " + ", ".join(DEV),
        "chosen": {"kind": kind, **hp, "sst_weight": sw, "balanced": bal, "dev_score": score},
        "temperature": T,
        "temperature_fit": "NLL on the pooled dev sets (" + ", ".join(DEV) + ")",
        "calibration": calib,
        "train_counts": {s: np.bincount(data[s][1], minlength=3).tolist() for s in TRAIN},
        "dev": dev, "test": test, "handwritten": hand,
        "handwritten_correct": sum(h["pred"] == h["gold"] for h in hand),
        "onnx_vs_numpy_max_abs_logit": onnx_maxdiff,
    }
    res_dir.mkdir(exist_ok=True)
    (res_dir / "head.json").write_text(json.dumps(result, indent=1) + "\n")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(res_dir / "head_grid.tsv", "w") as f:
        f.write("\t".join(keys) + "\n")
        for r in rows:
            f.write("\t".join((f"{r.get(k):.4f}" if isinstance(r.get(k), float) else str(r.get(k, "")))
                              for k in keys) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("dev", "test")}, indent=1))
    for s in DEV:
        print(s, {k: v for k, v in dev[s]["T"].items() if k != "confusion"})
    for s in test:
        print(s, {k: v for k, v in test[s].items() if k != "confusion"})


if __name__ == "__main__":
    main()
