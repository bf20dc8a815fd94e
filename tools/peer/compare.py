#!/usr/bin/env python3
"""Compares the peer's interval lines with `affectd analyze`'s, interval by interval.

usage: compare.py AFFECTD.jsonl PEER.jsonl [--quiet]

Vision (modalities.face: expression probabilities, presence, cues, box, frame counts) is
expected to agree to the published 4 decimals (the same ONNX files, the same crop arithmetic;
only tract vs onnxruntime kernel rounding differs). Speech cannot agree exactly — whisper.cpp q8_0
with affectd's energy/flatness VAD vs CTranslate2 int8 with silero VAD cut and transcribe
differently — so voice, text and fused results are listed side by side, not scored.
Prints a summary JSON line last: {"face_max_abs_diff": ..., "face_values": n, ...}.
Stdlib only.
"""

from __future__ import annotations

import json
import sys


def load(p: str) -> list[dict]:
    out = []
    for line in open(p):
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            if "interval" in d:
                out.append(d)
    return out


def face_values(face: dict | None) -> dict[str, float]:
    if not face:
        return {}
    v: dict[str, float] = {}
    for k in ("frames", "face_frames", "detector_runs", "presence_mean"):
        if face.get(k) is not None:
            v[k] = float(face[k])
    for k, x in (face.get("expression") or {}).items():
        v["expression." + k] = x
    for k, x in (face.get("cues") or {}).items():
        v["cues." + k] = x
    for i, x in enumerate(face.get("box") or []):
        v[f"box[{i}]"] = x
    return v


def main() -> int:
    a, p = load(sys.argv[1]), load(sys.argv[2])
    quiet = "--quiet" in sys.argv
    worst, worst_at, n_vals, n_diff = 0.0, None, 0, 0
    # Cues in degrees or ratios of small differences amplify float rounding: report them apart.
    worst_prob, n_exact_prob, n_prob = 0.0, 0, 0
    rows = []
    for ra, rp in zip(a, p):
        fa, fp = face_values(ra["modalities"].get("face")), face_values(rp["modalities"].get("face"))
        for k in sorted(set(fa) | set(fp)):
            if k not in fa or k not in fp:
                n_diff += 1
                worst_at = worst_at or (ra["seq"], k, fa.get(k), fp.get(k))
                continue
            d = abs(fa[k] - fp[k])
            n_vals += 1
            n_diff += d > 0
            if k.startswith("expression.") or k == "presence_mean":
                n_prob += 1
                n_exact_prob += d == 0
                worst_prob = max(worst_prob, d)
            if d > worst:
                worst, worst_at = d, (ra["seq"], k, fa[k], fp[k])

        def sent(r):
            s = r.get("sentiment")
            return f"{s['label']} {s['score']:+.4f}" if s else "-"

        def mod(r, m):
            x = r["modalities"].get(m) or {}
            s = x.get("sentiment")
            return f"{x.get('utterances', 0)}u {s['label'] if s else '-'} {s['score']:+.4f}" if s else f"{x.get('utterances', 0)}u -"

        rows.append(
            f"{ra['interval']['start_s']:6.1f}-{ra['interval']['end_s']:6.1f}  fused {sent(ra):>17} | {sent(rp):<17}"
            f"  text {mod(ra, 'text'):>20} | {mod(rp, 'text'):<20}  voice {mod(ra, 'voice'):>20} | {mod(rp, 'voice')}"
        )
    if not quiet:
        print("interval        affectd | peer")
        print("\n".join(rows))
    print(
        json.dumps(
            {
                "intervals": [len(a), len(p)],
                "face_values": n_vals,
                "face_values_differing": n_diff,
                "face_max_abs_diff": round(worst, 6),
                "face_max_abs_diff_at": worst_at,
                "expression_presence_values": n_prob,
                "expression_presence_identical": n_exact_prob,
                "expression_presence_max_abs_diff": round(worst_prob, 6),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
