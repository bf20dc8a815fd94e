#!/usr/bin/env python3
"""Voice-emotion head on pooled Whisper encoder features (affectd eval voice --dump-features).

Speaker-independent evaluation: 6 folds, each holding 4 whole actors out (actors 1-4, 5-8, ...,
21-24: two male and two female each); standardisation + multinomial logistic regression, the
L2 strength C (0.003, 0.01 or 0.03) chosen inside each training fold by 3-fold grouped inner CV (no peeking at the held-out
actors). Then the shipped head: fitted on the --ship-actors (default 1-20, so `affectd eval voice
--actors 21-24` scores actors it never saw), temperature-calibrated on out-of-fold predictions of
those actors, exported as ONNX (Sub, Div, MatMul, Add, Softmax; opset 13) with the temperature
folded into the linear layer. Deterministic: no random state anywhere (lbfgs, fixed folds).

    python tools/voice/train.py --features /tmp/voice/ravdess.jsonl --out models/voice-emotion.onnx \
        --results tools/voice/results
"""
import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
NEGATIVE = [3, 4, 5, 6]   # sad, angry, fearful, disgust
POSITIVE = [2]            # happy; neutral, calm, surprised -> neutral (docs/voice.md)
SENT = ["negative", "neutral", "positive"]
CS = [0.003, 0.01, 0.03]


def sent_of(y):
    return np.where(np.isin(y, NEGATIVE), 0, np.where(np.isin(y, POSITIVE), 2, 1))


def sent_probs(p):
    neg = p[:, NEGATIVE].sum(1)
    pos = p[:, POSITIVE].sum(1)
    return np.stack([neg, 1.0 - neg - pos, pos], 1)


def load(path):
    X, y, actor, paths = [], [], [], []
    for line in open(path):
        r = json.loads(line)
        X.append(r["features"])
        y.append(LABELS.index(r["emotion"]))
        actor.append(int(r["actor"]))
        paths.append(r["path"])
    return np.asarray(X, np.float64), np.asarray(y), np.asarray(actor), paths


# Out-of-domain anchors (--anchors): ordinary calm read speech, added as `neutral` to every fit
# (never scored). Without them the RAVDESS-only head read 12 of 22 ordinary speech clips and 8 of
# 11 GRID readers (a held-out false-alarm set) as negative: acted studio "neutral" is quieter
# than everyday speech.
ANCHORS = None


def fit(X, y, C):
    if ANCHORS is not None:
        X = np.concatenate([X, ANCHORS])
        y = np.concatenate([y, np.zeros(len(ANCHORS), y.dtype)])
    sc = StandardScaler().fit(X)
    lr = LogisticRegression(C=C, max_iter=3000, tol=1e-5).fit(sc.transform(X), y)
    return sc, lr


def logits(model, X):
    sc, lr = model
    return sc.transform(X) @ lr.coef_.T + lr.intercept_


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def groups_of(actors, k):
    """k folds of whole actors in id order (4 consecutive ids = 2 male + 2 female in RAVDESS)."""
    ids = sorted(set(actors.tolist()))
    size = int(np.ceil(len(ids) / k))
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def choose_c(X, y, actor):
    best = None
    for C in CS:
        correct = 0
        for g in groups_of(actor, 3):
            te = np.isin(actor, g)
            m = fit(X[~te], y[~te], C)
            correct += (logits(m, X[te]).argmax(1) == y[te]).sum()
        if best is None or correct > best[1]:
            best = (C, correct)
    return best[0]


def oof_logits(X, y, actor, k, C=None):
    """Out-of-fold logits over whole-actor folds (each fold's C chosen on its training actors
    by grouped inner CV, unless C is given)."""
    z = np.zeros((len(y), len(LABELS)))
    cs = []
    for g in groups_of(actor, k):
        te = np.isin(actor, g)
        c = C if C is not None else choose_c(X[~te], y[~te], actor[~te])
        cs.append(c)
        z[te] = logits(fit(X[~te], y[~te], c), X[te])
    return z, cs


def metrics(p, y):
    pred = p.argmax(1)
    acc = float((pred == y).mean())
    s_true, s_pred = sent_of(y), sent_probs(p).argmax(1)
    f1s = []
    for c in range(3):
        tp = ((s_pred == c) & (s_true == c)).sum()
        prec = tp / max((s_pred == c).sum(), 1)
        rec = tp / max((s_true == c).sum(), 1)
        f1s.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    neg = float(((p[:, NEGATIVE].sum(1) >= 0.5) == (s_true == 0)).mean())
    conf = np.zeros((8, 8), int)
    for t, q in zip(y, pred):
        conf[t, q] += 1
    nll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())
    return {"accuracy_8": acc, "sentiment_macro_f1": float(np.mean(f1s)), "negative_vs_not": neg,
            "nll": nll, "n": int(len(y)), "confusion": conf.tolist()}


