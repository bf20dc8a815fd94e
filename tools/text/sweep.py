#!/usr/bin/env python3
"""Run finetune.py for a few settings one after another under one wall-clock deadline and keep the best by
TweetEval VALIDATION macro-recall (the only selection set). The winner's files go to --out; results.json gains
a `sweep` list with every run's chosen checkpoint and per-set validation figures.

Example (device): PYTHONUNBUFFERED=1 python3 sweep.py --pack . --out "$OUT" --deadline 200
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import finetune  # noqa: E402

# name: extra finetune.py arguments (all: 2 epochs of 48k weighted draws, 4 checkpoints per epoch, EMA 0.998)
CONFIGS = {
    "lr2e-5_llrd0.8": ["--lr", "2e-5", "--llrd", "0.8"],
    "lr2e-5": ["--lr", "2e-5"],
    "lr1e-5": ["--lr", "1e-5"],
    "lr4e-5_llrd0.7": ["--lr", "4e-5", "--llrd", "0.7"],
}
COMMON = ["--epochs", "2", "--epoch-size", "48000", "--evals-per-epoch", "4", "--ema", "0.998"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pack", default=".")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/affectd-sweep")
    ap.add_argument("--deadline", type=float, default=200.0, help="seconds for all runs together")
    ap.add_argument("--min-run", type=float, default=45.0, help="do not start a run with less time left")
    ap.add_argument("--only", nargs="*", help="config names (default: all)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more finetune.py arguments")
    a = ap.parse_args()
    t0 = time.time()
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    summary, best = [], None
    for name, args in CONFIGS.items():
        if a.only and name not in a.only:
            continue
        left = a.deadline - (time.time() - t0)
        if left < a.min_run:
            finetune.log(f"sweep: {left:.0f} s left, skipping {name} and the rest")
            break
        d = work / name
        finetune.log(f"sweep: run {name} {args} (hard stop {left - 8:.0f} s)")
        r = finetune.main(["--pack", a.pack, "--out", str(d), *COMMON, *args, "--hard-stop", f"{left - 8:.0f}",
                           "--time-budget", f"{left - 8:.0f}", *a.extra])
        ch = r["chosen"]
        vals = next(e["val"] for e in r["epochs"] if e["step"] == ch["step"] and e.get("weights") == ch["weights"])
        summary.append({"name": name, "args": args, "chosen": ch,
                        "val": {k: v["macro_recall"] for k, v in vals.items()}, "wall_s": r["wall_s"]})
        if best is None or ch["select_macro_recall"] > best[1]:
            best = (name, ch["select_macro_recall"], d)
    name, score, d = best
    for p in d.iterdir():
        if p.name != "results.json":
            shutil.copy(p, out / p.name)
    res = json.loads((d / "results.json").read_text())
    res["sweep"] = summary
    res["sweep_winner"] = name
    res["sweep_wall_s"] = time.time() - t0
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    finetune.log(f"sweep winner {name}: tweeteval/val {score:.4f}; " +
                 "; ".join(f"{s['name']} {s['chosen']['select_macro_recall']:.4f}" for s in summary))


if __name__ == "__main__":
    main()
