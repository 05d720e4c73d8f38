"""One training loop for every model: classifiers and the U-Net alike.

What varies between models is passed in: the loss, how to score a validation epoch
(ROC-AUC for classifiers, Jaccard for the U-Net), the optimiser settings. The loop owns
what must be identical everywhere: seeding per epoch (so a resumed run continues the same
run), balanced sampling, best-epoch selection, atomic checkpoints, CUDA with mixed
precision when a GPU is present and deterministic CPU execution otherwise.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ich.data.batch import batch_length, to_device
from ich.data.sampling import Balance
from ich.io.atomic import atomic_file
from ich.io.digest import code_digest, digest_values
from ich.networks import default_device
from ich.reproducible import pin_threads


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; every field is a ``params.yaml`` key of a ``train`` section.

    The defaults are ``params.yaml``'s ``train.defaults`` (``tests/test_params.py`` holds them equal):
    a section, or a test, that leaves a key out gets what the pipeline uses."""

    epochs: int = 6
    batch_size: int = 16
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # none | plateau (ReduceLROnPlateau on validation loss) | cosine (per epoch, to 0)
    plateau_patience: int = 2
    plateau_factor: float = 0.1
    seed: int = 0
    num_workers: int = 0
    amp: bool = True  # mixed precision, used only on CUDA
    bn_recalibration_batches: int = 8  # BatchNorm statistics recomputed before each validation; 0: off
    refit: bool = False  # after choosing the epoch on validation, train again on training + validation patients

    def __post_init__(self) -> None:
        if self.refit and self.scheduler == "plateau":
            raise ValueError("refit trains without validation, which scheduler: plateau steps on; use cosine or none")


@dataclass
class FitResult:
    """Per-epoch history and the best epoch's weights."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch: int = 0  # the first epoch this run trained: > 0 when it resumed from a checkpoint


Validator = Callable[[nn.Module], tuple[float, float]]
"""Returns ``(validation loss, validation score)`` for the model; higher score is better."""
NO_VALIDATION = float("nan")
"""The history's validation loss and score of an epoch trained without validation (a refit)."""


def seed_everything(seed: int) -> None:
    """Seed torch, pin its CPU threads and make CPU kernels deterministic (CUDA stays fast: warn only)."""
    pin_threads()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (Gudadhe 2024, Cortes-Ferre 2023 and Hssayeni 2020) or SGD with momentum (Alqnatri 2021)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected adam or sgd")


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """ReduceLROnPlateau on validation loss (Alqnatri 2021), cosine annealing over the epochs, or none.

    Cosine annealing lets a short run (the demo's few epochs) start at a high rate and still end
    with small steps, so the last epochs settle instead of jumping between minima.
    """
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", patience=config.plateau_patience, factor=config.plateau_factor
        )
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.scheduler == "none":
        return None
    raise ValueError(f"unknown scheduler {config.scheduler!r}; expected none, plateau or cosine")


def recalibrate_batchnorm(
    model: nn.Module, dataset: Dataset, rows: np.ndarray, config: TrainConfig, device: torch.device, prepare: nn.Module
) -> None:
    """Recompute every BatchNorm's running statistics from ``config.bn_recalibration_batches`` batches.

    After a few epochs the running averages still mix in the statistics of the early weights,
    and in eval mode a network that ranks well can put every probability in a narrow band
    (EffClass on the demo: all test slices between 0.68 and 0.79). Averaging the statistics of
    the final weights over training slices, spread evenly over the training rows and without
    augmentation ("precise BN", :func:`torch.optim.swa_utils.update_bn`), removes that shift.
    Deterministic: the same rows every time. No-op for models without BatchNorm.
    """
    if config.bn_recalibration_batches <= 0 or not any(isinstance(m, _BatchNorm) for m in model.modules()):
        return
    n = min(len(rows), config.bn_recalibration_batches * config.batch_size)
    chosen = rows[np.linspace(0, len(rows) - 1, n).round().astype(int)].tolist()
    loader = DataLoader(Subset(dataset, chosen), batch_size=config.batch_size, num_workers=config.num_workers)
    was_training = prepare.training
    prepare.eval()
    with torch.no_grad():
        # one slice cannot give statistics; a whole study (B, T, C, H, W) can
        batches = [
            [prepare(to_device(x, device))] for x, _ in loader if batch_length(x) > 1 or getattr(x, "ndim", 0) == 5
        ]
    prepare.train(was_training)
    if batches:  # update_bn takes element [0] of a list: a named batch arrives whole
        update_bn(batches, model)


def world() -> tuple[int, int]:
    """``(rank, world size)`` under ``torchrun`` (from its environment), ``(0, 1)`` otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only rank 0 writes outputs, checkpoints and logs."""
    return world()[0] == 0


