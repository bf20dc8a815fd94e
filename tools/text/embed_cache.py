#!/usr/bin/env python3
"""Embed every shared text split with the COMPACT models/minilm-l6-v2.onnx (onnxruntime, 1 thread).

Cache: <cache>/emb/<dataset>_<part>.npz with arrays emb [N,384] float32, labels [N] int (0 neg,1 neu,2 pos),
and the model sha256 + a digest of the texts; a stale entry (model or data changed) is recomputed.
Default cache dir /work/cache-text (outside the repo).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import textdata  # noqa: E402


def file_sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


class Encoder:
    def __init__(self, model: Path, tokenizer: Path):
        import onnxruntime as ort
        from tokenizers import Tokenizer
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(str(tokenizer))

    def __call__(self, text: str) -> np.ndarray:
        e = self.tok.encode(text)
        ids = np.array([e.ids], np.int64)
        mask = np.array([e.attention_mask], np.int64)
        return self.sess.run(None, {"input_ids": ids, "attention_mask": mask})[0][0]


def cache_path(cache: Path, split: str) -> Path:
    return cache / "emb" / (split.replace("/", "_") + ".npz")


def get(split: str, cache: Path = Path("/work/cache-text"), model: Path = REPO / "models" / "minilm-l6-v2.onnx",
        tokenizer: Path = REPO / "models" / "minilm-tokenizer.json", encoder: Encoder | None = None,
        verbose: bool = True):
    rows = textdata.load(split)
    texts = [t for t, _ in rows]
    labels = np.array([textdata.LABEL_ID[l] for _, l in rows], np.int64)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    msha = file_sha256(model) + file_sha256(tokenizer)
    p = cache_path(cache, split)
    if p.exists():
        z = np.load(p)
        if str(z["model_sha"]) == msha and str(z["text_digest"]) == digest:
            return z["emb"], labels, texts
    enc = encoder or Encoder(model, tokenizer)
    emb = np.zeros((len(texts), 384), np.float32)
    t0 = time.time()
    for i, t in enumerate(texts):
        emb[i] = enc(t)
        if verbose and (i + 1) % 5000 == 0:
            print(f"  {split}: {i + 1}/{len(texts)} {time.time() - t0:.0f}s", flush=True)
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez(p, emb=emb, labels=labels, model_sha=msha, text_digest=digest)
    if verbose:
        print(f"{split}: {len(texts)} embedded in {time.time() - t0:.0f}s -> {p}", flush=True)
    return emb, labels, texts


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", default="/work/cache-text")
    ap.add_argument("splits", nargs="*", default=textdata.SPLITS)
    a = ap.parse_args()
    enc = Encoder(REPO / "models" / "minilm-l6-v2.onnx", REPO / "models" / "minilm-tokenizer.json")
    for s in a.splits:
        e, l, _ = get(s, Path(a.cache), encoder=enc)
        print(s, e.shape, np.bincount(l, minlength=3).tolist(), flush=True)


if __name__ == "__main__":
    main()
