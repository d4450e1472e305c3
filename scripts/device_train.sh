#!/usr/bin/env bash
# MAE pretraining speed of the larger encoders on one GPU, for a session lent a device.
#
#   bash scripts/device_train.sh            # writes $OUT (or benchmarks/results)/train_speed_gpu_*.json
#
# For each variant: the training step alone (bf16 autocast, AdamW) on random tensors, then, when
# UTKFace is found (../shared or ./shared), the whole loop on 2,048 real faces written to a temp
# shard dataset. Each variant runs under its own timeout so that one slow case cannot use up the
# device budget (15 minutes for a session, all calls together). Prints img/s per variant.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-benchmarks/results}
PER_RUN=${PER_RUN:-150}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$DEST"

"$PY" - <<'PYEOF' || exit 3
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
PYEOF

FACES=0
for d in ../shared ./shared; do
  if [ -d "$d/datasets/utkface/UTKFace" ]; then FACES=2048; fi
done

#        encoder              px  batch decoder_dim decoder_depth decoder_heads
VARIANTS=(
  "fxvit_tiny_p16_112   112 512 128 2 4"
  "fxvit_small_p16_112  112 512 256 4 8"
  "fxvit_base_p16_224   224 256 512 8 16"
)
status=0
for v in "${VARIANTS[@]}"; do
  read -r enc px bs ddim ddep dheads <<<"$v"
  echo "== $enc  ${px}px  batch $bs"
  timeout "$PER_RUN" "$PY" benchmarks/train_speed.py --device cuda --steps 40 --faces "$FACES" \
    --set model.encoder="$enc" --set model.img_size="$px" --set run.batch_size="$bs" \
    --set model.decoder_dim="$ddim" --set model.decoder_depth="$ddep" \
    --set model.decoder_heads="$dheads" \
    --out "$DEST/train_speed_gpu_${enc}.json" || { echo "   failed or timed out ($?)"; status=1; }
done
exit $status
