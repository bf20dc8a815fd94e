#!/usr/bin/env python3
"""Fine-tune all-MiniLM-L6-v2 end to end for 3-class sentiment (negative, neutral, positive).

Self-contained (torch, numpy, safetensors only; no transformers, no network, no data sets): it reads a PACK made
by tools/text/pack_gpu.py —
  base.safetensors   the base encoder weights (float16; sentence-transformers key names, no `bert.` prefix)
  train.npz          pre-tokenised training rows: ids (flat uint16), offsets, label, set, weight
  val.npz            pre-tokenised evaluation rows, the same layout, with set names
  pack.json          set names, class weights, tokeniser facts
— and writes to --out:
  encoder.safetensors.partN   the fine-tuned encoder (float16), one safetensors file cut into <= 14 MB pieces
                              (join with `cat encoder.safetensors.part* > encoder.safetensors`)
  head.safetensors            the head (float32): Linear(384, H) -> ReLU -> Linear(H, 3) on the embedding
  results.json                per-epoch validation figures, the chosen epoch, timings, settings

Model = exactly what models/minilm-l6-v2.onnx computes: BERT (post-LN, erf-GELU, additive -10000 mask bias), then
mean pooling over attention_mask and L2 normalisation -> `embedding` [384]; the head reads that unit vector.

Loss: weighted cross-entropy. SST-2 rows (binary, no neutral) use a BINARY loss over the negative and positive
logits only (-log p(y) / (p(neg) + p(pos))), so they teach polarity without telling the model that every
SST-2 phrase is non-neutral. Sampling: each epoch draws --epoch-size rows with probability proportional to the
row weights from the pack (per-set share, classes balanced within a set), with a fixed seed.
Selection: macro-recall on TweetEval validation (set `tweeteval/val`) after every epoch; the best epoch's
weights are written. Other validation sets are reported only.

Device: cuda if available (bf16 autocast, fp32 master weights), else cpu (fp32).
Example: PYTHONUNBUFFERED=1 python3 finetune.py --pack . --out $OUT --epochs 4
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN, HEADS, LAYERS, FFN, VOCAB, MAXPOS = 384, 12, 6, 1536, 30522, 512
HEAD_DIM = HIDDEN // HEADS
LN_EPS = 1e-12
SELECT = "tweeteval/val"
PART_BYTES = 14 * 1000 * 1000


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ----------------------------------------------------------------------------------------------- model
class Layer(nn.Module):
    def __init__(self, drop):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.o = nn.Linear(HIDDEN, HIDDEN)
        self.ln1 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.f1, self.f2 = nn.Linear(HIDDEN, FFN), nn.Linear(FFN, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.drop = drop

    def forward(self, x, bias):
        b, n, _ = x.shape
        sp = lambda t: t.view(b, n, HEADS, HEAD_DIM).transpose(1, 2)  # noqa: E731
        q, k, v = sp(self.q(x)), sp(self.k(x)), sp(self.v(x))
        # bias: [b,1,1,n] additive (-10000 on padding), the same as the exported graph
        c = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                           dropout_p=self.drop if self.training else 0.0)
        c = c.transpose(1, 2).reshape(b, n, HIDDEN)
        x = self.ln1(x + F.dropout(self.o(c), self.drop, self.training))
        h = F.gelu(self.f1(x))  # erf GELU
        return self.ln2(x + F.dropout(self.f2(h), self.drop, self.training))


class Encoder(nn.Module):
    def __init__(self, drop=0.1):
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.pos = nn.Embedding(MAXPOS, HIDDEN)
        self.tok_type = nn.Embedding(2, HIDDEN)
        self.ln = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.layers = nn.ModuleList(Layer(drop) for _ in range(LAYERS))
        self.drop = drop

    def forward(self, ids, mask):
        n = ids.shape[1]
        pos = torch.arange(n, device=ids.device)
        x = self.word(ids) + self.pos(pos)[None] + self.tok_type.weight[0][None, None]
        x = F.dropout(self.ln(x), self.drop, self.training)
        m = mask.to(x.dtype)
        bias = ((1.0 - m) * -10000.0)[:, None, None, :]
        for lyr in self.layers:
            x = lyr(x, bias)
        x = x.float()
        m3 = mask.float()[:, :, None]
        pooled = (x * m3).sum(1) / m3.sum(1).clamp_min(1e-9)
        return pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)

    # sentence-transformers / HF BertModel key names <-> ours
    def key_map(self):
        m = {"embeddings.word_embeddings.weight": "word.weight",
             "embeddings.position_embeddings.weight": "pos.weight",
             "embeddings.token_type_embeddings.weight": "tok_type.weight",
             "embeddings.LayerNorm.weight": "ln.weight", "embeddings.LayerNorm.bias": "ln.bias"}
        for i in range(LAYERS):
            p, q = f"encoder.layer.{i}.", f"layers.{i}."
            for src, dst in [("attention.self.query", "q"), ("attention.self.key", "k"),
                             ("attention.self.value", "v"), ("attention.output.dense", "o"),
                             ("attention.output.LayerNorm", "ln1"), ("intermediate.dense", "f1"),
                             ("output.dense", "f2"), ("output.LayerNorm", "ln2")]:
                for t in ("weight", "bias"):
                    m[f"{p}{src}.{t}"] = f"{q}{dst}.{t}"
        return m

    def load_hf(self, tensors: dict):
        km = self.key_map()
        sd = {km[k]: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in tensors.items() if k in km}
        missing = set(km.values()) - set(sd)
        assert not missing, f"missing weights: {sorted(missing)[:5]}"
        self.load_state_dict(sd, strict=True)

    def hf_state(self, dtype=torch.float16):
        own = self.state_dict()
        return {k: own[v].detach().to("cpu", dtype).contiguous() for k, v in self.key_map().items()}


class Head(nn.Module):
    def __init__(self, hidden=256, drop=0.1):
        super().__init__()
        self.fc1, self.fc2, self.drop = nn.Linear(HIDDEN, hidden), nn.Linear(hidden, 3), drop

    def forward(self, e):
        return self.fc2(F.relu(self.fc1(F.dropout(e, self.drop, self.training))))


# ----------------------------------------------------------------------------------------------- data
class Rows:
    def __init__(self, path: Path, max_len: int):
        z = np.load(path, allow_pickle=False)
        self.ids_flat = z["ids"].astype(np.int64)
        self.off = z["offsets"].astype(np.int64)
        self.label = z["label"].astype(np.int64)
        self.set = z["set"].astype(np.int64)
        self.weight = z["weight"].astype(np.float64) if "weight" in z else np.ones(len(self.label))
        self.binary = z["binary"].astype(bool) if "binary" in z else np.zeros(len(self.label), bool)
        self.max_len = max_len
        self.n = len(self.label)
        lens = np.minimum(self.off[1:] - self.off[:-1], max_len)
        self.lens = lens
        # padded matrix [n, max_len] (0 = [PAD]); rows longer than max_len keep [CLS] ... and end with [SEP]
        M = np.zeros((self.n, max_len), np.int64)
        for i in range(self.n):
            a, b = self.off[i], self.off[i + 1]
            r = self.ids_flat[a:b]
            if len(r) > max_len:
                r = np.concatenate([r[:max_len - 1], r[-1:]])
            M[i, :len(r)] = r
        self.M = M

    def batch(self, idx, device):
        n = int(self.lens[idx].max())
        ids = torch.from_numpy(self.M[idx, :n]).to(device, non_blocking=True)
        return ids, (ids != 0).long()  # [PAD] = 0 never occurs inside a text


def macro_recall(y, p, classes):
    rec = [float(((p == c) & (y == c)).sum() / max((y == c).sum(), 1)) for c in classes]
    return float(np.mean(rec)), rec


@torch.no_grad()
def evaluate(enc, head, val: Rows, set_names, device, amp, bs=256):
    enc.eval()
    head.eval()
    order = np.argsort(val.lens, kind="stable")
    logits = np.zeros((val.n, 3), np.float32)
    for s in range(0, val.n, bs):
        idx = order[s:s + bs]
        ids, mask = val.batch(idx, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            e = enc(ids, mask)
        logits[idx] = head(e.float()).float().cpu().numpy()
    out = {}
    pred = logits.argmax(1)
    for si, name in enumerate(set_names):
        m = val.set == si
        if not m.any():
            continue
        y = val.label[m]
        classes = sorted(set(y.tolist()))
        mr, rec = macro_recall(y, pred[m], classes)
        out[name] = {"n": int(m.sum()), "macro_recall": mr,
                     "recall": {str(c): r for c, r in zip(classes, rec)},
                     "accuracy": float((pred[m] == y).mean())}
    return out, logits


def save_parts(tensors: dict, out: Path, stem: str):
    from safetensors.torch import save
    blob = save(tensors)
    parts = []
    for i in range(0, len(blob), PART_BYTES):
        p = out / f"{stem}.part{i // PART_BYTES}"
        p.write_bytes(blob[i:i + PART_BYTES])
        parts.append(p.name)
    return parts, len(blob)


# ----------------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", default=".")
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--epoch-size", type=int, default=64000, help="rows drawn (weighted) per epoch")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-5, help="encoder learning rate")
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--warmup", type=float, default=0.06)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--label-smoothing", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="smoke test: first N train rows, N val rows per set")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--log-every", type=int, default=200, help="steps between progress lines")
    ap.add_argument("--amp", choices=["auto", "on", "off"], default="auto",
                    help="bf16 autocast: auto = on for cuda (on also works on cpu, for testing)")
    ap.add_argument("--evals-per-epoch", type=int, default=1, help="selection checkpoints per epoch")
    ap.add_argument("--time-budget", type=float, default=285.0,
                    help="seconds of training after which no new epoch starts (the device run is capped)")
    ap.add_argument("--hard-stop", type=float, default=330.0,
                    help="seconds since start after which training stops mid-epoch (then one last evaluation)")
    ap.add_argument("--llrd", type=float, default=1.0,
                    help="layer-wise lr decay: layer i (0 = embeddings) gets lr * llrd ** (6 - i)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="also keep an exponential moving average of the weights (decay, e.g. 0.998) and "
                         "evaluate it at every checkpoint; the better of raw/EMA competes for selection")
    a = ap.parse_args(argv)

    t_start = time.time()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device)
    amp = dev.type == "cuda" if a.amp == "auto" else a.amp == "on"
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log(f"device {dev} ({torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu'}), torch "
        f"{torch.__version__}, bf16 autocast {amp}, threads {torch.get_num_threads()}")

    pack, out = Path(a.pack), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((pack / "pack.json").read_text())
    set_names = meta["sets"]
    tr = Rows(pack / "train.npz", a.max_len)
    va = Rows(pack / "val.npz", a.max_len)
    if a.limit:
        keep = np.arange(tr.n) % max(1, tr.n // a.limit) == 0
        sel = np.flatnonzero(keep)[:a.limit]
        for k in ("label", "set", "weight", "binary", "lens", "M"):
            setattr(tr, k, getattr(tr, k)[sel])
        tr.n = len(sel)
        vsel = np.concatenate([np.flatnonzero(va.set == si)[:a.limit // 4] for si in range(len(set_names))])
        for k in ("label", "set", "weight", "binary", "lens", "M"):
            setattr(va, k, getattr(va, k)[vsel])
        va.n = len(vsel)
        a.epoch_size = min(a.epoch_size, tr.n)
    log(f"train rows {tr.n}, val rows {va.n}, sets {set_names}")

    from safetensors.numpy import load_file
    enc = Encoder(a.dropout)
    enc.load_hf(load_file(str(pack / "base.safetensors")))
    head = Head(a.hidden, a.dropout)
    enc.to(dev)
    head.to(dev)

    no_decay = lambda n: n.endswith("bias") or ".ln" in n or n.startswith("ln.")  # noqa: E731

    def depth(n):  # 0 = embeddings, 1..6 = transformer layers
        return int(n.split(".")[1]) + 1 if n.startswith("layers.") else 0

    groups = []
    for d in range(LAYERS + 1):
        lr_d = a.lr * a.llrd ** (LAYERS - d)
        for nd in (False, True):
            ps = [p for n, p in enc.named_parameters() if depth(n) == d and no_decay(n) == nd]
            if ps:
                groups.append({"params": ps, "lr": lr_d, "weight_decay": 0.0 if nd else a.wd})
    groups.append({"params": list(head.parameters()), "lr": a.head_lr, "weight_decay": a.wd})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-6, **({"fused": True} if dev.type == "cuda" else {}))
    ema = None
    if a.ema > 0:
        ema = [p.detach().clone() for p in list(enc.parameters()) + list(head.parameters())]
        live = list(enc.parameters()) + list(head.parameters())
    steps_per_epoch = math.ceil(a.epoch_size / a.batch)
    total = steps_per_epoch * a.epochs
    warm = max(1, int(a.warmup * total))
    base_lrs = [g["lr"] for g in groups]

    def set_lr(step):
        f = step / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * f

    gen = np.random.default_rng(a.seed)
    prob = tr.weight / tr.weight.sum()
    y_all = torch.from_numpy(tr.label)
    bin_all = torch.from_numpy(tr.binary)

    results = {"settings": vars(a), "device": str(dev), "torch": torch.__version__, "epochs": [],
               "train_rows": tr.n, "sets": set_names}
    ev0, _ = evaluate(enc, head, va, set_names, dev, amp)  # random head: sanity only
    log("before training (random head):", json.dumps({k: round(v["macro_recall"], 4) for k, v in ev0.items()}))
    best, best_state, step, stop = None, None, 0, False
    t_train = time.time()
    evals_at = {int(round(steps_per_epoch * (j + 1) / a.evals_per_epoch)) for j in range(a.evals_per_epoch)}
    for ep in range(a.epochs):
        el = time.time() - t_train
        if ep > 0 and el + el / ep > a.time_budget:
            log(f"time budget: {el:.0f} s spent, another epoch would pass {a.time_budget:.0f} s; stopping")
            break
        enc.train()
        head.train()
        draw = gen.choice(tr.n, size=steps_per_epoch * a.batch, replace=True, p=prob)
        t0, seen = time.time(), 0
        for bi in range(steps_per_epoch):
            idx = draw[bi * a.batch:(bi + 1) * a.batch]
            ids, mask = tr.batch(idx, dev)
            y = y_all[idx].to(dev)
            isb = bin_all[idx].to(dev)
            set_lr(step)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                e = enc(ids, mask)
            z = head(e.float()).float()
            ce = F.cross_entropy(z, y, reduction="none", label_smoothing=a.label_smoothing)
            # binary rows: -log softmax over (neg, pos) only
            zb = z[:, [0, 2]]
            yb = (y == 2).long()
            bce = F.cross_entropy(zb, yb, reduction="none", label_smoothing=a.label_smoothing)
            loss = torch.where(isb, bce, ce).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(enc.parameters()) + list(head.parameters()), 1.0)
            opt.step()
            step += 1
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, [p.detach() for p in live], 1.0 - a.ema)
            seen += len(idx)
            if bi % a.log_every == 0:
                el = time.time() - t0
                log(f"epoch {ep + 1} step {bi}/{steps_per_epoch} loss {float(loss.detach()):.4f} "
                    f"{seen / max(el, 1e-9):.0f} rows/s")
            stop = time.time() - t_start > a.hard_stop
            if stop:
                log(f"hard stop at {time.time() - t_start:.0f} s (epoch {ep + 1} step {bi + 1})")
            if (bi + 1) in evals_at or stop:
                for kind in (["raw", "ema"] if ema is not None else ["raw"]):
                    if kind == "ema":
                        saved = [p.detach().clone() for p in live]
                        with torch.no_grad():
                            for p, e_ in zip(live, ema):
                                p.copy_(e_)
                    ev, _ = evaluate(enc, head, va, set_names, dev, amp)
                    score = ev[SELECT]["macro_recall"] if SELECT in ev else float(np.mean(
                        [v["macro_recall"] for v in ev.values()]))
                    rec = {"epoch": ep + 1, "step": step, "frac": round((bi + 1) / steps_per_epoch, 3),
                           "weights": kind, "select_macro_recall": score, "val": ev,
                           "secs": time.time() - t_start, "rows_per_s": seen / max(time.time() - t0, 1e-9)}
                    results["epochs"].append(rec)
                    log(f"EVAL epoch {ep + 1} ({rec['frac']}) {kind}: select {score:.4f} ",
                        json.dumps({k: round(v["macro_recall"], 4) for k, v in ev.items()}))
                    if best is None or score > best["select_macro_recall"]:
                        best = rec
                        best_state = (enc.hf_state(torch.float16),
                                      {k: v.detach().to("cpu", torch.float32).clone()
                                       for k, v in head.state_dict().items()})
                    if kind == "ema":
                        with torch.no_grad():
                            for p, s_ in zip(live, saved):
                                p.copy_(s_)
                enc.train()
                head.train()
                (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
            if stop:
                break
        if stop:
            break

    from safetensors.torch import save_file
    enc_state, head_state = best_state
    parts, nbytes = save_parts(enc_state, out, "encoder.safetensors")
    save_file(head_state, str(out / "head.safetensors"))
    results["chosen"] = {"epoch": best["epoch"], "step": best["step"], "frac": best["frac"],
                         "weights": best.get("weights", "raw"),
                         "select": SELECT, "select_macro_recall": best["select_macro_recall"]}
    results["files"] = {"encoder_parts": parts, "encoder_bytes": nbytes, "head": "head.safetensors"}
    results["wall_s"] = time.time() - t_start
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    log(f"chosen epoch {best['epoch']} (step {best['step']}, {best.get('weights')}): {SELECT} macro-recall "
        f"{best['select_macro_recall']:.4f}; wrote {parts} + head.safetensors + results.json to {out} "
        f"in {results['wall_s']:.0f} s")
    return results


if __name__ == "__main__":
    main()