def temperature(z, y):
    nll = lambda t: -np.log(np.clip(softmax(z / t)[np.arange(len(y)), y], 1e-12, 1)).mean()
    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def export(model, T, path):
    sc, lr = model
    W = (lr.coef_.T / T).astype(np.float32)          # [768, 8]
    b = (lr.intercept_ / T).astype(np.float32)        # [8]
    init = [numpy_helper.from_array(sc.mean_.astype(np.float32)[None], "mean"),
            numpy_helper.from_array(sc.scale_.astype(np.float32)[None], "scale"),
            numpy_helper.from_array(W, "weight"), numpy_helper.from_array(b[None], "bias")]
    nodes = [helper.make_node("Sub", ["features", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["standard"]),
             helper.make_node("MatMul", ["standard", "weight"], ["mm"]),
             helper.make_node("Add", ["mm", "bias"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    g = helper.make_graph(nodes, "voice_emotion",
                          [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, W.shape[0]])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, W.shape[1]])], init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="affectd tools/voice/train.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)


def table(m):
    lines = ["accuracy_8=%.4f sentiment_macro_f1=%.4f negative_vs_not=%.4f n=%d"
             % (m["accuracy_8"], m["sentiment_macro_f1"], m["negative_vs_not"], m["n"]),
             "truth\\pred " + " ".join("%5s" % l[:5] for l in LABELS)]
    for l, row in zip(LABELS, m["confusion"]):
        lines.append("%-10s " % l + " ".join("%5d" % v for v in row))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True, help="JSONL from affectd eval voice --dump-features")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--results", required=True, help="folder for train.json")
    ap.add_argument("--ship-actors", default="1-20", help="actors the shipped head is fitted on")
    ap.add_argument("--anchors", help="JSONL of ordinary calm speech features, added as neutral to every fit")
    ap.add_argument("--check", help="JSONL of held-out calm speech (GRID): the share read negative is reported")
    a = ap.parse_args()
    global ANCHORS
    if a.anchors:
        ANCHORS = np.asarray([json.loads(l)["features"] for l in open(a.anchors)], np.float64)
        print("anchors: %d calm clips from %s, added as neutral to every fit" % (len(ANCHORS), a.anchors))
    X, y, actor, _ = load(a.features)
    lo, hi = map(int, a.ship_actors.split("-"))
    ship = (actor >= lo) & (actor <= hi)

    z_cv, cs = oof_logits(X, y, actor, 6)
    cv = metrics(softmax(z_cv), y)
    print("6-fold speaker-independent CV (4 actors held out per fold; C per fold %s):" % cs)
    print(table(cv))

    # The shipped head: actors lo..hi, C chosen by inner grouped CV, temperature on out-of-fold logits.
    C = choose_c(X[ship], y[ship], actor[ship])
    z_oof, _ = oof_logits(X[ship], y[ship], actor[ship], 5, C)
    T = temperature(z_oof, y[ship])
    model = fit(X[ship], y[ship], C)
    export(model, T, a.out)
    held = ~ship
    ref = softmax(logits(model, X) / T)
    sess = ort.InferenceSession(a.out, providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"features": X[i:i + 1].astype(np.float32)})[0] for i in range(len(y))])
    parity = float(np.abs(got - ref).max())
    out = {"cv_6fold": cv, "cv_C": cs, "ship_actors": a.ship_actors, "ship_C": C, "temperature": T,
           "ship_oof_uncalibrated_nll": metrics(softmax(z_oof), y[ship])["nll"],
           "ship_oof_calibrated_nll": metrics(softmax(z_oof / T), y[ship])["nll"],
           "held_out": metrics(ref[held], y[held]) if held.any() else None,
           "onnx_vs_sklearn_max_abs": parity, "n_features": int(X.shape[1]), "n": int(len(y))}
    if held.any():
        print("shipped head (actors %s, C=%g, T=%.4f) on held-out actors:" % (a.ship_actors, C, T))
        print(table(out["held_out"]))
    print("onnxruntime vs numpy max abs %.2e" % parity)
    out["anchors"] = int(len(ANCHORS)) if ANCHORS is not None else 0
    if a.check:
        G = np.asarray([json.loads(l)["features"] for l in open(a.check)], np.float64)
        pg = softmax(logits(model, G) / T)
        neg = float((pg[:, NEGATIVE].sum(1) >= 0.5).mean())
        out["calm_check"] = {"file": os.path.basename(a.check), "n": int(len(G)), "share_negative": neg,
                             "predicted": np.bincount(pg.argmax(1), minlength=8).tolist()}
        print("held-out calm speech (%s): %d clips, read negative: %.2f; predicted classes %s"
              % (a.check, len(G), neg, out["calm_check"]["predicted"]))
    os.makedirs(a.results, exist_ok=True)
    json.dump(out, open(os.path.join(a.results, "train.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