def epoch_rows(balance: Balance, config: TrainConfig, epoch: int) -> list[int]:
    """This process's training rows for one epoch, in order.

    The draw is seeded by ``(seed, epoch)`` and identical on every rank; each rank then takes
    every ``world``-th row, so DDP ranks see disjoint shares and a resumed run sees the same
    rows as an uninterrupted one.
    """
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    n = len(balance.rows)
    if balance.sample_weights is not None:
        weights = torch.as_tensor(balance.sample_weights[balance.rows], dtype=torch.float64)
        order = torch.multinomial(weights, n, replacement=True, generator=generator)
    else:
        order = torch.randperm(n, generator=generator)
    rank, size = world()
    return balance.rows[order.numpy()][rank::size].tolist()


def epoch_loader(dataset: Dataset, balance: Balance, config: TrainConfig, epoch: int) -> DataLoader:
    """The training loader of one epoch (rows from :func:`epoch_rows`)."""
    rows = epoch_rows(balance, config, epoch)
    # A final batch of one breaks BatchNorm in training mode (e.g. EffClass's 1x1 BiFPN level).
    drop_last = len(rows) % config.batch_size == 1
    return DataLoader(
        Subset(dataset, rows), batch_size=config.batch_size, num_workers=config.num_workers, drop_last=drop_last
    )


def _distribute(model: nn.Module, device: torch.device) -> tuple[nn.Module, torch.device]:
    """Wrap ``model`` in DDP when launched by ``torchrun`` with more than one process."""
    rank, size = world()
    if size == 1:
        return model, device
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    model.to(device)
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids), device


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` through :func:`ich.io.atomic.atomic_file`: a crash never leaves half a file."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def fit(
    model: nn.Module,
    train_set: Dataset,
    *,
    balance: Balance,
    loss_fn: nn.Module,
    validate: Validator | None,
    config: TrainConfig,
    checkpoint: Path | None = None,
    fingerprint: str = "",
    device: torch.device | None = None,
    prepare: nn.Module | None = None,
) -> FitResult:
    """Train ``model`` for ``config.epochs`` epochs, keeping the best epoch by validation score
    (``validate=None``: no validation, as a refit on every non-test patient; the last epoch is kept).

    If ``checkpoint`` exists and was written with the same ``fingerprint``, training resumes
    after its last completed epoch. The fingerprint must digest everything the run depends on
    besides the ``ich`` source, which this function folds in (parameters, data content:
    :func:`ich.io.digest.digest_values`), so that only an
    interrupted run of the same inputs resumes; a checkpoint of anything else is ignored and
    overwritten, never mixed in. The caller removes the checkpoint once its outputs are written. ``prepare`` (e.g.
    :class:`ich.data.transforms.BatchPreparation`) maps each input batch on the device before
    the model; it is put in training mode, so it may augment.
    """
    if validate is None and config.scheduler == "plateau":
        raise ValueError("scheduler: plateau steps on the validation loss; training without validation needs another")
    device = device or default_device()
    model.to(device)
    core = model  # the unwrapped model: its state dict has no DDP "module." prefix
    model, device = _distribute(model, device)
    prepare = (prepare or nn.Identity()).to(device).train()
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    result = FitResult()
    start = 0
    if checkpoint is not None:
        fingerprint = digest_values(fingerprint, code_digest())  # other code never resumes
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("fingerprint") == fingerprint:
            core.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler"):
                scheduler.load_state_dict(state["scheduler"])
            start = state["epoch"] + 1
            result = FitResult(state["history"], state["best_epoch"], state["best_score"], state["best_state"], start)
            print(f"resuming from {checkpoint} after epoch {state['epoch']}")
        else:
            print(f"ignoring {checkpoint}: it was written for other inputs (params, data or code)")

    for epoch in range(start, config.epochs):
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout and augmentation, per epoch
        model.train()
        started = time.perf_counter()
        total, seen = 0.0, 0
        loader = epoch_loader(train_set, balance, config, epoch)
        for inputs, targets in tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False, mininterval=5.0):
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                loss = loss_fn(model(prepare(inputs)), targets)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach()) * batch_length(inputs)
            seen += batch_length(inputs)
        seconds = time.perf_counter() - started
        recalibrate_batchnorm(core, train_set, balance.rows, config, device, prepare)
        val_loss, val_score = validate(core) if validate is not None else (NO_VALIDATION, NO_VALIDATION)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        entry = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "val_loss": val_loss,
            "val_score": val_score,
            "lr": optimizer.param_groups[0]["lr"],
        }
        result.history.append(entry)
        if is_main_process():
            summary = ", ".join(f"{k}={v:.4g}" for k, v in entry.items() if k != "epoch")
            print(f"epoch {epoch}: {summary} ({seconds:.1f}s)")
        if validate is None or val_score > result.best_score or result.best_state is None:
            result.best_epoch, result.best_score = epoch, val_score
            result.best_state = {k: v.detach().cpu().clone() for k, v in core.state_dict().items()}
        if checkpoint is not None and is_main_process():
            save_atomic(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": core.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else {},
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "best_score": result.best_score,
                    "best_state": result.best_state,
                    "config": asdict(config),
                },
                checkpoint,
            )
    if result.best_state is not None:
        core.load_state_dict(result.best_state)
    return result
