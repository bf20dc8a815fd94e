#!/usr/bin/env python3
"""Smaller variants of the three vision models, and how far each one moves from float.

    python tools/vision/quantize.py                 # variants -> ../vision-runs/quant/, results/quantize.json
    python tools/vision/quantize.py --ship int8w    # also copies the chosen variant(s) into models/

Variants of every float model (face_detection_short, face_landmark, expression_fer_minixception):
  int8w  int8 weight STORAGE: every Conv weight (>= 256 values) becomes an int8 initializer
         (symmetric, per output channel, scale = max|w| / 127) + a float32 scale [O,1,1,1],
         dequantised in the graph by Cast(int8->float) + Mul in front of the Conv.  Biases, BN,
         PRelu slopes stay float32.  All standard opset-13 ops; a runtime that folds constants
         (tract does at optimise time) runs the same float kernels as the float file.
  f16w   float16 weight storage: every float initializer >= 256 values stored as float16 + Cast
         to float32 (also folded away at load time).
  qop    onnxruntime quantize_static, QuantFormat.QOperator, op_types_to_quantize Conv and MatMul
         only (QLinearConv / QLinearMatMul + QuantizeLinear/DequantizeLinear, no com.microsoft ops),
         uint8 activations, int8 per-channel weights, MinMax calibration on real inputs (GRID
         frames for the detector, GRID face crops for FaceMesh, 256 fer2013/train images for
         expression).  Real int8 kernels if the runtime has them.

How far a variant is from float (onnxruntime 1.32, one thread; tract speed is measured by
`cargo bench --bench vision`, and tract accuracy of a shipped file by `affectd eval expression`
and `cargo test --test vision`):
  detector   on astronaut/chelsea/coffee + the GRID frames (2 fps): detections per image equal to
             float, IoU of the best box with float's, |score - float score|
  FaceMesh   on the astronaut crop + GRID face crops (from float detections): landmark drift
             |xy - float xy| in pixels of the 192x192 input (mean, max), presence difference
  expression on all 3,589 fer2013/validation images: top-1 agreement with float, accuracy, macro-F1
Intermediate files stay in ../vision-runs/quant/ (or $AFFECTD_RUNS/quant); only --ship writes models/.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402
from common import MODELS, VISION  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RUNS = pathlib.Path(os.environ.get("AFFECTD_RUNS", common.REPO.parent / "vision-runs")) / "quant"
FLOAT = {
    "face_detection": "face_detection_short.onnx",
    "face_landmark": "face_landmark.onnx",
    "expression_baseline": "expression_fer_minixception.onnx",
}
MIN_SIZE = 256


def variant_name(file: str, variant: str) -> str:
    return file.replace(".onnx", f"_{variant}.onnx")


def float_source(file: str) -> pathlib.Path:
    """The float model: models/<file> as convert.py writes it, else the copy kept in RUNS
    (after --ship has replaced it in models/ by a variant)."""
    p = MODELS / file
    return p if p.exists() else RUNS / variant_name(file, "float")


def _replace_initializers(m: onnx.ModelProto, pick, make) -> int:
    """Replaces every initializer `pick` selects by constants + nodes that `make` returns
    (producing a tensor of the original name). Returns the count."""
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    names = [n for n in pick(g, inits)]
    new_nodes, keep = [], []
    for init in g.initializer:
        if init.name in names:
            consts, nodes = make(init.name, numpy_helper.to_array(init))
            keep += consts
            new_nodes += nodes
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    old = list(g.node)
    del g.node[:]
    g.node.extend(new_nodes + old)
    return len(names)


def conv_weights(g, inits):
    out = []
    for n in g.node:
        if n.op_type == "Conv" and n.input[1] in inits:
            a = inits[n.input[1]]
            if a.data_type == TensorProto.FLOAT and np.prod(a.dims) >= MIN_SIZE and n.input[1] not in out:
                out.append(n.input[1])
    return out


def float_inits(g, inits):
    return [k for k, a in inits.items() if a.data_type == TensorProto.FLOAT and np.prod(a.dims) >= MIN_SIZE]


def make_int8w(src: pathlib.Path, dst: pathlib.Path) -> int:
    m = onnx.load(str(src))

    def make(name, w):
        o = w.shape[0]
        amax = np.abs(w.reshape(o, -1)).max(1)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        shape = (o,) + (1,) * (w.ndim - 1)
        q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        qn, sn = name + "_q", name + "_scale"
        return ([numpy_helper.from_array(q, qn), numpy_helper.from_array(scale.reshape(shape), sn)],
                [helper.make_node("Cast", [qn], [name + "_deq"], to=TensorProto.FLOAT, name=name + "_cast"),
                 helper.make_node("Mul", [name + "_deq", sn], [name], name=name + "_mul")])

    n = _replace_initializers(m, conv_weights, make)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return n


def make_f16w(src: pathlib.Path, dst: pathlib.Path) -> int:
    m = onnx.load(str(src))

    def make(name, w):
        hn = name + "_f16"
        return ([numpy_helper.from_array(w.astype(np.float16), hn)],
                [helper.make_node("Cast", [hn], [name], to=TensorProto.FLOAT, name=name + "_cast")])

    n = _replace_initializers(m, float_inits, make)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return n


def make_qop(src: pathlib.Path, dst: pathlib.Path, calib: list[np.ndarray]) -> int:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inp = onnx.load(str(src)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {inp: x}

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "MatMul"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    pre.unlink()
    m = onnx.load(str(dst))
    domains = sorted({n.domain or "ai.onnx" for n in m.graph.node})
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"    qop ops: {ops} domains {domains}")
    return sum(n.op_type in ("QLinearConv", "QLinearMatMul") for n in m.graph.node)


# ---------------------------------------------------------------------------------------------
def detector_inputs():
    import convert
    ims = [("astronaut.png", convert.load_rgb("astronaut.png")), ("chelsea.png", convert.load_rgb("chelsea.png")),
           ("coffee.png", convert.load_rgb("coffee.png"))]
    ims += [(f"{c}#{i}", im) for c, i, im in convert.grid_frames()]
    frames = RUNS / "frames"  # the same frames as PNG, for the tract comparison (tests/vision_variants.rs)
    frames.mkdir(parents=True, exist_ok=True)
    for name, im in ims:
        f = frames / (name.replace("#", "_").replace(".mpg", "").replace(".png", "") + ".png")
        if not f.exists():
            im.save(f)
    out = []
    for name, im in ims:
        img, s, px, py = convert.letterbox(im, 128)
        out.append((name, im, (s, px, py), (img.astype(np.float32) / 127.5 - 1.0)[None]))
    return out


def mesh_inputs(det_float, dets_in):
    """192x192 face crops from the FLOAT detector's best box on every image with a face."""
    import convert
    from PIL import Image
    sess = common.ort_session(det_float)
    anchors = convert.blazeface_anchors()
    out = []
    for name, im, pad, x in dets_in:
        o = convert.ort_run(sess, x)
        d = convert.blazeface_decode(o["regressors"], o["classificators"], anchors)
        if not d:
            continue
        roi = convert.face_roi(d[0], im.size, pad)
        crop = im.crop(tuple(int(round(v)) for v in roi)).resize((192, 192), Image.BILINEAR)
        out.append((name, (np.asarray(crop, np.float32) / 255.0)[None]))
    return out


