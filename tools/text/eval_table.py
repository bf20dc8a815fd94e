#!/usr/bin/env python3
"""Old-vs-new table from `affectd eval text` outputs (the Rust binary, tract): one text file per set and model.

Usage:
  python tools/text/eval_table.py run --bin /work/target/release/affectd --models-root DIR --name old|new
      runs `affectd eval text --data CSV` from DIR (which holds models/) for every CSV in --csv-dir and saves
      the printed reports to tools/text/results/rust_eval/<name>/<set>.txt
  python tools/text/eval_table.py table    -> markdown table (stdout) + results/rust_eval/table.json
CSV files (text,label) come from tools/text/to_csv.py (shared data, kept outside the repo) and tools/text/data/.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "rust_eval"
SETS = ["tweeteval-test", "tweeteval-val", "airline-dev", "meld-test", "meld-dev", "sst2-dev", "neutral_eval",
        "grid-ravdess", "handwritten", "sarcasm_hedges"]


def parse(text: str) -> dict:
    last = text.strip().splitlines()[-1]
    m = dict(kv.split("=") for kv in last.split())
    per = {}
    for line in text.splitlines():
        p = line.split()
        if len(p) == 5 and p[0] in ("negative", "neutral", "positive") and re.match(r"^[0-9.]+$", p[2]):
            per[p[0]] = {"recall": float(p[2]), "support": int(p[4])}
    ms = re.search(r"([0-9.]+) ms/text", text)
    return {"accuracy": float(m["accuracy"]), "macro_f1": float(m["macro_f1"]),
            "macro_recall": float(m["macro_recall"]), "n": int(m["n"]), "per_class": per,
            "ms_per_text": float(ms.group(1)) if ms else None}


def run(a):
    d = OUT / a.name
    d.mkdir(parents=True, exist_ok=True)
    for s in SETS:
        csv = Path(a.csv_dir) / f"{s}.csv"
        if not csv.exists():
            print("missing", csv)
            continue
        t0 = time.time()
        r = subprocess.run([a.bin, "eval", "text", "--data", str(csv)], cwd=a.models_root, capture_output=True,
                           text=True, check=True)
        (d / f"{s}.txt").write_text(r.stdout)
        print(f"{a.name} {s}: {r.stdout.strip().splitlines()[-1]} ({time.time() - t0:.0f} s)", flush=True)


def table(_a):
    rows, js = [], {}
    for s in SETS:
        o, n = OUT / "old" / f"{s}.txt", OUT / "new" / f"{s}.txt"
        if not (o.exists() and n.exists()):
            continue
        po, pn = parse(o.read_text()), parse(n.read_text())
        js[s] = {"old": po, "new": pn}

        def pc(p):
            return " / ".join(f"{p['per_class'][c]['recall']:.3f}" if p["per_class"].get(c, {}).get("support")
                              else "–" for c in ("negative", "neutral", "positive"))
        rows.append(f"| {s} | {pn['n']} | {po['macro_recall']:.3f} | **{pn['macro_recall']:.3f}** | "
                    f"{po['accuracy']:.3f} | {pn['accuracy']:.3f} | {pc(po)} | {pc(pn)} |")
    hdr = ["| set | n | macro-recall old | macro-recall new | accuracy old | accuracy new | "
           "recall neg / neu / pos old | recall neg / neu / pos new |", "|---|---|---|---|---|---|---|---|"]
    (OUT / "table.json").write_text(json.dumps(js, indent=1) + "\n")
    print("\n".join(hdr + rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--bin", default="/work/target/release/affectd")
    r.add_argument("--models-root", required=True, help="folder holding models/ (the binary's working dir)")
    r.add_argument("--name", required=True)
    r.add_argument("--csv-dir", default="/work/cache-text/csv")
    sub.add_parser("table")
    a = ap.parse_args()
    {"run": run, "table": table}[a.cmd](a)


if __name__ == "__main__":
    main()
