"""Shared helpers for tools/vision: single-thread setup, data loading, metrics.

Import this module *before* TensorFlow so the thread limits take effect.
"""
from __future__ import annotations

import hashlib
import os
import pathlib

# The build machine has 2 cores shared with a compiler: one thread everywhere.
for _k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
           "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
VISION = REPO / "tools" / "vision"


def data_root() -> pathlib.Path:
    """Shared data folder: env AFFECTD_DATA, default ../shared/data from the repo root."""
    env = os.environ.get("AFFECTD_DATA")
    return pathlib.Path(env) if env else (REPO.parent / "shared" / "data")


# FER2013 label ids 0..6. Both shipped expression models use THIS output order
# (it is also the order of fer's `FER._get_labels()`).
FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def tf_single_thread():
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised
    return tf


def ort_session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def load_fer_split(split: str, size: int = 48):
    """Returns (uint8 images N x size x size, int labels in FER_LABELS order, paths).

    Resizing (when size != 48) is bilinear (PIL), the same as the Rust side should do.
    Files are sorted, so the order is deterministic.
    """
    from PIL import Image
    root = data_root() / "fer2013" / split
    xs, ys, paths = [], [], []
    for label, name in enumerate(FER_LABELS):
        for p in sorted((root / name).glob("*.png")):
            im = Image.open(p).convert("L")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            xs.append(np.asarray(im, dtype=np.uint8))
            ys.append(label)
            paths.append(p)
    return np.stack(xs), np.asarray(ys, dtype=np.int64), paths


def confusion(y_true, y_pred, n=7):
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def metrics(y_true, probs, n=7):
    y_pred = probs.argmax(1)
    cm = confusion(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    prec = np.divide(tp, cm.sum(0), out=np.zeros(n), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros(n), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(n), where=(prec + rec) > 0)
    return {
        "accuracy": float(tp.sum() / cm.sum()),
        "macro_f1": float(f1.mean()),
        "per_class_f1": {FER_LABELS[i]: float(f1[i]) for i in range(n)},
        "per_class_recall": {FER_LABELS[i]: float(rec[i]) for i in range(n)},
        "confusion": cm.tolist(),
        "ece": ece(probs, y_true),
        "n": int(cm.sum()),
    }


def ece(probs, y_true, bins=15):
    """Expected calibration error (top-1 confidence, equal-width bins)."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            e += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return float(e)


def softmax(z, t=1.0):
    z = z / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit_temperature(logits, y, lo=0.05, hi=10.0):
    """Temperature minimising validation NLL (golden-section search on log T)."""
    def nll(t):
        p = softmax(logits, t)
        return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean()
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(100):
        if nll(np.exp(c)) < nll(np.exp(d)):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return float(np.exp((a + b) / 2))


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def format_confusion(cm) -> str:
    """Markdown 7x7 confusion table (rows = true, columns = predicted)."""
    short = [l[:4] for l in FER_LABELS]
    lines = ["| true \\ pred | " + " | ".join(short) + " | recall |",
             "|---|" + "---:|" * (len(short) + 1)]
    for i, row in enumerate(cm):
        r = row[i] / max(1, sum(row))
        lines.append(f"| {FER_LABELS[i]} | " + " | ".join(str(v) for v in row) + f" | {r:.3f} |")
    return "\n".join(lines)
