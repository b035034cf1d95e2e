#!/usr/bin/env bash
# Regenerates the data and retrains holdfast-surface, the shipped defect model:
#   1. a Python venv with the pinned CPU-only training stack (models/requirements.txt) in ~/.cache/holdfast;
#   2. the training and validation images, through the camera's own path (models/dataset.ts);
#   3. training, ONNX export, onnxruntime parity check, manifest (models/train.py);
#   4. the held-out evaluation through preprocessImage + onnxruntime-node (models/evaluate.ts), which writes
#      metrics.json and the metrics into the manifest.
# Usage: bash models/train.sh   (from anywhere; sizes and the output folder can be changed with the variables below)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${HOLDFAST_CACHE_DIR:-$HOME/.cache/holdfast}"
VENV="$CACHE/venv-models"
DATA="$CACHE/datasets/holdfast-surface"
OUT="${MODEL_OUT:-$ROOT/models/holdfast-surface}"
TRAIN_IMAGES="${TRAIN_IMAGES:-12000}"
VAL_IMAGES="${VAL_IMAGES:-1000}"
HELD_OUT_IMAGES="${HELD_OUT_IMAGES:-2000}"
EPOCHS="${EPOCHS:-3}"

cd "$ROOT"
started=$SECONDS
step() { echo "[train.sh] $(date -u +%H:%M:%S) +$((SECONDS - started)) s: $*"; }

step "venv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r models/requirements.txt

step "dataset: $TRAIN_IMAGES training + $VAL_IMAGES validation images into $DATA"
node --import tsx models/dataset.ts --out "$DATA" --train "$TRAIN_IMAGES" --val "$VAL_IMAGES"

step "training ($EPOCHS epochs)"
"$VENV/bin/python" models/train.py --data "$DATA" --out "$OUT" --epochs "$EPOCHS"

step "held-out evaluation ($HELD_OUT_IMAGES images)"
node --import tsx models/evaluate.ts --model "$OUT/manifest.json" --count "$HELD_OUT_IMAGES" --wall-seconds "$((SECONDS - started))"

step "done"
