#!/usr/bin/env python3
"""Prints the medians of the criterion benches as a markdown table.

    python tools/vision/bench_table.py [CRITERION_DIR] [GROUP ...]

CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion (or target/criterion); GROUP defaults to
`model` and `vision_stage` (the groups of benches/vision.rs).  Median and its 95 % confidence
interval, from each bench's latest run (new/estimates.json).
"""
import json
import os
import pathlib
import sys


def main():
    args = sys.argv[1:]
    root = pathlib.Path(args.pop(0)) if args and pathlib.Path(args[0]).is_dir() else \
        pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "criterion"
    groups = args or ["model", "vision_stage"]
    print("| bench | median | 95 % CI |\n|---|---:|---|")
    for g in groups:
        for d in sorted((root / g).glob("*/new/estimates.json")):
            e = json.loads(d.read_text())["median"]
            ms = lambda v: f"{v / 1e6:.3f} ms"  # noqa: E731
            bench = json.loads((d.parent / "benchmark.json").read_text())["full_id"]
            print(f"| `{bench}` | {ms(e['point_estimate'])} | {ms(e['confidence_interval']['lower_bound'])} – "
                  f"{ms(e['confidence_interval']['upper_bound'])} |")


if __name__ == "__main__":
    main()
