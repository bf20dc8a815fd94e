#!/usr/bin/env python3
"""Ensembles of the existing expression models with horizontal-flip test-time augmentation.

    python tools/vision/ensemble.py          # -> results/ensemble.json (+ prints the table)

Members (all ONNX, onnxruntime, one thread, batch 1):
  base = models/expression_fer_minixception.onnx   64x64, (p/255-0.5)*2, outputs probabilities
  ft   = ../vision-runs/expression-fer/expression_candidate.onnx  64x64, p/127.5-1, logits
  vgg  = ../vision-runs/expression/expression_candidate.onnx      48x48, p/127.5-1, logits
Each member is run on the image and on its mirror image ("+flip"); the member's log-probabilities
(ln p for the baseline, logits otherwise) of the two views are averaged, the member is calibrated by
its own temperature, and the ensemble averages the calibrated probabilities of its members.

Model selection is NOT done on the figures it reports: validation is split in two halves (seeded,
stratified by nothing, 1794/1795); every combination is scored on half A and half B separately, the
best on A is reported on B (and the best on B on A). Temperatures are fitted on the selection half.
"""
from __future__ import annotations

import itertools
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402
from common import MODELS, VISION  # noqa: E402

import numpy as np  # noqa: E402

RUNS = common.REPO.parent / "vision-runs"
CACHE = RUNS / "ensemble"
MEMBERS = {
    "base": (MODELS / "expression_fer_minixception.onnx", 64, lambda x: (x / 255.0 - 0.5) * 2.0, True),
    "ft": (RUNS / "expression-fer" / "expression_candidate.onnx", 64, lambda x: x / 127.5 - 1.0, False),
    "vgg": (RUNS / "expression" / "expression_candidate.onnx", 48, lambda x: x / 127.5 - 1.0, False),
}


def member_logits(name, split="validation"):
    """(N, 2, 7) log-probabilities / logits for [plain, flipped] views; cached under vision-runs."""
    path, size, norm, probs = MEMBERS[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    cache = CACHE / f"{name}_{split}_{common.sha256(path)[:12]}.npz"
    if cache.exists():
        d = np.load(cache)
        return d["z"], d["y"]
    xs, ys, _ = common.load_fer_split(split, size)
    sess = common.ort_session(path)
    inp = sess.get_inputs()[0].name
    out = np.zeros((len(xs), 2, 7), np.float32)
    for i, x in enumerate(xs):
        for v, img in enumerate((x, x[:, ::-1])):
            o = sess.run(None, {inp: norm(img.astype(np.float32))[None, :, :, None]})[0][0]
            out[i, v] = np.log(np.clip(o, 1e-12, None)) if probs else o
    np.savez(cache, z=out, y=ys)
    return out, ys


def combine(z, ys, idx_fit, idx_eval, combo):
    """Calibrated averaged probabilities of `combo` on idx_eval, temperatures fitted on idx_fit."""
    ps = []
    temps = {}
    for name, tta in combo:
        zz = z[name][:, :, :].mean(1) if tta else z[name][:, 0]
        # average log-probs of the views, then renormalise as logits
        t = common.fit_temperature(zz[idx_fit], ys[idx_fit])
        temps[f"{name}{'+flip' if tta else ''}"] = t
        ps.append(common.softmax(zz[idx_eval], t))
    return np.mean(ps, 0), temps


def main():
    z, ys = {}, None
    for name in MEMBERS:
        z[name], y = member_logits(name)
        assert ys is None or (ys == y).all()
        ys = y
    perm = np.random.default_rng(1234).permutation(len(ys))
    A, B = np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2:])
    options = [(n, t) for n in MEMBERS for t in (False, True)]
    combos = []
    for k in (1, 2, 3):
        for names in itertools.combinations(MEMBERS, k):
            for ttas in itertools.product((False, True), repeat=k):
                combos.append(tuple(zip(names, ttas)))
    rows = []
    for c in combos:
        label = " + ".join(f"{n}{'+flip' if t else ''}" for n, t in c)
        pa, _ = combine(z, ys, A, A, c)
        pb, _ = combine(z, ys, B, B, c)
        pab, _ = combine(z, ys, A, B, c)   # temperatures from A, scored on B
        pba, _ = combine(z, ys, B, A, c)
        full, temps = combine(z, ys, np.arange(len(ys)), np.arange(len(ys)), c)
        m = common.metrics(ys, full)
        rows.append(dict(combo=label, members=[[n, t] for n, t in c], temps=temps,
                         acc_A=common.metrics(ys[A], pa)["accuracy"], acc_B=common.metrics(ys[B], pb)["accuracy"],
                         acc_B_from_A=common.metrics(ys[B], pab)["accuracy"],
                         acc_A_from_B=common.metrics(ys[A], pba)["accuracy"],
                         f1_B_from_A=common.metrics(ys[B], pab)["macro_f1"],
                         f1_A_from_B=common.metrics(ys[A], pba)["macro_f1"],
                         accuracy=m["accuracy"], macro_f1=m["macro_f1"]))
    best_a = max(rows, key=lambda r: r["acc_A"])
    best_b = max(rows, key=lambda r: r["acc_B"])
    out = dict(n=len(ys), halves=[len(A), len(B)], rows=rows,
               selected_on_A=best_a["combo"], selected_on_A_scored_on_B=best_a["acc_B_from_A"],
               selected_on_B=best_b["combo"], selected_on_B_scored_on_A=best_b["acc_A_from_B"])
    (VISION / "results" / "ensemble.json").write_text(json.dumps(out, indent=1))
    print(f"{'combination':40s} {'accA':>7s} {'accB':>7s} {'B|T(A)':>7s} {'all':>7s} {'mF1':>7s}")
    for r in sorted(rows, key=lambda r: -r["accuracy"]):
        print(f"{r['combo']:40s} {r['acc_A']:.4f} {r['acc_B']:.4f} {r['acc_B_from_A']:.4f} "
              f"{r['accuracy']:.4f} {r['macro_f1']:.4f}")
    print(f"best on A: {best_a['combo']} -> B {best_a['acc_B_from_A']:.4f}; "
          f"best on B: {best_b['combo']} -> A {best_b['acc_A_from_B']:.4f}")


if __name__ == "__main__":
    main()
