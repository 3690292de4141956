#!/usr/bin/env bash
# What travels to a GPU machine beside the working tree (carry it by name: `.gpu`; ../shared does not travel):
#   .gpu/data    a compact cache of every dataset under ROOT (images at 256 px as JPEG, masks at the original size as
#                PNG: `polyplib.data.prepare_cache`), itself a data root, for benchmarks/gpu_run.sh --data .gpu/data;
#   .gpu/lite.tgz  with --lite instead: the lite profile's data exactly (benchmarks/gpu_campaign.sh): Kvasir-SEG's
#                GMSRF training split as the original files (augmentation crops at full resolution), every other image
#                at 128 px as lossless WebP, where the loader's resize changes nothing; plus .gpu/digest.txt (what it
#                decodes to here, checked there) and .gpu/commit (the commit the tree is copied from);
#   .gpu/wheels  wheels of the packages the GPU image lacks (it has torch, timm, torchvision, scikit-learn, scipy,
#                opencv, pandas, seaborn), without their dependencies that it has.
# The carry limit is 64 MiB in all: the sizes are printed at the end.
# Usage: benchmarks/gpu_pack.sh ROOT [--lite] [--no-wheels]   (PACK=DIR writes under DIR instead of .gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:?usage: benchmarks/gpu_pack.sh ROOT [--lite] [--no-wheels]}; shift
LITE=0 WHEELS=1
for arg in "$@"; do
  case "$arg" in --lite) LITE=1;; --no-wheels) WHEELS=0;; *) echo "gpu_pack.sh: unknown option $arg" >&2; exit 2;; esac
done
PY=${PYTHON:-python} PACK=${PACK:-.gpu}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} TQDM_DISABLE=1
if [ $LITE = 1 ]; then
  $PY - "$ROOT" "$PACK/lite" <<'PY'
import sys

from polyplib.data import prepare_cache

root, out = sys.argv[1:]
for name, originals in (("kvasir-seg", "train"), ("cvc-colondb", None)):
    path = prepare_cache(name, out, root=root, image_size=128, image_format="webp", originals=originals, overwrite=True)
    print("cached", name, "in", path)
PY
  $PY benchmarks/data_digest.py "$PACK/lite" kvasir-seg:none cvc-colondb:128 > "$PACK/digest.txt"
  git rev-parse HEAD > "$PACK/commit"
  # one archive: its ~4,000 small files would count ~10 MiB of disk blocks against the transfer's 64 MiB
  tar -czf "$PACK/lite.tgz" -C "$PACK" lite && rm -rf "$PACK/lite"
else
  $PY - "$ROOT" "$PACK/data" <<'PY'
import sys
from polyplib.data import list_datasets, prepare_cache

root, out = sys.argv[1:]
for row in list_datasets(root):
    if row["present"] and row["path"]:
        print("cached", prepare_cache(row["name"], out, root=root, image_size=256, image_format="jpg"))
PY
fi
if [ $WHEELS = 1 ]; then  # the versions installed here (tested together), without dependency resolution
  # not carried: statsmodels (polyplib does not import it), gdown (downloads), submitit (SLURM): 13 MB of the 64 MiB
  PINNED=$($PY - segmentation-models-pytorch segment-anything albumentations albucore stringzilla simsimd pysodmetrics \
    monai pooch platformdirs pydantic pydantic-core annotated-types typing-inspection pyyaml <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(name)
PY
)
  mkdir -p "$PACK/wheels"
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any -d "$PACK/wheels" $PINNED
fi
du -sh "$PACK"/* "$PACK"
