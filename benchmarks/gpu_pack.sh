#!/usr/bin/env bash
# What travels to a GPU machine beside the working tree (carry it by name: `.gpu`; ../shared does not travel):
#   .gpu/data    a compact cache of every dataset under ROOT (images at 256 px as JPEG, masks at the original size as
#                PNG: `polyplib.data.prepare_cache`), itself a data root, for benchmarks/gpu_run.sh --data .gpu/data;
#   .gpu/wheels  wheels of the packages the GPU image lacks (it has torch, timm, torchvision, scikit-learn, scipy,
#                opencv, pandas, seaborn), without their dependencies that it has.
# The carry limit is 64 MiB in all: the sizes are printed at the end. Usage: benchmarks/gpu_pack.sh ROOT [--no-wheels]
# (PACK=DIR writes DIR/data and DIR/wheels instead of .gpu/...)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:?usage: benchmarks/gpu_pack.sh ROOT [--no-wheels]}
PY=${PYTHON:-python} PACK=${PACK:-.gpu}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} TQDM_DISABLE=1
$PY - "$ROOT" "$PACK/data" <<'PY'
import sys
from polyplib.data import list_datasets, prepare_cache

root, out = sys.argv[1:]
for row in list_datasets(root):
    if row["present"] and row["path"]:
        print("cached", prepare_cache(row["name"], out, root=root, image_size=256, image_format="jpg"))
PY
if [ "${2:-}" != --no-wheels ]; then  # the versions installed here (tested together), without dependency resolution
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
