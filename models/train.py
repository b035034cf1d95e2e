"""
Trains holdfast-surface, the shipped defect model, on the images models/dataset.ts exported, and exports it as ONNX
with its manifest.

The network is a small CNN for a 128×128 RGB part image with two heads:
  - a class head: logits over [good, scratch, dent, crack, contamination], from global average and max pooling of the
    last feature map (max pooling keeps a small defect's response that averaging over the whole part would dilute);
  - a box head: cx, cy, w, h in 0..1 of the input, by soft attention over the last 8×8 feature map (a softmax over
    the cells gives where the defect is, the expected cell centre is the box centre, and the attention-weighted
    per-cell size is its width and height). All plain ONNX operators, and the decoder kind 'classifier-box'.

JAX (CPU jaxlib) computes the gradients; Adam is written out below. Training runs in NHWC (XLA's CPU convolutions are
faster in that layout); the ONNX graph is NCHW, as the manifest says, with the weights transposed at export. Before the
manifest is written, onnxruntime runs the exported graph on validation images and must agree with JAX.

Usage (models/train.sh does all of it): python models/train.py --data DIR --out models/holdfast-surface
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import jax
import jax.numpy as jnp

import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL_NAME = "holdfast-surface"
MODEL_VERSION = "1.0.0"
OPSET = 17

# (input channels, output channels, stride); a 2×2 max pool follows the convolutions marked in POOL_AFTER.
CONVS = [(3, 24, 2), (24, 32, 1), (32, 64, 1), (64, 96, 1), (96, 128, 1)]
POOL_AFTER = {1, 2, 3}
FEATURES = CONVS[-1][1]
BOX_LOSS_WEIGHT = 5.0
LABEL_SMOOTHING = 0.05


def log(msg: str) -> None:
    print(f"[train] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Data


def load_split(data: Path, split: str):
    meta = json.loads((data / f"{split}.json").read_text())
    spec = meta["input"]
    _, c, h, w = spec["shape"]
    pixels = np.fromfile(data / f"{split}.u8", dtype=np.uint8).reshape(meta["count"], c, h, w)
    labels = np.asarray(meta["labels"], dtype=np.int32)
    boxes = np.asarray(meta["boxes"], dtype=np.float32)
    return meta, pixels, labels, boxes


def normaliser(spec):
    """x' = (x · scale − mean[c]) / std[c] as x · gain + offset in float32, the same arithmetic as preprocess.ts."""
    n = spec["normalisation"]
    c = spec["shape"][1]
    mean = np.asarray(n["mean"] * (c if len(n["mean"]) == 1 else 1), dtype=np.float64)
    std = np.asarray(n["std"] * (c if len(n["std"]) == 1 else 1), dtype=np.float64)
    gain = (n["scale"] / std).astype(np.float32)
    offset = (-mean / std).astype(np.float32)
    return gain, offset


