"""The trainer under ``torchrun --nproc_per_node 2`` (DistributedDataParallel, gloo backend, CPU).

The test launches this very file with torchrun; each process trains a tiny model and saves its final weights.
Checks: both processes end with identical weights; only rank 0 wrote a run folder; and the two processes with
batch 2 each trained exactly like one process with batch 4 (same images, averaged gradients).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import write_images  # noqa: E402

STEPS = 4


def overrides(root: Path, batch: int, out_dir: Path) -> dict:
    return {"model.encoder": "edsr-less", "run.amp": "off", "data.train_dir": str(root / "train"), "data.patch": 8,
            "data.scales": [2], "data.batch_size": batch, "data.num_workers": 0, "run.max_steps": STEPS,
            "run.seed": 11, "run.log_every": 1, "run.progress": False, "run.out_dir": str(out_dir),
            "val.sets": [str(root / "val")], "val.scales": [2], "val.every": 2}


@pytest.mark.slow
def test_two_processes_match_each_other_and_one_big_batch(tmp_path):
    write_images(tmp_path / "train", 8)
    write_images(tmp_path / "val", 1, size=(16, 20), seed=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                        os.environ.get("PYTHONPATH")])),
           "TMPDIR": str(tmp_path)}  # torchrun's own torchelastic_* folders go with the test's folder
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    w0 = torch.load(tmp_path / "weights0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "weights1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # gradients were averaged across the processes
    assert (tmp_path / "rank0" / "last.pt").is_file() and not (tmp_path / "rank1").exists()  # rank 0 writes
    log = train.read_metrics(tmp_path / "rank0")
    assert [r["step"] for r in log if "loss" in r] == list(range(1, STEPS + 1))
    assert [r["step"] for r in log if "val_psnr" in r] == [2, 4]

    one = train.train("diinn-edsr", overrides(tmp_path, 4, tmp_path / "single"))  # one process, batch 2 x 2
    ref = one.model.state_dict()
    for k in ref:
        torch.testing.assert_close(w0[k], ref[k], rtol=1e-4, atol=1e-6)


def _worker(root: Path) -> None:
    """Run by each torchrun process: train, then save this process's weights (outside the run folder)."""
    rank = int(os.environ["RANK"])
    result = train.train("diinn-edsr", overrides(root, 2, root / f"rank{rank}"))
    torch.save(result.model.state_dict(), root / f"weights{rank}.pt")


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
