#!/usr/bin/env bash
# One prepared run on a lent GPU machine: train several `small` variants side by side on the one
# GPU (the small model leaves most of an H100/H200 idle, so three runs cost little more than one),
# evaluate each on the validation blends, and bring back fp16 weights of all of them to choose
# from by measurement (see src/centrifuge/weights/small.md).
#
# Needs, carried: .whl/ (PyAV wheel) and .gpu/data (scripts/prepare_device_data.py --crf 25),
# and the shipped src/centrifuge/weights/small.safetensors (where fine-tuned variants start).
# Everything that comes back is written under $OUT (at most 8 files).
set -u
export PYTHONUNBUFFERED=1 CENTRIFUGE_CACHE=/tmp/centrifuge-cache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/logs
TRAIN_MINUTES=${TRAIN_MINUTES:-6}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.gpu/data}
INIT=${INIT:-src/centrifuge/weights/small.safetensors}
EVAL_ARGS=${EVAL_ARGS:---pairs 64 --seed 0 --clip-len 32 --size 112}
log() { echo "[$(date +%H:%M:%S)] $*"; }
{
log "start"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
if ! python3 -c "import av" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src
python3 -c "import torch, av; print('torch', torch.__version__, 'av', av.__version__)"

log "clip bank"  # built once here, so that the runs below share it instead of racing to build it
python3 -c "
from centrifuge.data.bank import build_bank
from centrifuge.data.folder import ClipSpec
from centrifuge.data.index import scan_folder
print(build_bank(scan_folder('$DATA/train'), ClipSpec(crop=112).short_side))"

common=(--data "$DATA/train" --val "$DATA/val" --config small --device "$DEVICE" --force
        --set "data.photos=$DATA/photos" --set "train.max_minutes=$TRAIN_MINUTES"
        --set train.ckpt_minutes=1 ${EXTRA_SETS:-})
finetune=(--set "train.init=$INIT" --set train.lr=0.0008 --set train.warmup_steps=100)
declare -A variant=(
  [A]="${finetune[*]}"                                    # the shipped model, trained on
  [B]="--set model.width=0.5"                             # twice the encoder width, from scratch
  [C]="--set model.corrector=true ${finetune[*]}"         # + a corrector on the shipped predictor
)
for v in A B C; do
  log "train $v: ${variant[$v]}"
  # shellcheck disable=SC2086
  python3 -m centrifuge train "${common[@]}" ${variant[$v]} --out /tmp/run_$v \
    > /tmp/logs/train_$v.log 2>&1 &
done
wait
log "trained"
for v in A B C; do
  tail -3 /tmp/logs/train_$v.log
  # shellcheck disable=SC2086
  python3 -m centrifuge evaluate --data "$DATA/val" --model /tmp/run_$v/last.pt $EVAL_ARGS \
    --device "$DEVICE" --json /tmp/logs/eval_$v.json
  cp /tmp/run_$v/metrics.jsonl /tmp/logs/metrics_$v.jsonl
  cp /tmp/run_$v/summary.json /tmp/logs/summary_$v.json
done
log "export"
python3 scripts/export_weights.py /tmp/run_A/last.pt "$OUT"/A.safetensors --half
python3 scripts/export_weights.py /tmp/run_B/last.pt "$OUT"/B.safetensors --half --parts 2
python3 scripts/export_weights.py /tmp/run_C/last.pt "$OUT"/C.safetensors --half --parts 2
log "done"
} 2>&1 | tee /tmp/logs/session.log
tar -czf "$OUT"/logs.tar.gz -C /tmp logs
