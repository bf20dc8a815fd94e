#!/usr/bin/env python3
"""Export a FER+-trained expression model (tools/vision/train_ferplus.py) to models/expression.onnx.

    python tools/vision/export_ferplus.py RUN_DIR/a.pt [--pack DIR] [--ship]

CPU only.  Steps: fold every BatchNorm into its convolution, export to ONNX (opset 13; input
`input` [1,48,48,1] NHWC grey, pixel/127.5 - 1; output `logits` [1,7] in FER2013 label order),
store the Conv weights as int8 (per output channel, Cast+Mul in-graph: tools/vision/quantize.py
make_int8w), check onnxruntime against PyTorch, fit the softmax temperature on the 2,000 Training
rows held out of training (NLL against their strict-majority FER+ labels), and measure on the
FER2013 validation rows (PublicTest) with FER+ majority labels and with FER2013's own labels.
Writes tools/vision/results/expression_ferplus.json; with --ship copies the model to
models/expression.onnx.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quantize  # noqa: E402
from train_ferplus import FER_LABELS, SEED, Net, targets  # noqa: E402

REPO = HERE.parents[1]
FER_DIRS = {"angry": 0, "disgust": 1, "fear": 2, "happy": 3, "sad": 4, "surprise": 5, "neutral": 6}


def fold(net: Net) -> nn.Sequential:
    """The feature stack with each Conv+BN pair replaced by one biased Conv (eval mode)."""
    mods, layers, i = list(net.features), [], 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            bn = mods[i + 1]
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            c = nn.Conv2d(m.in_channels, m.out_channels, 3, padding=1, bias=True)
            c.weight.data = m.weight.data * s[:, None, None, None]
            c.bias.data = bn.bias.data - bn.running_mean * s
            layers.append(c)
            i += 2
        else:
            layers.append(m)
            i += 1
    return nn.Sequential(*layers)


class Exported(nn.Module):
    def __init__(self, net: Net):
        super().__init__()
        self.features = fold(net)
        self.fc = net.fc

    def forward(self, x):  # x [1,48,48,1] NHWC
        x = x.permute(0, 3, 1, 2)
        return self.fc(self.features(x).mean(dim=(2, 3)))


def sha256(p: pathlib.Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def confusion(y, p, k=7):
    c = np.zeros((k, k), int)
    for a, b in zip(y, p):
        c[a, b] += 1
    return c


def summary(y, p):
    c = confusion(y, p)
    rec = c.diagonal() / np.maximum(c.sum(1), 1)
    prec = c.diagonal() / np.maximum(c.sum(0), 1)
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-9)
    return dict(accuracy=round(float((np.array(y) == np.array(p)).mean()), 4), macro_f1=round(float(f1.mean()), 4),
                recall={l: round(float(r), 4) for l, r in zip(FER_LABELS, rec)}, n=int(len(y)),
                confusion=c.tolist())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--pack", default=str(REPO / ".gpu" / "face"))
    ap.add_argument("--ship", action="store_true")
    a = ap.parse_args()
    ck = torch.load(a.checkpoint, map_location="cpu")
    net = Net(ck["blocks"])
    net.load_state_dict(ck["state_dict"])
    net.eval()
    ex = Exported(net).eval()
    pack = pathlib.Path(a.pack)
    meta = np.load(pack / "ferplus-meta.npz")
    n = len(meta["row"])
    x = np.frombuffer(lzma.decompress((pack / "ferplus-x.xz").read_bytes()), np.uint8).reshape(n, 48, 48)
    votes, is_train, rows = meta["votes"], meta["train"], meta["row"]
    _, _, maj = targets(votes)
    rng = np.random.default_rng(SEED)
    tr_idx = np.nonzero(is_train)[0]
    hold = np.zeros(n, bool)
    hold[rng.choice(tr_idx, size=min(2000, len(tr_idx) // 10), replace=False)] = True
    xin = (x.astype(np.float32) / 127.5 - 1.0)[..., None]
    with torch.no_grad():
        ref = net(torch.from_numpy(xin[~is_train]).permute(0, 3, 1, 2)).numpy()
        exl = ex(torch.from_numpy(xin[~is_train])).numpy()
    print("fold max |diff|", float(np.abs(ref - exl).max()))
    tmp = pathlib.Path(tempfile.mkdtemp())
    f32 = tmp / "expression_ferplus_float.onnx"
    torch.onnx.export(ex, torch.from_numpy(xin[:1]), str(f32), input_names=["input"], output_names=["logits"],
                      opset_version=13, dynamo=False, do_constant_folding=True)
    i8 = tmp / "expression.onnx"
    nq = quantize.make_int8w(f32, i8)

    def run(path, xs):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([s.run(None, {"input": xs[i:i + 1]})[0] for i in range(len(xs))])

    val = ~is_train
    lf = run(f32, xin[val])
    lq = run(i8, xin[val])
    print("onnx float vs torch max |diff|", float(np.abs(lf - ref).max()))
    agree = float((lf.argmax(1) == lq.argmax(1)).mean())
    # temperature on the holdout (strict-majority rows), grid search on NLL
    hl = run(i8, xin[hold])
    hm = maj[hold]
    k = hm >= 0

    def nll(t):
        z = hl[k] / t
        z = z - z.max(1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-lp[np.arange(k.sum()), hm[k]].mean())

    ts = np.arange(0.5, 3.0, 0.01)
    temp = float(ts[np.argmin([nll(t) for t in ts])])
    # FER2013's own labels for validation rows (from the folder names)
    data = pathlib.Path(__import__("os").environ.get("AFFECTD_DATA", REPO.parent / "shared" / "data"))
    fer_label = {}
    for p in (data / "fer2013" / "validation").glob("*/*.png"):
        fer_label[int(p.stem)] = FER_DIRS[p.parent.name]
    vrows = rows[val]
    pv = lq.argmax(1)
    vm = maj[val]
    res = dict(
        checkpoint=str(a.checkpoint), arch=ck["arch"], blocks=ck["blocks"],
        params=int(sum(p.numel() for p in net.parameters())), int8_conv_weights=nq,
        temperature=round(temp, 4), holdout_nll=round(nll(temp), 4), top1_agreement_int8_vs_float=round(agree, 4),
        ferplus_majority=summary(vm[vm >= 0], pv[vm >= 0]),
        fer2013_labels=summary([fer_label[int(r)] for r in vrows], pv),
        holdout_ferplus_majority=summary(hm[k], hl.argmax(1)[k]),
        excluded_validation_rows=int((vm < 0).sum()),
        sha256=sha256(i8), bytes=i8.stat().st_size,
    )
    out = HERE / "results" / "expression_ferplus.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k not in ("ferplus_majority", "fer2013_labels", "holdout_ferplus_majority")}))
    for key in ("ferplus_majority", "fer2013_labels", "holdout_ferplus_majority"):
        r = res[key]
        print(key, r["accuracy"], r["macro_f1"], r["n"], r["recall"])
    if a.ship:
        shutil.copy(i8, REPO / "models" / "expression.onnx")
        print("shipped models/expression.onnx", res["sha256"])


if __name__ == "__main__":
    main()
