#!/usr/bin/env python3
"""Train affectd's expression model on FER+ vote distributions (PyTorch; GPU when present, else CPU).

    python tools/vision/train_ferplus.py --pack DIR --out DIR [--arch a] [--budget-s 240] [--max-epochs 150]

DIR (from tools/vision/pack_ferplus.py + lzma): `ferplus-x.xz` (raw uint8 [N,48,48]) and
`ferplus-meta.npz` (votes [N,10], row [N], train [N]).  Nothing here is shipped: the output is a
PyTorch state dict (`<arch>.pt`) and a log (`<arch>.json`); tools/vision/export_ferplus.py turns the
chosen one into models/expression.onnx on the CPU.

Labels (FER+ reference processing, Barsoum et al. 2016 / microsoft/FERPlus):
  * votes of 1 are zeroed as annotator noise (unless that leaves nothing);
  * training target = the vote distribution over the 7 FER2013 classes (contempt, unknown and NF
    votes dropped, renormalised); rows whose largest vote is unknown, NF or contempt are dropped;
  * evaluation label = strict majority (> half of the remaining votes), else the row is left out.
Holdout: 2,000 Training rows (fixed seed) are held out of training for monitoring, model choice
and the temperature; the PublicTest rows (validation) are only logged, never used to choose.

Model "vgg": 4 blocks of 3x3 conv + BN + ReLU (widths/depths per --arch), 2x2 max-pool after each,
global average pool, dropout 0.3, linear 7.  Input [B,1,48,48], value = pixel/127.5 - 1.
Training: SGD (momentum 0.9, nesterov, weight decay 5e-4), batch 128, 1 warm-up epoch then cosine
to 0, epochs = as many as fit --budget-s (measured after epoch 1, capped by --max-epochs); soft
cross-entropy against the vote distribution with 0.05 label smoothing; augmentation on the device:
flip, rotation +-15 deg, scale 0.85-1.15, shift +-10 %, brightness/contrast jitter, random erasing.
"""
from __future__ import annotations

import argparse
import json
import lzma
import math
import os
import pathlib
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# FER+ vote columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
FERPLUS_TO_FER = [4, 5, 6, 1, 3, 2, 0]  # FER class i takes FER+ column FERPLUS_TO_FER[i]
ARCHS = {
    "a": [(32, 2), (64, 2), (128, 2), (256, 2)],
    "b": [(32, 1), (64, 2), (128, 3), (256, 3)],
    "c": [(32, 2), (64, 2), (128, 2), (320, 2)],
}
SEED = 1234


def clean_votes(votes: np.ndarray) -> np.ndarray:
    v = votes.astype(np.float32).copy()
    ones = v <= 1.0
    keep = np.where(ones.all(axis=1, keepdims=True), False, ones)  # never zero every column
    v[keep] = 0.0
    return v


def targets(votes: np.ndarray):
    """(dist [N,7] float32 or NaN rows, train_ok [N] bool, majority [N] int: class or -1)."""
    v = clean_votes(votes)
    top = v.argmax(axis=1)
    fer = v[:, FERPLUS_TO_FER]
    s = fer.sum(axis=1)
    train_ok = (top < 7) & (top != 7) & (s > 0)
    train_ok &= np.isin(top, FERPLUS_TO_FER)
    dist = fer / np.maximum(s, 1e-6)[:, None]
    maj = np.full(len(v), -1)
    strict = v.max(axis=1) > 0.5 * v.sum(axis=1)
    col_to_fer = {c: i for i, c in enumerate(FERPLUS_TO_FER)}
    for i in np.nonzero(strict)[0]:
        maj[i] = col_to_fer.get(int(top[i]), -1)
    return dist.astype(np.float32), train_ok, maj


