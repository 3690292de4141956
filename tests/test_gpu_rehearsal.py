"""The GPU session script, rehearsed unchanged on the CPU: pack a data cache, then benchmarks/gpu_run.sh --device cpu
with a tiny budget; at most 8 files come back and each says what it should."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fullpath import make_root

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_rehearsed_on_the_cpu(tmp_path):
    root = make_root(tmp_path / "data", kvasir=20, colondb=2, size=(96, 120))
    env = {**os.environ, "PYTHON": sys.executable, "PACK": str(tmp_path / "pack"), "OUT": str(tmp_path / "out"),
           "OMP_NUM_THREADS": "1"}
    pack = subprocess.run([str(REPO / "benchmarks/gpu_pack.sh"), str(root), "--no-wheels"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert pack.returncode == 0, pack.stderr
    cached = tmp_path / "pack" / "data" / "Kvasir-SEG"
    assert len(list((cached / "images").glob("*.jpg"))) == 20 and len(list((cached / "masks_orig").glob("*.png"))) == 20
    run = subprocess.run([str(REPO / "benchmarks/gpu_run.sh"), "--device", "cpu", "--budget", "20s", "--jobs", "1",
                          "--data", str(tmp_path / "pack" / "data"), "--set", "image_size=64",
                          "--set", 'recipe={"workers": 0, "batch_size": 8}'],
                         env=env, capture_output=True, text=True, timeout=900)
    out = tmp_path / "out"
    files = sorted(p.name for p in out.iterdir())
    print(run.stdout, (out / "env.txt").read_text()[-3000:], (out / "campaign.log").read_text()[-2000:], sep="\n")
    assert run.returncode == 0, run.stdout + run.stderr
    assert files == ["bench.json", "campaign.log", "checks.json", "env.txt", "plan.txt", "results.tar.gz"]
    checks = json.loads((out / "checks.json").read_text())["checks"]
    assert all(c["ok"] for c in checks.values()) and len(checks) == 8
    assert checks["sam vs SamPredictor"]["max_abs_diff"] < 1e-3
    assert json.loads((out / "bench.json").read_text())
    plan = (out / "plan.txt").read_text()
    assert "64 runs: 0 done, 0 partial, 52 missing, 12 unavailable" in plan
    log = (out / "campaign.log").read_text()
    assert "partial" in log and "run(s) remain" in log  # the budget stopped the first run at a checkpoint
    with tarfile.open(out / "results.tar.gz") as tar:
        assert all(not m.name.endswith(".pt") for m in tar.getmembers())
