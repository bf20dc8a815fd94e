#!/usr/bin/env python3
"""Write tools/voice/manifest.toml for models/voice-emotion.onnx from results/train.json
(merge with `bash tools/merge_manifests.sh`).

    python tools/voice/manifest.py --results tools/voice/results --model models/voice-emotion.onnx
"""
import argparse
import hashlib
import json
import os

from train import LABELS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--note", default="", help="appended to `source` (e.g. which clips were dumped)")
    a = ap.parse_args()
    r = json.load(open(os.path.join(a.results, "train.json")))
    cv, held = r["cv_6fold"], r["held_out"]
    sha = hashlib.sha256(open(a.model, "rb").read()).hexdigest()
    acc = ("speaker-independent 6-fold CV on RAVDESS speech (4 whole actors held out per fold, %d clips): "
           "8-class accuracy %.4f, 3-class sentiment macro-F1 %.4f, negative-vs-not accuracy %.4f; "
           "this file (fitted on actors %s) on the held-out actors' %d clips: %.4f / %.4f / %.4f "
           "(`affectd eval voice` on the same clips reproduces it in tract); onnxruntime vs numpy max abs %.1e"
           % (cv["n"], cv["accuracy_8"], cv["sentiment_macro_f1"], cv["negative_vs_not"], r["ship_actors"],
              held["n"], held["accuracy_8"], held["sentiment_macro_f1"], held["negative_vs_not"], r["onnx_vs_sklearn_max_abs"]))
    lines = [
        "[[model]]",
        'name = "voice_emotion"',
        'file = "voice-emotion.onnx"',
        f'sha256 = "{sha}"',
        f"bytes = {os.path.getsize(a.model)}",
        'source = "trained here: tools/voice/train.py on RAVDESS speech (ravdess-speech-16k, actors %s; acted '
        'North-American English, two neutral sentences per emotion), features = the Whisper tiny.en (the shipped '
        'ggml-tiny.en-q8_0.bin) encoder output pooled per utterance (mean+std, 768) by `affectd eval voice '
        '--dump-features` through the real speech path%s"' % (r["ship_actors"], a.note),
        'licence = "weights are ours; trained on RAVDESS (CC BY-NC-SA 4.0): non-commercial unless licensed otherwise"',
        'conversion = "standardisation + multinomial logistic regression (scikit-learn 1.9.1, lbfgs, C=%g chosen by '
        'grouped inner CV) with temperature %.4f folded into the weights (fitted on out-of-fold logits of the '
        'training actors); written with onnx.helper (onnx 1.19.0, opset 13: Sub, Div, MatMul, Add, Softmax)"'
        % (r["ship_C"], r["temperature"]),
        'inputs = ["features float32 [1, 768] (encoder mean[384] ++ std[384])"]',
        'outputs = ["probs float32 [1, 8] (calibrated)"]',
        f'accuracy = "{acc}"',
        "temperature = %s" % repr(round(r["temperature"], 6)),
        "labels = " + json.dumps(LABELS),
    ]
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifest.toml"), "w") as f:
        f.write("# Regenerate: see tools/voice/README.md (voice emotion head).\n\n" + "\n".join(lines) + "\n")
    print("wrote tools/voice/manifest.toml")


if __name__ == "__main__":
    main()