def compare_detector(f_path, v_path, inputs):
    import convert
    anchors = convert.blazeface_anchors()
    a, b = common.ort_session(f_path), common.ort_session(v_path)
    same_n, ious, dscore = 0, [], []
    for _, _, _, x in inputs:
        oa, ob = convert.ort_run(a, x), convert.ort_run(b, x)
        da = convert.blazeface_decode(oa["regressors"], oa["classificators"], anchors)
        db = convert.blazeface_decode(ob["regressors"], ob["classificators"], anchors)
        same_n += len(da) == len(db)
        if da and db:
            ious.append(convert._iou(da[0][1], db[0][1]))
            dscore.append(abs(da[0][0] - db[0][0]))
    return dict(images=len(inputs), same_detection_count=same_n, mean_iou=float(np.mean(ious)),
                min_iou=float(np.min(ious)), max_score_diff=float(np.max(dscore)))


def compare_mesh(f_path, v_path, crops):
    a, b = common.ort_session(f_path), common.ort_session(v_path)
    drift, pres = [], []
    for _, x in crops:
        oa = dict(zip([o.name for o in a.get_outputs()], a.run(None, {a.get_inputs()[0].name: x})))
        ob = dict(zip([o.name for o in b.get_outputs()], b.run(None, {b.get_inputs()[0].name: x})))
        la, lb = oa["conv2d_21"].reshape(468, 3), ob["conv2d_21"].reshape(468, 3)
        drift.append(np.linalg.norm(la[:, :2] - lb[:, :2], axis=1))
        sig = lambda v: 1 / (1 + np.exp(-float(v.reshape(-1)[0])))  # noqa: E731
        pres.append(abs(sig(oa["conv2d_31"]) - sig(ob["conv2d_31"])))
    d = np.stack(drift)
    return dict(crops=len(crops), mean_drift_px=float(d.mean()), p99_drift_px=float(np.percentile(d, 99)),
                max_drift_px=float(d.max()), max_presence_diff=float(np.max(pres)))