class Net(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        layers, c = [], 1
        for w, d in blocks:
            for _ in range(d):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(c, 7)

    def forward(self, x):
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.fc(self.drop(x))


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """x [B,1,48,48] in [-1,1] -> augmented copy (all on x's device)."""
    b, dev = x.shape[0], x.device
    r = lambda *s: torch.rand(*s, generator=g, device=dev)  # noqa: E731
    ang = (r(b) * 2 - 1) * math.radians(15)
    sc = 0.85 + r(b) * 0.30
    flip = torch.where(r(b) < 0.5, -1.0, 1.0)
    tx, ty = (r(b) * 2 - 1) * 0.2, (r(b) * 2 - 1) * 0.2  # +-10 % of the side (grid units are half-sides)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    con = 0.7 + r(b, 1, 1, 1) * 0.6
    bri = (r(b, 1, 1, 1) * 2 - 1) * 0.25
    y = ((y * con) + bri).clamp(-1, 1)
    # random erasing: one box of 10-30 % side in half the images
    hh = (8 + r(b) * 12).long()
    y0, x0 = (r(b) * (48 - hh)).long(), (r(b) * (48 - hh)).long()
    ii = torch.arange(48, device=dev)
    mh = (ii[None, :] >= y0[:, None]) & (ii[None, :] < (y0 + hh)[:, None])
    mw = (ii[None, :] >= x0[:, None]) & (ii[None, :] < (x0 + hh)[:, None])
    m = (mh[:, :, None] & mw[:, None, :]) & (r(b) < 0.5)[:, None, None]
    y = torch.where(m[:, None], (r(b, 1, 1, 1) * 2 - 1).expand_as(y), y)
    return y


@torch.no_grad()
def predict(model, x, bs=1024):
    model.eval()
    out = []
    for i in range(0, len(x), bs):
        xb = x[i:i + bs]
        with torch.autocast(device_type=xb.device.type, dtype=torch.bfloat16, enabled=xb.device.type == "cuda"):
            out.append(model(xb).float())
    return torch.cat(out)


def acc_report(logits: torch.Tensor, maj: np.ndarray):
    keep = maj >= 0
    pred = logits.argmax(1).cpu().numpy()
    a = float((pred[keep] == maj[keep]).mean())
    neu = maj == 6
    return a, float((pred[neu] == 6).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="a", choices=sorted(ARCHS))
    ap.add_argument("--budget-s", type=float, default=240)
    ap.add_argument("--max-epochs", type=int, default=150)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N rows (smoke test)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pack = pathlib.Path(a.pack)
    meta = np.load(pack / "ferplus-meta.npz")
    n = len(meta["row"])
    x = np.frombuffer(lzma.decompress((pack / "ferplus-x.xz").read_bytes()), np.uint8).reshape(n, 48, 48)
    votes, is_train = meta["votes"], meta["train"]
    if a.limit:
        idx = np.r_[np.nonzero(is_train)[0][: a.limit], np.nonzero(~is_train)[0][: a.limit // 4]]
        x, votes, is_train = x[idx], votes[idx], is_train[idx]
    dist, ok, maj = targets(votes)
    rng = np.random.default_rng(SEED)
    tr_idx = np.nonzero(is_train)[0]
    hold = np.zeros(len(x), bool)
    hold[rng.choice(tr_idx, size=min(2000, len(tr_idx) // 10), replace=False)] = True
    fit = is_train & ~hold & ok
    val = ~is_train
    X = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)[:, None].to(dev)
    D = torch.from_numpy(dist).to(dev)
    fit_i = torch.from_numpy(np.nonzero(fit)[0]).to(dev)
    model = Net(ARCHS[a.arch]).to(dev).to(memory_format=torch.channels_last)
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator(device=dev)
    g.manual_seed(SEED)
    steps_per_epoch = len(fit_i) // a.batch
    log = dict(arch=a.arch, blocks=ARCHS[a.arch], params=nparams, fit_rows=int(fit.sum()), holdout_rows=int(hold.sum()),
               val_rows=int((val & (maj >= 0)).sum()), device=str(dev), epochs=[])
    print(json.dumps({k: v for k, v in log.items() if k != "epochs"}), flush=True)
    t0 = time.time()
    epochs = a.max_epochs
    step, total = 0, None
    ep = 0
    while ep < epochs:
        model.train()
        perm = fit_i[torch.randperm(len(fit_i), generator=g, device=dev)]
        tl = 0.0
        for s in range(steps_per_epoch):
            if total is None:
                lr = a.lr * (step + 1) / steps_per_epoch  # warm-up epoch
            else:
                p = (step - steps_per_epoch) / max(1, total - steps_per_epoch)
                lr = a.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
            for pg in opt.param_groups:
                pg["lr"] = lr
            bi = perm[s * a.batch:(s + 1) * a.batch]
            xb = augment(X[bi], g).contiguous(memory_format=torch.channels_last)
            tb = D[bi] * 0.95 + 0.05 / 7
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                logits = model(xb)
            loss = -(tb * F.log_softmax(logits.float(), 1)).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tl += float(loss.detach()) if s % 20 == 0 else 0.0
            step += 1
        ep += 1
        if total is None:
            dt = time.time() - t0
            epochs = int(max(2, min(a.max_epochs, a.budget_s // dt)))
            total = epochs * steps_per_epoch
        if ep % 5 == 0 or ep == epochs or ep == 1:
            hl = predict(model, X[torch.from_numpy(hold).to(dev)])
            vl = predict(model, X[torch.from_numpy(val).to(dev)])
            ha, hn = acc_report(hl, maj[hold])
            va, vn = acc_report(vl, maj[val])
            e = dict(epoch=ep, of=epochs, s=round(time.time() - t0, 1), loss=round(tl / max(1, steps_per_epoch // 20), 4),
                     hold_acc=round(ha, 4), hold_neutral=round(hn, 4), val_acc=round(va, 4), val_neutral=round(vn, 4))
            log["epochs"].append(e)
            print(json.dumps(e), flush=True)
    model = model.float().cpu()
    torch.save({"arch": a.arch, "blocks": ARCHS[a.arch], "state_dict": model.state_dict()}, out / f"{a.arch}.pt")
    (out / f"{a.arch}.json").write_text(json.dumps(log, indent=1))
    print(f"done {a.arch} in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