def to_nhwc(pixels: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    x = pixels.astype(np.float32) * gain[None, :, None, None] + offset[None, :, None, None]
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def augment(x: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    """One of the 8 symmetries of the square per batch (flips, transpose); the box follows. NHWC."""
    b = boxes.copy()
    if rng.random() < 0.5:
        x = x[:, :, ::-1]
        b[:, 0] = np.where(b[:, 2] > 0, 1 - b[:, 0], 0)
    if rng.random() < 0.5:
        x = x[:, ::-1]
        b[:, 1] = np.where(b[:, 3] > 0, 1 - b[:, 1], 0)
    if rng.random() < 0.5:
        x = x.transpose(0, 2, 1, 3)
        b = b[:, [1, 0, 3, 2]]
    return np.ascontiguousarray(x), b


# ---------------------------------------------------------------------------------------------------------------
# Model (NHWC for training)


BN_EPS = 1e-5
BN_MOMENTUM = 0.9


def init_params(key):
    """Weights, and batch-norm running statistics (not trained; folded into the convolutions at export)."""
    params = {"convs": []}
    stats = []
    for cin, cout, _ in CONVS:
        key, k = jax.random.split(key)
        w = jax.random.normal(k, (3, 3, cin, cout), jnp.float32) * math.sqrt(2.0 / (9 * cin))
        # Batch norm after each convolution (scale γ, shift β): without it this plain stack sat at the class prior
        # for the first hundreds of steps, which the training budget cannot afford.
        params["convs"].append((w, jnp.ones((cout,), jnp.float32), jnp.zeros((cout,), jnp.float32)))
        stats.append((jnp.zeros((cout,), jnp.float32), jnp.ones((cout,), jnp.float32)))
    key, k1, k2, k3 = jax.random.split(key, 4)
    n_classes = 5
    params["cls_w"] = jax.random.normal(k1, (2 * FEATURES, n_classes), jnp.float32) * math.sqrt(1.0 / (2 * FEATURES))
    params["cls_b"] = jnp.zeros((n_classes,), jnp.float32)
    params["att_w"] = jax.random.normal(k2, (FEATURES, 1), jnp.float32) * 0.01
    params["att_b"] = jnp.zeros((1,), jnp.float32)
    params["wh_w"] = jax.random.normal(k3, (FEATURES, 2), jnp.float32) * 0.01
    params["wh_b"] = jnp.full((2,), -2.0, jnp.float32)  # sigmoid(-2) ≈ 0.12: a typical defect's size
    return params, stats


def features(params, stats, x, train: bool):
    """The convolution stack; in training, batch statistics (returned, for the running averages)."""
    batch_stats = []
    for i, ((w, gamma, beta), (run_mean, run_var), (_, _, stride)) in enumerate(zip(params["convs"], stats, CONVS)):
        x = jax.lax.conv_general_dilated(
            x, w, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        if train:
            mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
            batch_stats.append((mean, var))
        else:
            mean, var = run_mean, run_var
        x = jax.nn.relu((x - mean) * (gamma / jnp.sqrt(var + BN_EPS)) + beta)
        if i in POOL_AFTER:
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return x, batch_stats


def cell_grid(h: int, w: int) -> np.ndarray:
    """[h·w, 2]: (cx, cy) of each cell's centre in 0..1, row-major (the order of an NCHW or NHWC flatten)."""
    ys, xs = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def forward(params, stats, x, train: bool = False):
    f, batch_stats = features(params, stats, x, train)
    n, h, w, c = f.shape
    pooled = jnp.concatenate([f.mean(axis=(1, 2)), f.max(axis=(1, 2))], axis=1)
    logits = pooled @ params["cls_w"] + params["cls_b"]
    cells = f.reshape(n, h * w, c)
    attention = jax.nn.softmax((cells @ params["att_w"] + params["att_b"])[..., 0], axis=1)  # [n, hw]
    centre = attention @ jnp.asarray(cell_grid(h, w))  # [n, 2]
    size = jnp.einsum("nk,nkj->nj", attention, jax.nn.sigmoid(cells @ params["wh_w"] + params["wh_b"]))
    return logits, jnp.concatenate([centre, size], axis=1), batch_stats


def loss_fn(params, stats, x, labels, boxes):
    logits, box, batch_stats = forward(params, stats, x, train=True)
    n_classes = logits.shape[1]
    target = jax.nn.one_hot(labels, n_classes) * (1 - LABEL_SMOOTHING) + LABEL_SMOOTHING / n_classes
    ce = -jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits), axis=1))
    is_defect = (labels != 0).astype(jnp.float32)
    l1 = jnp.sum(jnp.abs(box - boxes), axis=1)
    box_loss = jnp.sum(l1 * is_defect) / jnp.maximum(jnp.sum(is_defect), 1.0)
    return ce + BOX_LOSS_WEIGHT * box_loss, (ce, box_loss, batch_stats)


def adam_step(params, grads, state, lr, step, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    m, v = state
    m = jax.tree_util.tree_map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, v, grads)
    c1 = 1 - b1**step
    c2 = 1 - b2**step

    def update(p, m_, v_):
        return p - lr * ((m_ / c1) / (jnp.sqrt(v_ / c2) + eps) + weight_decay * p)

    return jax.tree_util.tree_map(update, params, m, v), (m, v)


