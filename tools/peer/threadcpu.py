#!/usr/bin/env python3
"""CPU time per thread of a command (Linux /proc), for "where the time goes" in both programs.

usage: threadcpu.py OUT.json -- COMMAND [ARGS...]

Runs COMMAND (stdout/stderr passed through), polls /proc/PID/task/*/stat every 50 ms and keeps the
last user+system ticks of every thread it saw, grouped by thread name (affectd names its stage
threads: vision, audio, asr, text, window, ...; peer.py names its main thread `vision` and its
speech thread `speech`; library worker threads keep the name of the thread that created them).
A thread that ends between two polls loses at most its last 50 ms. Writes
{"threads": {name: cpu_s}, "children_cpu_s": ffmpeg etc., "wall_s": ...} to OUT.json. Stdlib only.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def main() -> int:
    out, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd)
    seen: dict[int, tuple[str, int]] = {}
    while p.poll() is None:
        try:
            for tid in os.listdir(f"/proc/{p.pid}/task"):
                try:
                    raw = open(f"/proc/{p.pid}/task/{tid}/stat").read()
                except OSError:
                    continue
                name = raw[raw.index("(") + 1 : raw.rindex(")")]
                f = raw[raw.rindex(")") + 2 :].split()
                seen[int(tid)] = (name, int(f[11]) + int(f[12]))  # utime, stime (fields 14, 15)
        except OSError:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    by: dict[str, float] = {}
    for name, ticks in seen.values():
        by[name] = by.get(name, 0.0) + ticks / TICK
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    res = {
        "cmd": " ".join(cmd),
        "wall_s": round(wall, 2),
        "threads": {k: round(v, 2) for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
        "threads_total_s": round(sum(by.values()), 2),
        "process_tree_cpu_s": round(total, 2),
        "children_cpu_s": round(total - sum(by.values()), 2),
        "exit": p.returncode,
    }
    json.dump(res, open(out, "w"), indent=1)
    print(json.dumps(res), file=sys.stderr)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