def expression_eval(path, xs, ys):
    sess = common.ort_session(path)
    probs = np.concatenate([sess.run(None, {"input": ((x.astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None]})[0]
                            for x in xs])
    return probs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ship", default="", help="comma list model=variant to copy into models/, replacing the float "
                    "file (e.g. face_landmark=int8w); then run manifest.py and merge_manifests.sh")
    args = ap.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    for file in FLOAT.values():  # float reference copies next to the variants (bench, tract check)
        dst = RUNS / variant_name(file, "float")
        if (MODELS / file).exists():
            shutil.copy(MODELS / file, dst)
    det_in = detector_inputs()
    crops = mesh_inputs(float_source(FLOAT["face_detection"]), det_in)
    xs, ys, _ = common.load_fer_split("validation", 64)
    xtr, _, _ = common.load_fer_split("train", 64)
    pick = np.random.default_rng(1234).choice(len(xtr), 256, replace=False)
    calib = {
        "face_detection": [x for _, _, _, x in det_in[3::2]],
        "face_landmark": [x for _, x in crops[::2]],
        "expression_baseline": [((xtr[i].astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None] for i in pick],
    }
    base_probs = expression_eval(float_source(FLOAT["expression_baseline"]), xs, ys)
    res = {}
    for name, file in FLOAT.items():
        src = float_source(file)
        rows = {"float": dict(file=file, bytes=src.stat().st_size)}
        for variant, fn in (("int8w", make_int8w), ("f16w", make_f16w), ("qop", None)):
            dst = RUNS / variant_name(file, variant)
            print(f"{name}: {variant} -> {dst}", flush=True)
            try:
                n = fn(src, dst) if fn else make_qop(src, dst, calib[name])
            except Exception as e:  # noqa: BLE001  (report, do not stop)
                rows[variant] = dict(error=f"{type(e).__name__}: {e}"[:300])
                print("   failed:", rows[variant]["error"])
                continue
            r = dict(file=dst.name, bytes=dst.stat().st_size, tensors=n, sha256=common.sha256(dst))
            try:
                if name == "face_detection":
                    r.update(compare_detector(src, dst, det_in))
                elif name == "face_landmark":
                    r.update(compare_mesh(src, dst, crops))
                else:
                    p = expression_eval(dst, xs, ys)
                    m = common.metrics(ys, p)
                    r.update(agreement=float((p.argmax(1) == base_probs.argmax(1)).mean()),
                             accuracy=m["accuracy"], macro_f1=m["macro_f1"],
                             max_abs_prob_diff=float(np.abs(p - base_probs).max()))
            except Exception as e:  # noqa: BLE001
                r["ort_error"] = f"{type(e).__name__}: {e}"[:300]
            rows[variant] = r
            print("   ", {k: v for k, v in r.items() if k != "sha256"}, flush=True)
        if name == "expression_baseline":
            m = common.metrics(ys, base_probs)
            rows["float"].update(accuracy=m["accuracy"], macro_f1=m["macro_f1"])
        res[name] = rows
    out = VISION / "results" / "quantize.json"
    out.write_text(json.dumps(res, indent=1))
    print("wrote", out)
    for item in filter(None, args.ship.split(",")):
        name, variant = item.split("=")
        src = RUNS / variant_name(FLOAT[name], variant)
        shutil.copy(src, MODELS / src.name)
        if (MODELS / FLOAT[name]).exists():
            (MODELS / FLOAT[name]).unlink()  # the float file is replaced (its copy stays in RUNS)
        print(f"shipped {src.name} into models/ (replaces {FLOAT[name]})")


if __name__ == "__main__":
    main()
