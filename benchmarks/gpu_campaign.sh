#!/usr/bin/env bash
# One lite campaign on a GPU machine, in the CPU's recipe (fp32: TF32 off, `keep_fp32_exact`), from a carried pack:
#   .gpu/lite.tgz the data root, unpacked first (benchmarks/gpu_pack.sh ROOT --lite: the training split's files
#                 unchanged, the rest lossless at 128 px: the samples of the dataset itself);
#   .gpu/wheels   the packages the GPU image lacks (benchmarks/gpu_pack.sh); .gpu/digest.txt, .gpu/commit: what the
#                 data decodes to here (benchmarks/data_digest.py) and the commit the tree was copied from.
# The store and the checkpoints live outside the tree (/tmp/polyplib-gpu), so a second call on the same machine
# resumes what a first one left at its --budget. Each finished result is copied to $OUT as it lands.
# Usage: OUT=DIR benchmarks/gpu_campaign.sh PROFILE CAMPAIGN [--device cuda] [--jobs 4] [--threads 4] [--budget 500s]
#        [--only GLOB] [--again]   (--again: rerun the selected runs although results/ holds them; they come back)
set -uo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:?usage: gpu_campaign.sh PROFILE CAMPAIGN [options]} CAMPAIGN=${2:?campaign name}; shift 2
DEVICE=cuda JOBS=4 THREADS=4 BUDGET=500s PACK=.gpu STATE=${STATE:-/tmp/polyplib-gpu} ONLY=() AGAIN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2;; --jobs) JOBS=$2; shift 2;; --threads) THREADS=$2; shift 2;;
    --budget) BUDGET=$2; shift 2;; --pack) PACK=$2; shift 2;; --only) ONLY=(--only "$2"); shift 2;;
    --again) AGAIN=1; shift;; *) echo "gpu_campaign.sh: unknown option $1" >&2; exit 2;;
  esac
done
OUT=${OUT:?set OUT to the folder whose files come back}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} TQDM_DISABLE=1 PYTHONUNBUFFERED=1
[ -f "$PACK/commit" ] && export POLYPLIB_COMMIT=$(cat "$PACK/commit")
[ -d "$PACK/lite" ] || tar -xzf "$PACK/lite.tgz" -C "$PACK" || { echo "no $PACK/lite or $PACK/lite.tgz" >&2; exit 2; }
mkdir -p "$OUT" "$STATE/results/$PROFILE/$CAMPAIGN"
[ $AGAIN = 1 ] || cp -n "results/$PROFILE/$CAMPAIGN/"*.json "$STATE/results/$PROFILE/$CAMPAIGN/" 2>/dev/null  # stored
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
  if [ -d "$PACK/wheels" ] && ! $PY -c "import albumentations, monai" 2>/dev/null; then
    $PY -m pip install -q --no-deps --no-index "$PACK"/wheels/*.whl 2>&1 | tail -3
  fi
  $PY -c "import torch, polyplib; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    torch.cuda.is_available())"
  if [ -f "$PACK/digest.txt" ]; then
    read -r -a SPECS <<< "$(awk '{print $1 ":" ($2 == "stored" ? "none" : $2)}' "$PACK/digest.txt" | tr '\n' ' ')"
    $PY benchmarks/data_digest.py "$PACK/lite" "${SPECS[@]}" > "$STATE/digest.txt"
    cmp -s "$STATE/digest.txt" "$PACK/digest.txt" && echo "data digest: same samples as where the pack was made" \
      || { echo "data digest DIFFERS:"; diff "$PACK/digest.txt" "$STATE/digest.txt"; }
  fi
} > "$OUT/env.txt" 2>&1
copy_results() {  # finished results (not the ones carried in) to $OUT
  for f in "$STATE/results/$PROFILE/$CAMPAIGN/"*.json; do
    [ -f "$f" ] && { [ $AGAIN = 1 ] || [ ! -f "results/$PROFILE/$CAMPAIGN/$(basename "$f")" ]; } && cp -u "$f" "$OUT/"
  done
}
( while sleep 10; do copy_results; done ) & WATCH=$!
ARGS=(--root "$PACK/lite" --results "$STATE/results" --work "$STATE/work" --device "$DEVICE" --threads "$THREADS")
$PY -m polyplib campaign run "$PROFILE" "$CAMPAIGN" "${ARGS[@]}" "${ONLY[@]}" --jobs "$JOBS" --budget "$BUDGET" \
  >> "$OUT/campaign.log" 2>&1; status=$?
kill $WATCH 2>/dev/null; copy_results
$PY -m polyplib campaign plan "$PROFILE" "$CAMPAIGN" --root "$PACK/lite" --results "$STATE/results" >> "$OUT/campaign.log" 2>&1
echo "gpu_campaign.sh: status $status; in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $status
