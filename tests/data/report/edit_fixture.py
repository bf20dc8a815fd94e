"""Edits real analyze output of the bundled sample into the report fixture (see tests/data/report/README.md)."""
import json, sys
src, dst = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(src) if l.strip()]
iv = [l for l in lines if l["schema"] == "affectd.interval/1"]
assert not any(l["schema"] == "affectd.alert/1" for l in lines)
# Intervals 5..8 negative; 6 and 7 flagged incongruent (words stay as they were).
neg = {5: (0.62, 0.58), 6: (0.81, 0.74), 7: (0.77, 0.69), 8: (0.55, 0.41)}
for l in iv:
    s = l["seq"]
    if s in neg:
        pn, conf = neg[s]
        pp = round((1 - pn) * 0.2, 4)
        pu = round(1 - pn - pp, 4)
        l["sentiment"] = {"label": "negative", "score": round(pp - pn, 4),
                          "probs": {"negative": pn, "neutral": pu, "positive": pp}, "confidence": conf}
        if l["incongruence"] is not None or s in (6, 7):
            p = {5: 0.31, 6: 0.86, 7: 0.79, 8: 0.44}[s]
            l["incongruence"] = {"probability": p, "flag": p >= 0.5}
    if s == 10:
        l["sentiment"] = None
        l["incongruence"] = None
out = []
for l in lines:
    out.append(l)
    if l["schema"] == "affectd.interval/1" and l["seq"] == 7:
        face = (l["modalities"].get("face") or {}).get("dominant")
        text = l["modalities"].get("text") or {}
        words = (text.get("sentiment") or {}).get("label")
        voice = ((l["modalities"].get("voice") or {}).get("emotion") or {}).get("label")
        segs = [g["text"] for x in iv if x["seq"] in (6, 7) for g in ((x["modalities"]["text"] or {}).get("segments") or [])]
        out.append({"schema": "affectd.alert/1", "device_id": l["device_id"], "session_id": l["session_id"],
                    "kind": "unexpressed_dissatisfaction", "intervals": [6, 7],
                    "start_s": iv[6]["interval"]["start_s"], "end_s": l["interval"]["end_s"],
                    "wall": l["interval"]["wall_end"], "probability": round((0.86 + 0.79) / 2, 4), "threshold": 0.5,
                    "sentiment": l["sentiment"], "face": face, "voice": voice, "words": words,
                    "transcript": " ".join(segs) or None})
with open(dst, "w") as f:
    for l in out:
        f.write(json.dumps(l, separators=(",", ":")) + "\n")
