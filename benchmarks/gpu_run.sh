#!/usr/bin/env bash
# One GPU session, rehearsed on the CPU (tests/test_gpu_rehearsal.py runs this file unchanged with --device cpu):
#   1. installs the carried wheels of the packages the GPU image lacks (.gpu/wheels, built by benchmarks/gpu_pack.sh);
#   2. device checks: a bf16 training step of every model, one evaluation, Polyp-SAM against SamPredictor;
#   3. `polyplib bench` (GMSRF-Net both variants, Polyp-SAM), ours against the authors' way, with spread;
#   4. the `full` campaigns on the test sets present in the carried data cache (.gpu/data), from scratch (no
#      pretrained weights can be fetched there: every result says scratch), for the rest of --budget;
#   5. what must come back, in at most 8 files under $OUT: env.txt checks.json bench.json plan.txt campaign.log
#      results.tar.gz.
# Usage: OUT=DIR benchmarks/gpu_run.sh [--device cuda] [--budget 40m] [--data .gpu/data] [--jobs 3] [--set K=V ...]
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda BUDGET=40m DATA=.gpu/data WHEELS=.gpu/wheels JOBS=3 SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2;; --budget) BUDGET=$2; shift 2;; --data) DATA=$2; shift 2;;
    --wheels) WHEELS=$2; shift 2;; --jobs) JOBS=$2; shift 2;; --set) SETS+=(--set "$2"); shift 2;;
    *) echo "gpu_run.sh: unknown option $1" >&2; exit 2;;
  esac
done
OUT=${OUT:?set OUT to the folder whose files come back}
mkdir -p "$OUT"
START=$(date +%s)
PY=${PYTHON:-python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} TQDM_DISABLE=1
WORK=$(mktemp -d)
status=0
{
  date -u; echo "device $DEVICE budget $BUDGET data $DATA jobs $JOBS"; git log -1 --format='commit %H' 2>/dev/null
  nvidia-smi 2>/dev/null || echo "no nvidia-smi"
  if [ -d "$WHEELS" ]; then
    $PY -m pip install -q --no-deps "$WHEELS"/*.whl 2>&1 | tail -3 || echo "wheels: install failed"
  fi
  $PY -c "import torch, polyplib; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    torch.cuda.is_available())"
  $PY -m polyplib datasets --root "$DATA"
} > "$OUT/env.txt" 2>&1

QUICK=() SAM=(--sam-model polyp-sam-b)
if [ "$DEVICE" = cpu ]; then QUICK=(--quick); SAM=(--sam-model polyp-sam-tiny --size 64 --batch 2); fi
$PY benchmarks/gpu_checks.py --device "$DEVICE" --root "$DATA" "${SAM[@]}" --out "$OUT/checks.json" \
  >> "$OUT/env.txt" 2>&1 || { echo "device checks failed: see checks.json" >> "$OUT/env.txt"; status=1; }
$PY -m polyplib bench --suite all --device "$DEVICE" "${QUICK[@]}" --out "$OUT/bench.json" --overwrite \
  >> "$OUT/env.txt" 2>&1 || { echo "bench failed" >> "$OUT/env.txt"; status=1; }

# the rest of the budget for the campaigns (seconds), stopping cleanly at a checkpoint
TOTAL=$($PY -c "from polyplib.campaigns.runner import parse_budget; print(int(parse_budget('$BUDGET')))")
LEFT=$(( TOTAL - ($(date +%s) - START) ))
[ "$LEFT" -lt 10 ] && LEFT=10  # at least one run starts (it stops at its first epoch checkpoint)
CAMPAIGN=(--root "$DATA" --results "$WORK/results" --work "$WORK/work" --device "$DEVICE" --tests present
          --from-scratch "${SETS[@]}")
$PY -m polyplib campaign plan full "${CAMPAIGN[@]}" > "$OUT/plan.txt" 2>&1 || status=1
$PY -m polyplib campaign run full "${CAMPAIGN[@]}" --jobs "$JOBS" --budget "${LEFT}s" > "$OUT/campaign.log" 2>&1 \
  || status=1
tar -czf "$OUT/results.tar.gz" -C "$WORK" results 2>/dev/null || tar -czf "$OUT/results.tar.gz" -T /dev/null
rm -rf "$WORK"
echo "gpu_run.sh: status $status after $(( $(date +%s) - START )) s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $status
