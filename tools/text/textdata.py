"""Loaders for the shared text-sentiment datasets (read-only, never copied into the repo).

Every loader returns a list of (text, label) with label in LABELS. The data root is
$AFFECTD_DATA, default ../shared/data relative to the repository root.

Splits:
  airline/train, airline/dev   Tweets.csv split deterministically by tweet_id hash:
                               int(sha256(tweet_id)[:8], 16) % 100 < 20  -> dev (~20 %)
  meld/train, meld/dev, meld/test     MELD CSVs, `Sentiment` column
  sst2/train, sst2/dev          binary: 0 -> negative, 1 -> positive (no neutral)
  tweeteval/val, tweeteval/test TweetEval sentiment (0 negative, 1 neutral, 2 positive); no train split here
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

LABELS = ["negative", "neutral", "positive"]
LABEL_ID = {l: i for i, l in enumerate(LABELS)}

REPO = Path(__file__).resolve().parents[2]
AIRLINE_DEV_PERCENT = 20

SPLITS = [
    "airline/train", "airline/dev",
    "meld/train", "meld/dev", "meld/test",
    "sst2/train", "sst2/dev",
    "tweeteval/val", "tweeteval/test",
]
DEV_SPLITS = ["airline/dev", "meld/dev", "sst2/dev", "tweeteval/val"]


def data_root() -> Path:
    env = os.environ.get("AFFECTD_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def airline_is_dev(tweet_id: str) -> bool:
    h = int(hashlib.sha256(tweet_id.strip().encode()).hexdigest()[:8], 16)
    return h % 100 < AIRLINE_DEV_PERCENT


def _clean(t: str) -> str:
    # Collapse internal newlines/tabs (tweets contain quoted newlines); keep the text otherwise verbatim.
    return " ".join(t.split())


def load_airline(part: str, root: Path | None = None):
    root = root or data_root()
    out = []
    with open(root / "twitter-airline-sentiment" / "Tweets.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            dev = airline_is_dev(row["tweet_id"])
            if (part == "dev") == dev:
                out.append((_clean(row["text"]), row["airline_sentiment"].strip()))
    return out


def load_meld(part: str, root: Path | None = None):
    root = root or data_root()
    out = []
    with open(root / "meld-text" / f"{part}_sent_emo.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.append((_clean(row["Utterance"]), row["Sentiment"].strip()))
    return out


def load_sst2(part: str, root: Path | None = None):
    root = root or data_root()
    out = []
    with open(root / "sst2" / f"{part}.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            sent, lab = line.rsplit("\t", 1)
            out.append((_clean(sent), "negative" if lab.strip() == "0" else "positive"))
    return out


def load_tweeteval(part: str, root: Path | None = None):
    root = root or data_root()
    d = root / "tweeteval"
    with open(d / f"{part}_text.txt", encoding="utf-8") as f:
        texts = f.read().split("\n")
    with open(d / f"{part}_labels.txt", encoding="utf-8") as f:
        labs = f.read().split("\n")
    if texts and texts[-1] == "":
        texts = texts[:-1]
    if labs and labs[-1] == "":
        labs = labs[:-1]
    assert len(texts) == len(labs), (len(texts), len(labs))
    return [(_clean(t), LABELS[int(l)]) for t, l in zip(texts, labs)]


def load(split: str, root: Path | None = None):
    ds, part = split.split("/")
    fn = {"airline": load_airline, "meld": load_meld, "sst2": load_sst2, "tweeteval": load_tweeteval}[ds]
    rows = fn(part, root)
    for t, l in rows:
        assert l in LABEL_ID, (split, l)
    return rows
