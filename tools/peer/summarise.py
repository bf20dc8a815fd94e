#!/usr/bin/env python3
"""Markdown summary of a tools/peer/bench.sh run: medians per configuration, every run, where the
time goes (affectd --stats busy time per stage thread; the peer's per-stage busy time) and the
vision agreement (compare.py on each configuration's first runs). Stdlib only.

usage: summarise.py RESULTS_DIR
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABEL = {"sample": "bundled sample, 12 s", "grid33": "11 GRID clips joined, 33 s", "grid132": "the same ×4, 132 s"}
ORDER = ["sample-t1", "grid33-t1", "grid132-t1", "sample-t2", "grid33-t2", "grid132-t2"]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def affectd_stats(err: Path) -> dict:
    """Stage busy seconds and counts from `affectd analyze --stats` stderr."""
    out: dict = {}
    txt = err.read_text(errors="replace") if err.exists() else ""
    m = re.search(r"(\d+) utterances", txt)
    out["utterances"] = int(m.group(1)) if m else None
    m = re.search(r"(\d+) frames analysed", txt)
    out["frames"] = int(m.group(1)) if m else None
    for name in ("vision", "audio", "asr", "text"):
        m = re.search(rf"^{name}\s+([\d.]+)s", txt, re.M)
        if m:
            out[name] = float(m.group(1))
    return out


def peer_stats(err: Path) -> dict:
    for line in (err.read_text(errors="replace") if err.exists() else "").splitlines():
        if line.startswith('{"peer_stats"'):
            return json.loads(line)["peer_stats"]
    return {}


def main() -> int:
    d = Path(sys.argv[1])
    runs = list(csv.DictReader(open(d / "runs.tsv"), delimiter="\t"))
    machine = (d / "machine.txt").read_text()
    cases = [c for c in ORDER if any(r["case"] == c for r in runs)]
    cases += sorted({r["case"] for r in runs} - set(cases))
    print(f"### Side by side: affectd vs the Python peer ({d.name})\n")
    print("Medians of the interleaved runs (A B A B …); CPU = user + sys of the process and the children it waited for")
    print("(both decode through ffmpeg subprocesses); peak RSS = the largest single process (`/usr/bin/time -v`).\n")
    print("| recording | threads | runs | affectd wall / CPU / peak RSS | Python peer wall / CPU / peak RSS | CPU peer/affectd | wall peer/affectd | RSS affectd/peer |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for c in cases:
        rec, t = c.rsplit("-t", 1)
        row = {}
        for prog in ("affectd", "peer"):
            rs = [r for r in runs if r["case"] == c and r["program"] == prog and r["exit"] == "0"]
            row[prog] = (
                len(rs),
                med([float(r["wall_s"]) for r in rs]),
                med([float(r["user_s"]) + float(r["sys_s"]) for r in rs]),
                med([int(r["rss_kib"]) / 1024 for r in rs]),
            )
        a, p = row["affectd"], row["peer"]
        summary[c] = row
        threads = "1 per model" if t == "1" else "2 cores each"
        print(
            f"| {LABEL.get(rec, rec)} | {threads} | {a[0]}+{p[0]} | {a[1]:.2f} s / {a[2]:.2f} s / {a[3]:.0f} MiB | "
            f"{p[1]:.2f} s / {p[2]:.2f} s / {p[3]:.0f} MiB | {p[2] / a[2]:.2f} | {p[1] / a[1]:.2f} | {a[3] / p[3]:.2f} |"
        )
    failed = [r for r in runs if r["exit"] != "0"]
    if failed:
        print(f"\n**{len(failed)} run(s) failed** (not in the medians): " + ", ".join(f"{r['case']} {r['program']} #{r['run']} exit {r['exit']}" for r in failed))

    print("\nEvery run, in the order run (load = 1-minute load average before → after):\n")
    print("| case | program | run | wall s | user s | sys s | peak RSS MiB | load before → after |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['case']} | {r['program']} | {r['run']} | {float(r['wall_s']):.2f} | {float(r['user_s']):.2f} | {float(r['sys_s']):.2f} | "
              f"{int(r['rss_kib']) / 1024:.0f} | {r['load_before']} → {r['load_after']} |")
    loads = [float(r["load_before"]) for r in runs] + [float(r["load_after"]) for r in runs]
    print(f"\nLoad average over the runs: min {min(loads):.2f}, median {med(loads):.2f}, max {max(loads):.2f} (2 cores).")

    print("\nWhere the time goes (medians over the runs of each configuration; busy = wall time a stage")
    print("was working, seconds; affectd from `--stats` (one thread per stage), the peer from `--stats`):\n")
    print("| case | affectd vision / asr+voice / text / audio | affectd utterances | peer vision frame (crops / mesh / expression / detector) / asr / voice / text / vad | peer utterances | asr s per call affectd / peer |")
    print("|---|---|---|---|---|---|")
    for c in cases:
        ast = [affectd_stats(d / c / f"affectd-{r['run']}.err") for r in runs if r["case"] == c and r["program"] == "affectd"]
        pst = [peer_stats(d / c / f"peer-{r['run']}.err") for r in runs if r["case"] == c and r["program"] == "peer"]
        pst = [p for p in pst if p]
        g = lambda xs, k: med([x[k] for x in xs if x.get(k) is not None])  # noqa: E731
        pb = lambda k: med([p["busy_s"].get(k, 0.0) for p in pst])  # noqa: E731
        au = g(ast, "utterances")
        pu = med([p["utterances"] for p in pst]) if pst else float("nan")
        print(
            f"| {c} | {g(ast, 'vision'):.2f} / {g(ast, 'asr'):.2f} / {g(ast, 'text'):.2f} / {g(ast, 'audio'):.2f} | {au:.0f} | "
            f"{pb('vision.frame'):.2f} ({pb('vision.crop'):.2f} / {pb('vision.mesh'):.2f} / {pb('vision.expression'):.2f} / {pb('vision.detector'):.2f}) / "
            f"{pb('speech.asr'):.2f} / {pb('speech.voice'):.3f} / {pb('speech.text'):.3f} / {pb('speech.vad'):.3f} | {pu:.0f} | "
            f"{g(ast, 'asr') / max(au, 1):.2f} / {pb('speech.asr') / max(pu, 1):.2f} |"
        )
        fr = g(ast, "frames")
        if fr and pst:
            summary[c]["ms_per_frame"] = (g(ast, "vision") / fr * 1000, pb("vision.frame") / pst[0]["frames"] * 1000)
    print("\nVision per analysed frame (busy ms; affectd's vision thread includes its crops, models, cues, luma; the peer's")
    print("`vision.frame` the same work in numpy + onnxruntime, frame decode excluded in both):\n")
    print("| case | affectd ms/frame | peer ms/frame |")
    print("|---|---|---|")
    for c in cases:
        if "ms_per_frame" in summary[c]:
            a, p = summary[c]["ms_per_frame"]
            print(f"| {c} | {a:.1f} | {p:.1f} |")

    print("\nVision agreement (compare.py, first run of each configuration: every per-interval `modalities.face` value):\n")
    print("| case | intervals | face values | differing at 4 decimals | max abs diff | expression+presence values identical |")
    print("|---|---|---|---|---|---|")
    for c in cases:
        a, p = d / c / "affectd-1.jsonl", d / c / "peer-1.jsonl"
        if not (a.exists() and p.exists()):
            continue
        res = subprocess.run([sys.executable, str(HERE / "compare.py"), str(a), str(p), "--quiet"], capture_output=True, text=True)
        try:
            s = json.loads(res.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            print(f"| {c} | compare failed: {res.stderr.strip()[:80]} |")
            continue
        print(f"| {c} | {s['intervals'][0]} / {s['intervals'][1]} | {s['face_values']} | {s['face_values_differing']} | "
              f"{s['face_max_abs_diff']} {'(' + str(s['face_max_abs_diff_at'][1]) + ')' if s['face_max_abs_diff_at'] else ''} | "
              f"{s['expression_presence_identical']} of {s['expression_presence_values']} |")

    print("\nMachine and versions:\n\n```")
    print(machine.strip())
    print("```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
