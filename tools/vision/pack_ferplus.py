#!/usr/bin/env python3
"""Pack FER2013 images + FER+ vote counts into one compressed npz for training elsewhere.

    python tools/vision/pack_ferplus.py OUT_DIR      # e.g. .gpu/face (ignored by git)

Reads $AFFECTD_DATA (default ../shared/data): fer2013/{train,validation}/<class>/<row>.png and
ferplus/labels.csv (row, usage, 10 vote columns).  Writes OUT_DIR/ferplus-x.xz (lzma of the raw
uint8 images [N, 48, 48], ~57 MB: small enough to travel to a training machine) and
OUT_DIR/ferplus-meta.npz with
  votes  uint8 [N, 10]       FER+ votes: neutral happiness surprise sadness anger disgust fear contempt unknown NF
  row    int32 [N]           FER2013 row index (= PNG file name)
  train  bool  [N]           FER2013 Training (True) or PublicTest (False)
The pack is research data (FER2013 terms): it lives outside the repository.
"""
import csv
import lzma
import os
import pathlib
import sys

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(os.environ.get("AFFECTD_DATA", REPO.parent / "shared" / "data"))


def main(out: str) -> None:
    paths = {}
    for split in ("train", "validation"):
        for p in (DATA / "fer2013" / split).glob("*/*.png"):
            paths[int(p.stem)] = (split, p)
    rows, votes, train, xs = [], [], [], []
    with open(DATA / "ferplus" / "labels.csv") as f:
        for r in csv.DictReader(f):
            i = int(r["row"])
            split, p = paths[i]
            want = "train" if r["usage"] == "Training" else "validation"
            assert split == want, (i, split, want)
            v = [int(r[k]) for k in ("neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                                     "fear", "contempt", "unknown", "NF")]
            img = np.asarray(Image.open(p).convert("L"))
            assert img.shape == (48, 48), (p, img.shape)
            rows.append(i); votes.append(v); train.append(split == "train"); xs.append(img)
    d = pathlib.Path(out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "ferplus-x.xz").write_bytes(lzma.compress(np.stack(xs).tobytes(), preset=6))
    np.savez(d / "ferplus-meta.npz", votes=np.array(votes, np.uint8), row=np.array(rows, np.int32),
             train=np.array(train))
    print(f"{d}: {len(rows)} rows ({sum(train)} train), {(d / 'ferplus-x.xz').stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
