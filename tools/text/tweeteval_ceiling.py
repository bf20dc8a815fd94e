#!/usr/bin/env python3
"""Reference point only: 5-fold cross-validated logistic regression on TweetEval *validation* embeddings
(in-domain, ~1,600 training tweets per fold). Shows what a linear head on the frozen encoder can reach with
in-domain data; nothing here is shipped or used for selection. Writes tools/text/results/ceiling.json."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import embed_cache  # noqa: E402
import train_head  # noqa: E402


def main():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    X, y, _ = embed_cache.get("tweeteval/val")
    out = {}
    for C in [0.3, 1.0, 3.0, 10.0]:
        p = cross_val_predict(LogisticRegression(C=C, max_iter=3000, class_weight="balanced"), X, y,
                              cv=StratifiedKFold(5, shuffle=True, random_state=0))
        out[f"C={C}"] = train_head.metrics(y, p)["macro_recall"]
    res = {"what": "5-fold CV logistic regression (balanced) on TweetEval validation embeddings, macro-recall",
           "by_C": out, "best": max(out.values())}
    (HERE / "results" / "ceiling.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