@jax.jit
def train_step(params, stats, state, x, labels, boxes, lr, step):
    (loss, (ce, box_loss, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, stats, x, labels, boxes
    )
    params, state = adam_step(params, grads, state, lr, step)
    stats = jax.tree_util.tree_map(lambda r, b: BN_MOMENTUM * r + (1 - BN_MOMENTUM) * b, stats, batch_stats)
    return params, stats, state, loss, ce, box_loss


# Test-time augmentation, in the exported graph too: the network runs on the frame and its three flips (horizontal,
# vertical, both) as one batch; class logits are averaged, and each box is flipped back before averaging. A defect's
# class does not depend on orientation, so this is accuracy bought with inference compute rather than training time
# (the 2-core training budget is the tight one).
TTA_FLIPS = [(False, False), (True, False), (False, True), (True, True)]  # (horizontal, vertical)


def forward_tta(params, stats, x):
    n = x.shape[0]
    variants = [x[:, ::-1 if v else 1, ::-1 if h else 1] for h, v in TTA_FLIPS]
    logits, box, _ = forward(params, stats, jnp.concatenate(variants, axis=0))
    logits = logits.reshape(len(TTA_FLIPS), n, -1).mean(axis=0)
    box = box.reshape(len(TTA_FLIPS), n, 4)
    sign, shift = tta_unflip()
    box = (box * sign + shift).mean(axis=0)
    return logits, box


def tta_unflip():
    """Per variant: box · sign + shift maps a box found in the flipped image back (cx → 1 − cx when flipped)."""
    sign = np.ones((len(TTA_FLIPS), 1, 4), np.float32)
    shift = np.zeros((len(TTA_FLIPS), 1, 4), np.float32)
    for i, (h, v) in enumerate(TTA_FLIPS):
        if h:
            sign[i, 0, 0], shift[i, 0, 0] = -1, 1
        if v:
            sign[i, 0, 1], shift[i, 0, 1] = -1, 1
    return sign, shift


@jax.jit
def predict(params, stats, x):
    logits, box = forward_tta(params, stats, x)
    return jax.nn.softmax(logits, axis=1), box, logits


def run_batched(params, stats, x_nhwc: np.ndarray, batch: int = 64):
    probs, boxes, logits = [], [], []
    for i in range(0, len(x_nhwc), batch):
        p, b, lg = predict(params, stats, jnp.asarray(x_nhwc[i : i + batch]))
        probs.append(np.asarray(p))
        boxes.append(np.asarray(b))
        logits.append(np.asarray(lg))
    return np.concatenate(probs), np.concatenate(boxes), np.concatenate(logits)


# ---------------------------------------------------------------------------------------------------------------
# Metrics


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of cx, cy, w, h boxes, row by row."""
    ax0, ay0, ax1, ay1 = a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2, a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2
    bx0, by0, bx1, by1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


def metrics(probs: np.ndarray, boxes: np.ndarray, labels: np.ndarray, true_boxes: np.ndarray, threshold: float):
    """Defect vs good as the worker decides it: a frame fails when any defect class's probability reaches threshold."""
    predicted_defect = probs[:, 1:].max(axis=1) >= threshold
    actual_defect = labels != 0
    tp = int(np.sum(predicted_defect & actual_defect))
    fp = int(np.sum(predicted_defect & ~actual_defect))
    fn = int(np.sum(~predicted_defect & actual_defect))
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    accuracy = float(np.mean(probs.argmax(axis=1) == labels))
    ious = iou(boxes[actual_defect], true_boxes[actual_defect])
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "accuracy": round(accuracy, 4),
        "boxIouMean": round(float(ious.mean()) if len(ious) else 0.0, 4),
        "boxIouAbove0_5": round(float(np.mean(ious >= 0.5)) if len(ious) else 0.0, 4),
    }


