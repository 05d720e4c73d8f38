"""Training throughput per classifier, and the real data loader against in-memory tensors.

Prints, for every model of ``params.yaml``'s ``train`` section at its configured input size:
training images/second (forward + backward + optimiser step, batch of the section's size), and
for one model the rate when batches come from the real ``SliceDataset`` loader (PNG decode,
resize, augmentation) versus the same-shaped tensors already in memory. The loader is not
the bottleneck when the ratio is >= 90%. Runs on CUDA when a GPU is present (else the CPU);
``--num-workers`` and ``--input-size`` override the section, to size a GPU run.

    python bench/train_speed.py [--models a,b] [--seconds 8] [--loader-model wa2d_cnn3]
                                [--num-workers 8] [--input-size 256]

Needs a converted cohort at ``data/converted`` (run ``dvc repro convert`` first).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from ich.networks import default_device
from ich.networks.classifier import ClassifierSpec, build_classifier
from ich.params import load_params
from ich.train.classify import ClassifierTraining, parse_section
from ich.train.loop import TrainConfig, make_optimizer
from ich.train.study import StudyLoss

DEVICE = default_device()


def _rate(model: nn.Module, batches, optimizer, seconds: float, prepare: nn.Module, loss_fn: nn.Module) -> float:
    """Images (slices) per second over at least ``seconds`` of training steps (after one warm-up step)."""
    model.to(DEVICE).train()
    prepare.to(DEVICE).train()
    seen, started, warm = 0, None, False
    while True:
        for x, y in batches():
            x, y = x.to(DEVICE, non_blocking=True), y.to(DEVICE, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(prepare(x)), y).backward()
            optimizer.step()
            if DEVICE.type == "cuda":
                torch.cuda.synchronize()
            if not warm:
                warm, started = True, time.perf_counter()
                continue
            seen += x.shape[0] * (x.shape[1] if x.dim() == 5 else 1)
            if time.perf_counter() - started >= seconds:
                return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated subset of params.yaml train sections")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--loader-model", default="wa2d_cnn3")
    parser.add_argument("--num-workers", type=int, default=None, help="loader workers (default: the section's)")
    parser.add_argument("--input-size", type=int, default=None, help="network input (default: the section's)")
    args = parser.parse_args()
    sections = load_params()["train"]

    def section(name: str) -> tuple[ClassifierSpec, ClassifierTraining, TrainConfig]:
        """The ``train`` section, with the command line's overrides."""
        spec, training, config = parse_section(name, sections[name])
        spec = replace(spec, input_size=args.input_size) if args.input_size else spec
        workers = args.num_workers if args.num_workers is not None else config.num_workers
        return spec, training, replace(config, num_workers=workers)

    names = args.models.split(",") if args.models else list(sections)
    index = pd.read_csv("data/converted/index.csv")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {DEVICE}")
    print(f"{'model':<12} {'input':>5} {'batch':>5} {'params':>12} {'img/s':>8}")
    for name in names:
        spec, training, config = section(name)
        channels = spec.slice_channels * spec.stack
        torch.manual_seed(0)
        model = build_classifier(spec)
        outputs = len(spec.label_columns)
        if spec.per_study:  # one study of 16 slices per step
            x = torch.randint(0, 256, (1, 16, channels, spec.input_size, spec.input_size), dtype=torch.uint8)
            y, loss_fn = torch.randint(0, 2, (1, 16, outputs)).float(), StudyLoss()
        else:
            x = torch.randint(
                0, 256, (config.batch_size, channels, spec.input_size, spec.input_size), dtype=torch.uint8
            )
            y, loss_fn = torch.randint(0, 2, (config.batch_size, outputs)).float(), nn.BCEWithLogitsLoss()
        prepare = training.preparation(spec)
        rate = _rate(model, lambda x=x, y=y: [(x, y)], make_optimizer(model, config), args.seconds, prepare, loss_fn)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{name:<12} {spec.input_size:>5} {config.batch_size:>5} {n_params:>12,} {rate:>8.1f}")

    spec, training, config = section(args.loader_model)
    if spec.per_study:
        raise SystemExit(f"--loader-model {args.loader_model} reads whole studies; choose a slice model")

    def loader(cache: bool) -> DataLoader:
        return DataLoader(
            spec.dataset(index, "data/converted", cache=cache),
            batch_size=config.batch_size,
            shuffle=True,
            num_workers=config.num_workers,
            drop_last=True,
            pin_memory=DEVICE.type == "cuda",
        )

    cold = loader(cache=False)
    in_memory = [next(iter(cold))] * (len(index) // config.batch_size)
    cached = loader(cache=True)
    rates = {}
    for label, batches in (
        ("in-memory", lambda: in_memory),
        ("PNG decode every step", lambda: cold),
        ("cached (decoded up front)", lambda: cached),
    ):
        torch.manual_seed(0)
        model = build_classifier(spec)
        prepare = training.preparation(spec)
        rates[label] = _rate(
            model, batches, make_optimizer(model, config), args.seconds, prepare, nn.BCEWithLogitsLoss()
        )
    started = time.perf_counter()
    decoded = sum(len(x) for x, _ in cold)
    load_only = decoded / (time.perf_counter() - started)
    print(f"\n{args.loader_model} training img/s (num_workers={config.num_workers}):")
    for label, rate in rates.items():
        print(f"  {label:<26} {rate:8.1f}  ({100 * rate / rates['in-memory']:.0f}% of in-memory)")
    print(f"  loader alone, PNG decode  {load_only:8.0f}")


if __name__ == "__main__":
    main()
