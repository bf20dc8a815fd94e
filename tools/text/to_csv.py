#!/usr/bin/env python3
"""Convert the shared text-sentiment datasets to CSV with header `text,label` (label negative/neutral/positive).

The shared data are research-use only and must not be copied into the repository, so the output goes
outside the repo (default /work/cache-text/csv) and a path inside the repo is refused.

  python tools/text/to_csv.py                         # all four dev splits -> /work/cache-text/csv/<name>.csv
  python tools/text/to_csv.py --out-dir /tmp/csv      # same, elsewhere
  python tools/text/to_csv.py tweeteval/test --out /tmp/tweeteval-test.csv   # one split to one file

Splits: airline/{train,dev} (dev = int(sha256(tweet_id)[:8],16) % 100 < 20), meld/{train,dev,test},
sst2/{train,dev} (0 -> negative, 1 -> positive), tweeteval/{val,test}. Whitespace runs (incl. newlines inside
tweets) are collapsed to one space; RFC 4180 quoting.
Dev files written by default: airline-dev.csv, meld-dev.csv, sst2-dev.csv, tweeteval-val.csv.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import textdata  # noqa: E402


def write_csv(split: str, out: Path) -> int:
    out = out.resolve()
    if textdata.REPO in out.parents:
        raise SystemExit(f"refusing to write research-use data inside the repository: {out}")
    rows = textdata.load(split)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label"])
        w.writerows(rows)
    return len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("splits", nargs="*", help="any of " + " ".join(textdata.SPLITS)
                    + "; default: the dev splits " + " ".join(textdata.DEV_SPLITS))
    ap.add_argument("--out-dir", default="/work/cache-text/csv")
    ap.add_argument("--out", help="output file (only with exactly one split)")
    a = ap.parse_args()
    splits = a.splits or textdata.DEV_SPLITS
    for s in splits:
        if s not in textdata.SPLITS:
            ap.error(f"unknown split {s!r}; choose from {' '.join(textdata.SPLITS)}")
    if a.out and len(splits) != 1:
        ap.error("--out needs exactly one split")
    for s in splits:
        out = Path(a.out) if a.out else Path(a.out_dir) / (s.replace("/", "-") + ".csv")
        n = write_csv(s, out)
        print(f"{s}: {n} rows -> {out}")


if __name__ == "__main__":
    main()