def choose_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The validation threshold on the top defect probability with the best min(precision, recall); ties → 0.5-ward."""
    best, best_score = 0.5, -1.0
    for t in np.arange(0.1, 0.81, 0.05):
        m = metrics(probs, np.zeros((len(probs), 4)), labels, np.zeros((len(probs), 4)), float(t))
        score = min(m["precision"], m["recall"])
        if score > best_score + 1e-9 or (abs(score - best_score) <= 1e-9 and abs(t - 0.5) < abs(best - 0.5)):
            best, best_score = float(t), score
    return round(best, 2)


# ---------------------------------------------------------------------------------------------------------------
# ONNX export (NCHW)


def export_onnx(params, stats, spec, classes, path: Path, feature_hw: int) -> None:
    p = jax.tree_util.tree_map(np.asarray, params)
    st = jax.tree_util.tree_map(np.asarray, stats)
    inits, nodes = [], []
    input_name = spec["name"]
    _, c, h, w = spec["shape"]

    def init(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    # The test-time flips: [x, flip_w(x), flip_h(x), flip_hw(x)] along the batch axis (Slice with step -1).
    flipped = []
    for i, (hflip, vflip) in enumerate(TTA_FLIPS):
        y = input_name
        for flip, axis, extent in ((hflip, 3, w), (vflip, 2, h)):
            if flip:
                out = f"tta{i}_axis{axis}"
                nodes.append(
                    helper.make_node(
                        "Slice",
                        [
                            y,
                            helper_const(inits, "slice_start", [-1]),
                            helper_const(inits, f"slice_end{extent}", [-extent - 1]),
                            helper_const(inits, f"slice_axis{axis}", [axis]),
                            helper_const(inits, "slice_step", [-1]),
                        ],
                        [out],
                    )
                )
                y = out
        flipped.append(y)
    nodes.append(helper.make_node("Concat", flipped, ["tta_batch"], axis=0))
    x = "tta_batch"
    for i, ((wt, gamma, beta), (mean, var), (_, _, stride)) in enumerate(zip(p["convs"], st, CONVS)):
        # Batch norm folded in: conv(x)·k + (β − mean·k), k = γ / √(var + ε).
        k = gamma / np.sqrt(var + BN_EPS)
        wn = init(f"conv{i}.weight", (wt * k).transpose(3, 2, 0, 1))  # HWIO → OIHW
        bn = init(f"conv{i}.bias", beta - mean * k)
        nodes.append(
            helper.make_node(
                "Conv", [x, wn, bn], [f"conv{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        x = f"relu{i}"
        if i in POOL_AFTER:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            x = f"pool{i}"
    feat = x

    # Class head: [GAP, GMP] → Gemm.
    nodes += [
        helper.make_node("GlobalAveragePool", [feat], ["gap"]),
        helper.make_node("GlobalMaxPool", [feat], ["gmp"]),
        helper.make_node("Concat", ["gap", "gmp"], ["pooled4d"], axis=1),
        helper.make_node("Flatten", ["pooled4d"], ["pooled"], axis=1),
        helper.make_node(
            "Gemm", ["pooled", init("cls.weight", p["cls_w"]), init("cls.bias", p["cls_b"])], ["tta_logits"]
        ),
    ]
    # Box head: attention over the cells (1×1 conv → softmax over h·w), expected cell centre, weighted size.
    hw = feature_hw * feature_hw
    att_w = p["att_w"].T.reshape(1, FEATURES, 1, 1)
    wh_w = p["wh_w"].T.reshape(2, FEATURES, 1, 1)
    nodes += [
        helper.make_node("Conv", [feat, init("att.weight", att_w), init("att.bias", p["att_b"])], ["att_map"]),
        helper.make_node("Flatten", ["att_map"], ["att_flat"], axis=1),
        helper.make_node("Softmax", ["att_flat"], ["attention"], axis=1),
        helper.make_node("MatMul", ["attention", init("cell_centres", cell_grid(feature_hw, feature_hw))], ["centre"]),
        helper.make_node("Conv", [feat, init("wh.weight", wh_w), init("wh.bias", p["wh_b"])], ["wh_map"]),
        helper.make_node("Sigmoid", ["wh_map"], ["wh_sig"]),
        helper.make_node(
            "Reshape", ["wh_sig", helper_const(inits, "wh_shape", [0, 2, hw])], ["wh_cells"]
        ),
        helper.make_node("Unsqueeze", ["attention", helper_const(inits, "axis1", [1])], ["attention3d"]),
        helper.make_node("Mul", ["wh_cells", "attention3d"], ["wh_weighted"]),
        helper.make_node("ReduceSum", ["wh_weighted", helper_const(inits, "axis2", [2])], ["size"], keepdims=0),
        helper.make_node("Concat", ["centre", "size"], ["tta_box"], axis=1),
    ]
    # Undo the flips: [4·N, k] → [4, N, k]; average the logits; flip each box back, then average.
    sign, shift = tta_unflip()
    n_tta = len(TTA_FLIPS)
    nodes += [
        helper.make_node("Reshape", ["tta_logits", helper_const(inits, "tta_logits_shape", [n_tta, -1, len(classes)])], ["tta_logits3d"]),
        helper.make_node("ReduceMean", ["tta_logits3d"], ["logits"], axes=[0], keepdims=0),
        helper.make_node("Reshape", ["tta_box", helper_const(inits, "tta_box_shape", [n_tta, -1, 4])], ["tta_box3d"]),
        helper.make_node("Mul", ["tta_box3d", init("tta_sign", sign)], ["tta_box_signed"]),
        helper.make_node("Add", ["tta_box_signed", init("tta_shift", shift)], ["tta_box_unflipped"]),
        helper.make_node("ReduceMean", ["tta_box_unflipped"], ["box"], axes=[0], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        MODEL_NAME,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", c, h, w])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(classes)]),
            helper.make_tensor_value_info("box", TensorProto.FLOAT, ["N", 4]),
        ],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="holdfast models/train.py",
        doc_string=f"{MODEL_NAME} {MODEL_VERSION}: classes {classes}; box = cx, cy, w, h in 0..1 of the input",
    )
    model.ir_version = 8  # readable by every onnxruntime since 1.10
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def helper_const(inits, name, values):
    if not any(t.name == name for t in inits):
        inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
    return name


def check_parity(path: Path, params, stats, x_nhwc: np.ndarray, input_name: str) -> float:
    """Largest difference between onnxruntime's outputs (NCHW graph) and JAX's on the same images."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    nchw = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    logits, box = session.run(["logits", "box"], {input_name: nchw})
    _, jbox, jlogits = run_batched(params, stats, x_nhwc)
    return float(max(np.abs(logits - jlogits).max(), np.abs(box - jbox).max()))


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=20261125)
    args = ap.parse_args()
    started = time.time()

    train_meta, train_px, train_y, train_box = load_split(args.data, "train")
    val_meta, val_px, val_y, val_box = load_split(args.data, "val")
    spec = train_meta["input"]
    classes = train_meta["classes"]
    gain, offset = normaliser(spec)
    val_x = to_nhwc(val_px, gain, offset)
    log(
        f"{len(train_y)} training images (seeds {train_meta['firstSeed']}..), {len(val_y)} validation images; "
        f"classes {classes}; jax {jax.__version__} on {jax.devices()[0].platform}"
    )

    rng = np.random.default_rng(args.seed)
    params, stats = init_params(jax.random.PRNGKey(args.seed))
    state = (
        jax.tree_util.tree_map(jnp.zeros_like, params),
        jax.tree_util.tree_map(jnp.zeros_like, params),
    )
    steps_per_epoch = len(train_y) // args.batch
    total_steps = steps_per_epoch * args.epochs
    warmup = min(200, total_steps // 10)
    step = 0
    history = []
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_y))
        epoch_started = time.time()
        sums = np.zeros(3)
        for b in range(steps_per_epoch):
            idx = np.sort(order[b * args.batch : (b + 1) * args.batch])
            x, boxes = augment(to_nhwc(train_px[idx], gain, offset), train_box[idx], rng)
            step += 1
            # Linear warm-up, then cosine decay to 2% of the peak.
            lr = args.lr * (step / warmup if step <= warmup else 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup))))
            params, stats, state, loss, ce, box_loss = train_step(
                params, stats, state, jnp.asarray(x), jnp.asarray(train_y[idx]), jnp.asarray(boxes), lr, step
            )
            sums += [float(loss), float(ce), float(box_loss)]
            if (b + 1) % 50 == 0 or b + 1 == steps_per_epoch:
                done = b + 1
                rate = done * args.batch / (time.time() - epoch_started)
                eta = (steps_per_epoch - done) * args.batch / rate
                log(
                    f"epoch {epoch}/{args.epochs} step {done}/{steps_per_epoch}: loss {sums[0] / done:.4f} "
                    f"(class {sums[1] / done:.4f}, box {sums[2] / done:.4f}), {rate:.0f} img/s, epoch ends in {eta:.0f} s"
                )
        probs, boxes, _ = run_batched(params, stats, val_x)
        m = metrics(probs, boxes, val_y, val_box, 0.5)
        m.update(epoch=epoch, seconds=round(time.time() - epoch_started, 1))
        history.append(m)
        log(f"epoch {epoch} validation (threshold 0.5): {m}")

    probs, boxes, _ = run_batched(params, stats, val_x)
    threshold = choose_threshold(probs, val_y)
    val_metrics = metrics(probs, boxes, val_y, val_box, threshold)
    log(f"validation at the chosen threshold {threshold}: {val_metrics}")
    train_seconds = time.time() - started

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{MODEL_NAME}.onnx"
    feature_hw = spec["shape"][2] // 2 // 2 // 2 // 2
    export_onnx(params, stats, spec, classes, onnx_path, feature_hw)
    difference = check_parity(onnx_path, params, stats, val_x[:64], spec["name"])
    log(f"onnxruntime vs jax on 64 validation images: largest difference {difference:.2e}")
    if difference > 1e-3:
        sys.exit(f"exported graph disagrees with the trained model (largest difference {difference})")

    sha256 = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    manifest = {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "file": onnx_path.name,
        "sha256": sha256,
        "input": spec,
        "decoder": {"kind": "classifier-box", "logitsOutput": "logits", "boxOutput": "box", "goodClass": "good"},
        "classes": classes,
        "thresholds": {c: threshold for c in classes if c != "good"},
        "training": {
            "generator": "infra/vision/synthetic/part-generator.ts (256×256 frames, PNG or JPEG, preprocessImage)",
            "trainSeeds": [train_meta["firstSeed"], train_meta["firstSeed"] + len(train_y) - 1],
            "validationSeeds": [val_meta["firstSeed"], val_meta["firstSeed"] + len(val_y) - 1],
            "jpegShare": round(train_meta["formats"].count("jpeg") / len(train_y), 3),
            "initSeed": args.seed,
            "epochs": args.epochs,
            "batch": args.batch,
            "learningRate": args.lr,
            "optimizer": "Adam (hand-written), weight decay 1e-4, warm-up then cosine decay, label smoothing 0.05",
            "augmentation": "the 8 flips/transposes of the square, one per batch",
            "architecture": "conv3x3+BN(folded)+ReLU 24(s2)-32-pool-64-pool-96-pool-128; class head GAP+GMP→Gemm; box head attention over 8×8 cells",
            "stack": f"jax {jax.__version__} (CPU jaxlib), numpy {np.__version__}, onnx {onnx.__version__}",
            "host": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
            "datasetExportSeconds": round(train_meta.get("exportSeconds", 0) + val_meta.get("exportSeconds", 0), 1),
            "trainingSeconds": round(train_seconds, 1),
            "onnxParityMaxAbsDiff": float(f"{difference:.3g}"),
            "validation": val_metrics | {"threshold": threshold},
            "history": history,
        },
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {sha256[:12]}…) and manifest.json")
    log(f"training took {train_seconds:.0f} s")


if __name__ == "__main__":
    main()
