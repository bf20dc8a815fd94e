#!/usr/bin/env python3
"""Copy the trained fusion models into models/ and write tools/fusion/manifest.toml from
results/train.json (merge with `bash tools/merge_manifests.sh`).

    python tools/fusion/manifest.py --built /work/fusion-runs/out --results tools/fusion/results
"""
import argparse
import hashlib
import json
import os
import shutil

from train import FACE_LABELS, LAYOUT


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--built", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--models", default="models")
    a = ap.parse_args()
    r = json.load(open(os.path.join(a.results, "train.json")))
    cal = json.load(open(os.path.join(a.built, "fusion-calibration.json")))
    parity = json.load(open(os.path.join(a.results, "parity.json")))
    t = r["dev_python"]
    data = ("pseudo-pairs from `affectd eval make-pairs --split train --n 20000 --seed 1` (faces: FER2013 train; "
            "words: Twitter US Airline Sentiment train part, MELD train, TweetEval test; voices: RAVDESS speech actors 1-20), "
            "features from the shipped vision, voice and text stages via `affectd eval fusion --dump-features`; "
            "10 % held out for calibration")
    rule = ("happy→positive, neutral(/calm)→neutral, angry/disgust/fear(ful)/sad→negative, surprise left out, for faces "
            "and voices; negative words → negative (incongruent 0); positive/neutral words + negative face or voice → "
            "negative, incongruent 1; positive+neutral → positive (docs/fusion.md)")
    out = []
    for name, fname, desc, inputs, outputs, acc, extra in [
        ("fusion_head", "fusion-head.onnx",
         "attention fusion head: token MLP 400-64-32, 4 learned queries attend over <= 64 tokens (additive bias: "
         "ln quality, -1e4 padding), pooled 4x32 + presence flags -> MLP 131-64 -> sentiment logits (3) + "
         "incongruence logit; modality dropout incl. audio-only voice+words; voice swap noise; Adam, cosine decay, %d epochs" % len(r["log"]),
         ["tokens float32 [1, 64, 409]", "bias float32 [1, 64]", "present float32 [1, 3] (face, text, voice)"],
         ["sentiment_logits float32 [1, 3] (before temperature)", "incongruence_logit float32 [1, 1] (before incongruence_temperature)",
          "attention float32 [1, 4, 64]"],
         "dev pairs (`make-pairs --split dev --n 3000 --seed 2`): accuracy %.4f, macro-F1 %.4f, incongruence F1 %.4f "
         "(Python on the dumped features; `affectd eval fusion` reproduces it in tract); onnxruntime vs TF max abs %.1e"
         % (t["attention head"]["accuracy"], t["attention head"]["macro_f1"], t["attention head"]["incongruence_f1"],
            parity["onnx_vs_tf_max_abs"]),
         {"temperature": cal["temperature"], "incongruence_temperature": cal["incongruence_temperature"],
          "late_face_weight": cal["late_face_weight"], "token_layout": LAYOUT, "face_labels": FACE_LABELS,
          "voice_labels": ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"],
          "labels": ["negative", "neutral", "positive"]}),
        ("fusion_early", "fusion-early.onnx",
         "early-fusion BASELINE (used only by `affectd eval fusion --per-modality`): mean face probs + text probs + "
         "text embedding + mean voice probs + presence flags (405) -> MLP 64 -> sentiment logits + incongruence logit",
         ["features float32 [1, 405]"], ["sentiment_logits float32 [1, 3]", "incongruence_logit float32 [1, 1]"],
         "dev pairs: accuracy %.4f, macro-F1 %.4f, incongruence F1 %.4f"
         % (t["early fusion"]["accuracy"], t["early fusion"]["macro_f1"], t["early fusion"]["incongruence_f1"]),
         {"temperature": cal["early_temperature"], "labels": ["negative", "neutral", "positive"]}),
    ]:
        src = os.path.join(a.built, fname)
        dst = os.path.join(a.models, fname)
        shutil.copyfile(src, dst)
        lines = [
            "[[model]]",
            f'name = "{name}"',
            f'file = "{fname}"',
            f'sha256 = "{sha(dst)}"',
            f"bytes = {os.path.getsize(dst)}",
            f'source = "trained here: tools/fusion/train.py; data: {data}; labelling rule: {rule}"',
            'licence = "weights are ours; trained on research-use data (FER2013, airline tweets CC BY-NC-SA 4.0, MELD, TweetEval, RAVDESS CC BY-NC-SA 4.0): check the data terms before commercial use"',
            f'conversion = "{desc}; written with onnx.helper (onnx 1.16.2, opset 13: MatMul, Add, Relu, Transpose, Mul, Unsqueeze, Softmax, Reshape, Concat)"',
            "inputs = " + json.dumps(inputs),
            "outputs = " + json.dumps(outputs),
            f'accuracy = "{acc}"',
        ]
        for k, v in extra.items():
            lines.append(f"{k} = " + (json.dumps(v) if not isinstance(v, float) else repr(round(v, 6))))
        out.append("\n".join(lines))
    with open(os.path.join(os.path.dirname(__file__), "manifest.toml"), "w") as f:
        f.write("# Regenerate: see tools/fusion/README.md (fusion models).\n\n" + "\n\n".join(out) + "\n")
    print("wrote tools/fusion/manifest.toml and", ", ".join(o.split("\n")[2] for o in out))


if __name__ == "__main__":
    main()
