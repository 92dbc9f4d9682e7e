#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see bench/RESULTS.md and src/centrifuge/weights/small.md):
#   1. train `small` on .gpu/data (made by scripts/prepare_device_data.py --kinetics 0.25) for
#      TRAIN_MINUTES, its encoder starting from the Kinetics-400 I3D (INIT=none: from scratch),
#   2. export its weights (split in two: files coming back are limited to 16 MB each),
#   3. run bench/infer.py and bench/train.py on the GPU.
# Everything that must come back is written under $OUT. Needs .whl/ (PyAV wheel) and .gpu/ carried.
set -u
export PYTHONUNBUFFERED=1 CENTRIFUGE_CACHE=/tmp/centrifuge-cache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TRAIN_MINUTES=${TRAIN_MINUTES:-11}
INIT=${INIT:-kinetics-i3d}
INIT_SET=()
if [ "$INIT" = kinetics-i3d ]; then  # the fp16 weights travel in .gpu/data/cache (no PyPI there)
  mkdir -p $CENTRIFUGE_CACHE/weights && cp .gpu/data/cache/weights/*.safetensors $CENTRIFUGE_CACHE/weights/
  INIT_SET=(--set train.init=kinetics-i3d)
fi
log() { echo "[$(date +%H:%M:%S)] $*"; }
{
log "start"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src
python3 -c "import torch, av, centrifuge; print('torch', torch.__version__, 'av', av.__version__, 'cuda', torch.cuda.is_available())"

log "train small"
timeout $(python3 -c "print(int($TRAIN_MINUTES*60+150))") python3 -m centrifuge train \
  --data .gpu/data/train --val .gpu/data/val --config small \
  --set data.photos=.gpu/data/photos --set train.max_minutes=$TRAIN_MINUTES "${INIT_SET[@]}" \
  --out /tmp/run_small --device cuda
log "train exit $?"
cp /tmp/run_small/metrics.jsonl "$OUT"/ 2>/dev/null; cat /tmp/run_small/summary.json 2>/dev/null
ls /tmp/run_small/samples/*.png 2>/dev/null | tail -1 | xargs -r -I{} cp {} "$OUT"/sample_last.png
python3 scripts/export_weights.py /tmp/run_small/last.pt "$OUT"/small.safetensors --parts 2

log "bench infer"
timeout 110 python3 bench/infer.py --device cuda --models paper small \
  --shapes 64x224x224 32x112x112 --batches 1 8 --json "$OUT"/infer-cuda.json
log "infer exit $?"
timeout 70 python3 bench/infer.py --device cuda --models paper --shapes 64x224x224 --batches 1 \
  --compile --cudagraphs --json "$OUT"/infer-cuda-compile.json
log "infer compile exit $?"
log "bench train"
timeout 75 python3 bench/train.py --device cuda --data .gpu/data/train --models paper small \
  --batch 10 32 --workers 8 --input-clips 512 --json "$OUT"/train-cuda.json
log "bench train exit $?"
log "done"
} 2>&1 | tee "$OUT"/session.log
