"""DDP through torchrun: two CPU processes (gloo backend) train one classifier together."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd

from ich.data.sampling import Balance
from ich.train.loop import TrainConfig, epoch_rows

SCRIPT = textwrap.dedent(
    """
    import sys, pandas as pd, torch
    from ich.networks.classifier import ClassifierSpec
    from ich.train.classify import train_classifier
    from ich.train.loop import TrainConfig, is_main_process
    index = pd.read_csv(sys.argv[1]); split = pd.read_csv(sys.argv[2])
    _, result, predictions = train_classifier(
        index, split, sys.argv[3], ClassifierSpec("wa2d_cnn3", input_size=32),
        TrainConfig(epochs=2, batch_size=8, scheduler="none", seed=0), balance_policy="weighted_sampler")
    if is_main_process():
        predictions.to_csv(sys.argv[4], index=False)
        print("epochs", len(result.history))
    """
)


def test_ranks_draw_disjoint_shares_of_the_same_epoch(monkeypatch):
    plan = Balance(np.arange(10))
    config = TrainConfig(seed=3)
    monkeypatch.setenv("WORLD_SIZE", "2")
    shares = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        shares.append(epoch_rows(plan, config, epoch=1))
    assert sorted(shares[0] + shares[1]) == list(range(10))
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert epoch_rows(plan, config, epoch=1)[::2] == shares[0]


def test_torchrun_two_processes_train_and_rank0_writes(tiny_cohort, tiny_split, tmp_path):
    tiny_cohort["index"].to_csv(tmp_path / "index.csv", index=False)
    tiny_split.to_csv(tmp_path / "split.csv", index=False)
    (tmp_path / "run.py").write_text(SCRIPT)
    out = tmp_path / "predictions.csv"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(tmp_path / "run.py"),
            str(tmp_path / "index.csv"),
            str(tmp_path / "split.csv"),
            str(tiny_cohort["converted"]),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epochs 2") == 1  # only rank 0 reports
    predictions = pd.read_csv(out)
    assert set(predictions["set"]) == {"val", "test"}
    assert predictions["prob_any"].between(0, 1).all()
