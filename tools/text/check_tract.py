#!/usr/bin/env python3
"""Load the shipped text models in tract (PyPI `tract`, the sonos/tract Python bindings) and compare with
onnxruntime on the parity sentences. Confirms that tract parses/optimises the graphs with a symbolic seq dim.

Writes tools/text/results/tract_check.json.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def main():
    import onnxruntime as ort
    import tract

    models = REPO / "models"
    fixture = json.loads((HERE / "parity.json").read_text(encoding="utf-8"))
    enc = tract.onnx().load(str(models / "minilm-l6-v2.onnx")).into_model().into_runnable()
    head = tract.onnx().load(str(models / "text-sentiment-head.onnx")).into_model().into_runnable()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s_c = ort.InferenceSession(str(models / "minilm-l6-v2.onnx"), so, providers=["CPUExecutionProvider"])
    T = fixture["head"]["temperature"]
    emb_diff, prob_diff, ms = [], [], []
    for it in fixture["sentences"]:
        ids = np.array([it["ids"]], np.int64)
        mask = np.ones_like(ids)
        t0 = time.perf_counter()
        e = enc.run([ids, mask])[0].to_numpy()
        ms.append((1000 * (time.perf_counter() - t0), ids.shape[1]))
        eo = s_c.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        z = head.run([e.astype(np.float32)])[0].to_numpy()[0].astype(np.float64)
        p = np.exp(z / T - (z / T).max())
        p /= p.sum()
        emb_diff.append(float(np.abs(e - eo).max()))
        emb_diff.append(float(np.abs(e[0] - np.array(it["embedding_compact"])).max()))
        prob_diff.append(float(np.abs(p - np.array(it["probs"])).max()))
    res = {"tract_version": tract.version(),
           "max_abs_embedding_vs_onnxruntime_and_fixture": max(emb_diff),
           "max_abs_probs_vs_fixture": max(prob_diff),
           "ms_by_tokens": [[n, round(t, 2)] for t, n in ms]}
    (HERE / "results" / "tract_check.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
