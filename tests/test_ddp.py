"""DDP: `torchrun --nproc-per-node 2 -m polyplib train` on the CPU (gloo) keeps both ranks in sync."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polyplib.engine import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           "-m", "polyplib", "train", "--preset", "cpu-tiny", "--out", str(out), "--no-progress",
           "--set", "epochs=2", "batch_size=2", "augment=true", "dataset_options.n=30"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and len(result["rank_digests"]) == 2
    assert result["rank_digests"][0] == result["rank_digests"][1]
    last = load_checkpoint(out / "last.pt")
    n_train = len(last["split"]["train"])
    # each optimiser step consumed one batch of 2 on each of the 2 ranks
    assert last["global_step"] == 2 * (n_train // 2 // 2) and len(last["rng"]) == 2
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]  # only rank 0 wrote the log
