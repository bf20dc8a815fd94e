#!/usr/bin/env python3
"""Score ASR hypotheses against shared/data/speech/transcripts.tsv (standard library only).

Input: JSON lines with "path" (absolute, or relative to the tsv folder) and "text";
lines with "summary" are carried through as metadata.

Normalisation (shared/MODEL-NOTES.md, the rule `affectd eval asr` must follow):
lower-case; numbers to words (4-digit years read as years); hyphens to spaces;
apostrophes dropped; other punctuation removed; mr/mrs/dr/st expanded.
WER is corpus-level: total word edits (S+D+I) / total reference words.

usage: wer.py TRANSCRIPTS_TSV HYP.jsonl [HYP2.jsonl ...] [--per-file]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORD_IRREG = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
             "nine": "ninth", "twelve": "twelfth"}
ABBREV = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def int_words(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + int_words(n % 100))
    for div, word in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= div:
            return int_words(n // div) + " " + word + ("" if n % div == 0 else " " + int_words(n % div))
    raise ValueError(n)


def year_words(n: int) -> str:
    """1961 -> nineteen sixty one; 1813 -> eighteen thirteen; 1900 -> nineteen hundred;
    1905 -> nineteen oh five; 2000-2009 -> two thousand (one)."""
    hi, lo = divmod(n, 100)
    if 2000 <= n <= 2009:
        return int_words(n)
    if lo == 0:
        return int_words(hi) + " hundred"
    if lo < 10:
        return int_words(hi) + " oh " + ONES[lo]
    return int_words(hi) + " " + int_words(lo)


def ordinal_words(n: int) -> str:
    w = int_words(n).split()
    last = w[-1]
    if last in ORD_IRREG:
        w[-1] = ORD_IRREG[last]
    elif last.endswith("y"):
        w[-1] = last[:-1] + "ieth"
    else:
        w[-1] = last + "th"
    return " ".join(w)


def number_to_words(tok: str) -> str:
    m = re.fullmatch(r"(\d+)(st|nd|rd|th)", tok)
    if m:
        return ordinal_words(int(m.group(1)))
    if re.fullmatch(r"\d+\.\d+", tok):
        a, b = tok.split(".")
        return int_words(int(a)) + " point " + " ".join(ONES[int(d)] for d in b)
    n = int(tok)
    if len(tok) == 4 and (1100 <= n <= 1999 or 2000 <= n <= 2099):
        return year_words(n)
    return int_words(n)


def normalise(text: str) -> list[str]:
    t = text.lower()
    t = t.replace("\u2019", "'").replace("\u2018", "'")
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)          # 1,000 -> 1000
    t = t.replace("%", " percent ")
    t = re.sub(r"[-\u2010-\u2015]", " ", t)             # hyphens and dashes to spaces
    t = t.replace("'", "")                              # apostrophes dropped
    t = re.sub(r"\d+(?:\.\d+)?(?:st|nd|rd|th)?", lambda m: " " + number_to_words(m.group(0)) + " ", t)
    t = re.sub(r"[^a-z0-9\s]", " ", t)                  # other punctuation removed
    words = [ABBREV.get(w, w) for w in t.split()]
    return words


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def load_refs(tsv: Path) -> dict[str, tuple[str, float]]:
    refs = {}
    for line in tsv.read_text(encoding="utf-8").splitlines()[1:]:
        if not line.strip():
            continue
        path, dur, ref = line.split("\t")[:3]
        refs[path] = (ref, float(dur))
    return refs


def score(tsv: Path, hyp_file: Path) -> dict:
    refs = load_refs(tsv)
    base = tsv.parent.resolve()
    hyps, meta = {}, {}
    for line in hyp_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if d.get("summary"):
            meta = d
            continue
        p = Path(d["path"])
        rel = str(p.resolve().relative_to(base)) if p.is_absolute() else d["path"]
        hyps[rel] = d["text"]
    missing = sorted(set(refs) - set(hyps))
    if missing:
        raise SystemExit(f"{hyp_file}: no hypothesis for {missing}")
    rows = []
    for path, (ref, _dur) in refs.items():
        r, h = normalise(ref), normalise(hyps[path])
        rows.append((path, edit_distance(r, h), len(r), " ".join(h), " ".join(r)))

    def agg(sel):
        e = sum(x[1] for x in sel)
        n = sum(x[2] for x in sel)
        return 100.0 * e / n, e, n

    return {
        "file": str(hyp_file), "meta": meta,
        "all": agg(rows),
        "clean": agg([x for x in rows if x[0].startswith("clean/")]),
        "noisy": agg([x for x in rows if x[0].startswith("noisy/")]),
        "rows": rows,
    }


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    per_file = "--per-file" in sys.argv
    tsv = Path(args[0])
    print("| hypotheses | WER all | errors/words | WER clean | WER noisy |")
    print("|---|---|---|---|---|")
    results = [score(tsv, Path(h)) for h in args[1:]]
    for s in results:
        a, c, n = s["all"], s["clean"], s["noisy"]
        print(f"| {Path(s['file']).name} | {a[0]:.1f} % | {a[1]}/{a[2]} | {c[0]:.1f} % | {n[0]:.1f} % |")
    if per_file:
        for s in results:
            print(f"\n## {s['file']}")
            for path, e, n, h, r in s["rows"]:
                if e:
                    print(f"- {path}: {e}/{n}\n    ref: {r}\n    hyp: {h}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
