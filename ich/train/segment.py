"""Bleed segmenters of 003 on the split: the crop-trained U-Net and the grey-level band baseline.

Both end the same way, so that one evaluation treats them alike: every validation and test
slice with a reference mask gets a bleed-probability map (:func:`predict_split`, stored as in
:mod:`ich.segmentation.maps`), and one :class:`~ich.segmentation.maps.PostProcess` (threshold,
closing, opening) turns maps into masks in U-Net validation, in the band's grid search and in
the evaluation.

The U-Net (:func:`train_unet`) goes through the shared training loop
(:func:`ich.train.loop.fit`) on crops (:mod:`ich.segmentation.crops`): every training crop
holding bleed plus ``negative_ratio`` times as many random crops without, drawn once as in 003;
each crop is augmented at every draw with the paper's affine ranges, identically for image and
mask (:func:`ich.segmentation.augment.augment_crop`). The best epoch is the one with the highest
validation Jaccard of stitched, post-processed slices. Slices without a reference mask
(classification-only datasets) take no part in segmentation.

The band baseline (:func:`fit_band`) grid-searches a grey-level band on the training slices
(:func:`ich.segmentation.threshold.fit_threshold_band`); its map is the raw 0/1 band, so every
probability threshold gives the same mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ich.data.sampling import Balance
from ich.metrics.segmentation import overlap_counts
from ich.models import build
from ich.models.unet import UNet
from ich.segmentation import (
    AffineRanges,
    PostProcess,
    augment_crop,
    crop_grid,
    extract_crops,
    fit_threshold_band,
    inclusive_grid,
    positive_crops,
    predict_threshold_band,
    stitch,
    undersample,
    write_prob_map,
)
from ich.io.digest import code_digest, digest_values
from ich.train.loop import FitResult, TrainConfig, default_device, fit, seed_everything
from ich.io.slices import read_slice

UNET_TRAINING = TrainConfig(epochs=150, batch_size=32, optimizer="adam", lr=1e-5)
"""003's optimisation (Adam, learning rate 1e-5, mini-batch 32, 150 epochs): what a
``kind: unet`` section gets for every ``TrainConfig`` key it does not set."""


@dataclass(frozen=True)
class UNetSpec:
    """How the U-Net sees the data (a ``segment.<name>`` section with ``kind: unet``).

    ``crop``/``stride`` default to 003's 160/80 (at 640 px); ``crop`` must be a multiple of 16.
    ``loss`` is 003's ``bce`` or ``bce_dice`` (BCE + ``dice_weight`` x soft-Dice loss).
    ``augment`` holds the affine ranges (003: rotation 20 degrees, shift 0.1, shear 0.1, zoom
    0.2); ``None`` (``augment: false`` in the params) switches augmentation off.
    ``inference_batch`` is how many crops go through the network at once when predicting.
    """

    kind: str = "unet"
    base_width: int = 64
    crop: int = 160
    stride: int = 80
    negative_ratio: float = 1.0
    augment: AffineRanges | None = field(default_factory=AffineRanges)
    loss: str = "bce"
    dice_weight: float = 1.0
    inference_batch: int = 64


@dataclass(frozen=True)
class BandSpec:
    """The grey-level band baseline (a ``segment.<name>`` section with ``kind: threshold_band``).

    ``lo``/``hi`` are ``(start, stop, step)`` grids of grey levels of image ``channel`` (003:
    100-210 and 210-255 on its 8-bit slices); ``objective`` is what the grid search maximises on
    the training slices with bleed (003 took the band with the best training Jaccard).
    """

    kind: str = "threshold_band"
    channel: int = 0
    lo: tuple[float, float, float] = (100.0, 210.0, 5.0)
    hi: tuple[float, float, float] = (210.0, 255.0, 5.0)
    objective: str = "jaccard"


def _known(section: Mapping[str, Any], *classes: type, where: str) -> None:
    """Reject keys that none of the dataclasses ``classes`` has: a typo must not be ignored."""
    unknown = set(section) - {f.name for cls in classes for f in fields(cls)}
    if unknown:
        raise ValueError(f"params.yaml {where}: unknown keys {sorted(unknown)}")


def unet_settings(section: Mapping[str, Any], where: str = "segment") -> tuple[UNetSpec, TrainConfig]:
    """Parse a ``kind: unet`` section into the spec and the loop settings (003's by default)."""
    _known(section, UNetSpec, TrainConfig, where=where)
    spec_keys = {f.name for f in fields(UNetSpec)}
    values = {k: v for k, v in section.items() if k in spec_keys}
    if "augment" in values:  # a mapping of ranges (missing ones: 003's), true for 003's, false for none
        augment = values["augment"]
        values["augment"] = AffineRanges() if augment is True else AffineRanges(**augment) if augment else None
    config = replace(UNET_TRAINING, **{k: v for k, v in section.items() if k not in spec_keys})
    return UNetSpec(**values), config


def band_settings(section: Mapping[str, Any], where: str = "segment") -> BandSpec:
    """Parse a ``kind: threshold_band`` section."""
    _known(section, BandSpec, where=where)
    values = {k: tuple(v) if k in ("lo", "hi") else v for k, v in section.items()}
    return BandSpec(**values)


# --- data --------------------------------------------------------------------------------------


def segmentation_parts(index: pd.DataFrame, split: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Slices with a reference mask, by set: ``{"train": ..., "val": ..., "test": ...}``.

    Raises if no training slice has a mask: a dataset without bleed masks (RSNA, CQ500, the
    CT-ICH JPG release) cannot train a segmenter, and saying so beats a silently empty model.
    """
    table = index.merge(split[["patient_id", "set", "fold"]], on="patient_id", how="inner")
    table = table[table["mask_path"].fillna("").astype(str) != ""]
    parts = {name: table[table["set"] == name].reset_index(drop=True) for name in ("train", "val", "test")}
    if parts["train"].empty:
        raise ValueError(
            "no training slice has a reference bleed mask (index column mask_path): this dataset "
            "cannot train a segmenter; set `segmenters: []` in params.yaml"
        )
    return parts


def read_pair(root: str | Path, row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A converted slice as ``(RGB uint8 HxWx3, boolean HxW reference mask)``."""
    image = read_slice(Path(root) / row["image_path"], cv2.IMREAD_COLOR)
    mask = read_slice(Path(root) / row["mask_path"], cv2.IMREAD_GRAYSCALE)
    if image.shape[:2] != mask.shape:
        raise ValueError(f"{row['image_path']}: image {image.shape[:2]} and mask {mask.shape} differ in size")
    return np.ascontiguousarray(image[..., ::-1]), mask > 0


def read_pairs(root: str | Path, table: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`read_pair` for every row of ``table``, in order, one slice in memory at a time."""
    for row in table.to_dict("records"):
        yield read_pair(root, row)


class CropDataset(Dataset):
    """Training crops ``(float image (3, c, c) in [0, 1], float mask (1, c, c))`` of in-memory slices.

    Each item is one ``(slice, corner)``; with ``ranges`` it is re-augmented at every draw, from
    a generator seeded off torch's global one, which the training loop seeds per epoch (so a
    resumed run draws the same augmentations).
    """

    def __init__(
        self,
        slices: Sequence[tuple[np.ndarray, np.ndarray]],
        crops: Sequence[tuple[int, tuple[int, int]]],
        crop: int,
        ranges: AffineRanges | None,
    ) -> None:
        self.slices, self.crops, self.crop, self.ranges = slices, list(crops), crop, ranges

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        which, corner = self.crops[i]
        image, mask = self.slices[which]
        if self.ranges is None:
            image, mask = extract_crops(image, [corner], self.crop)[0], extract_crops(mask, [corner], self.crop)[0]
        else:
            rng = np.random.default_rng(int(torch.randint(2**62, ())))
            image, mask = augment_crop(image, mask, corner, self.crop, self.ranges, rng)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
        return x, torch.from_numpy(mask[None].astype(np.float32))


def training_crops(root: str | Path, train: pd.DataFrame, spec: UNetSpec, seed: int) -> CropDataset:
    """003's training set: every crop with bleed plus ``negative_ratio`` x as many without, drawn once.

    Negatives are pooled over every training slice (with or without bleed) before the draw.
    Only the slices that contribute a crop are kept in memory.
    """
    pool: list[tuple[int, tuple[int, int]]] = []
    positive: list[bool] = []
    for k, row in enumerate(train.to_dict("records")):
        mask = read_slice(Path(root) / row["mask_path"], cv2.IMREAD_GRAYSCALE)
        coords = crop_grid(*mask.shape, crop=spec.crop, stride=spec.stride)
        pool += [(k, corner) for corner in coords]
        positive += positive_crops(mask, coords, spec.crop).tolist()
    if not any(positive):
        raise ValueError("no training crop holds bleed: the U-Net has nothing to learn from")
    kept = [pool[i] for i in undersample(np.array(positive), spec.negative_ratio, np.random.default_rng(seed))]
    rows = sorted({k for k, _ in kept})
    renumber = {k: j for j, k in enumerate(rows)}
    slices = [read_pair(root, train.iloc[k]) for k in rows]
    print(f"training crops: {len(kept)} of {len(pool)} ({sum(positive)} with bleed) from {len(rows)} slices")
    return CropDataset(slices, [(renumber[k], corner) for k, corner in kept], spec.crop, spec.augment)


# --- U-Net -------------------------------------------------------------------------------------


class BceDiceLoss(nn.Module):
    """BCE-with-logits plus ``dice_weight`` x (1 - soft Dice), the Dice pooled over the whole batch.

    Pooling over the batch keeps the Dice term defined on batches of bleed-free crops (the
    undersampled negatives), where a per-crop soft Dice would be 0/0; ``smooth`` keeps it finite.
    The Dice term weighs the rare bleed pixels as much as the background, which BCE alone does
    not: on small cohorts BCE learns "no bleed" first and takes many epochs to leave it.
    """

    def __init__(self, dice_weight: float = 1.0, smooth: float = 1.0) -> None:
        super().__init__()
        self.dice_weight, self.smooth = dice_weight, smooth
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of logits ``(B, 1, H, W)`` against 0/1 targets of the same shape."""
        logits, targets = logits.float(), targets.float()
        prob = torch.sigmoid(logits)
        soft_dice = (2 * (prob * targets).sum() + self.smooth) / (prob.sum() + targets.sum() + self.smooth)
        return self.bce(logits, targets) + self.dice_weight * (1 - soft_dice)


def make_loss(name: str, dice_weight: float = 1.0) -> nn.Module:
    """003's ``bce``, or ``bce_dice`` (:class:`BceDiceLoss`), the Dice-augmented variant."""
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    if name == "bce_dice":
        return BceDiceLoss(dice_weight)
    raise ValueError(f"unknown segmentation loss {name!r}; expected bce or bce_dice")


def initialise_unet(model: UNet) -> UNet:
    """He-normal convolutions, as in 003's Keras U-Net, and a head whose bleed map starts alive.

    He-normal with zero biases is the initialiser of the Keras U-Net 003 built on. Without
    batch normalisation, PyTorch's default shrinks the signal through the 24 layers until the
    network's output is one constant (at ``base_width`` 8) and only the last bias learns.

    The head turns the features into 003's two maps, "one for the ICH regions and one for the
    background", through a ReLU, and a 1x1 convolution combines them. Background pixels
    outnumber bleed by orders of magnitude, so the first updates push the bleed map below zero
    everywhere; once dead, the network can only say "bleed" by switching the background map
    off, and no probability ever exceeds the sigmoid of the last bias (about 0.5: every
    threshold of 003's Table 6 above it finds nothing). So the bleed map starts switched on
    (bias 1) and enters the combination with a positive weight, the background map with a
    negative one; the magnitudes stay He-normal draws.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    maps, combine = model.head[0], model.head[-1]  # 3x3 conv to (bleed, background), 1x1 conv to one logit
    with torch.no_grad():
        maps.bias[0] = 1.0
        combine.weight[:, 0].abs_()
        combine.weight[:, 1] = -combine.weight[:, 1].abs()
    return model


@torch.no_grad()
def predict_prob_map(
    model: nn.Module, image: np.ndarray, crop: int, stride: int, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    """Bleed probability (float64 HxW) of one RGB uint8 slice: crops, sigmoid, stitched by averaging."""
    model.eval()
    coords = crop_grid(image.shape[0], image.shape[1], crop=crop, stride=stride)
    crops = torch.from_numpy(extract_crops(image, coords, crop).transpose(0, 3, 1, 2).copy())
    probs = [
        torch.sigmoid(model(chunk.to(device).float() / 255.0).float())[:, 0].cpu()
        for chunk in crops.split(batch_size)
    ]
    return stitch(torch.cat(probs).numpy(), coords, image.shape[:2])


def validation_score(rows: Sequence[Mapping[str, float]]) -> float:
    """Mean Jaccard over the slices with reference bleed (003's figure); over all if none has bleed."""
    with_bleed = [r["jaccard"] for r in rows if r["ref_pixels"] > 0]
    return float(np.mean(with_bleed or [r["jaccard"] for r in rows]))


def train_unet(
    root: str | Path,
    parts: Mapping[str, pd.DataFrame],
    spec: UNetSpec,
    config: TrainConfig,
    post: PostProcess,
    *,
    checkpoint: Path | None = None,
    inputs_digest: str = "",
) -> tuple[nn.Module, FitResult]:
    """Train the U-Net on the training crops; keep the epoch with the best validation Jaccard.

    ``checkpoint`` and ``inputs_digest`` as in :func:`ich.train.classify.train_classifier`.

    Validation runs the whole inference chain (crops, stitching, ``post``) on the validation
    slices with bleed, the only ones :func:`validation_score` counts (on all of them if none has
    bleed), so no epoch pays for predicting slices that cannot change the choice; the logged
    validation loss is the pixel BCE of those stitched maps. They stay in memory for the run.
    """
    if parts["val"].empty:
        raise ValueError("the split has no validation slice with a mask: the best epoch cannot be chosen")
    seed_everything(config.seed)
    device = default_device()
    train_set = training_crops(root, parts["train"], spec, config.seed)
    val_pairs = list(read_pairs(root, parts["val"]))
    val_pairs = [pair for pair in val_pairs if pair[1].any()] or val_pairs
    model = initialise_unet(
        build(spec.kind, in_channels=3, num_outputs=1, input_size=spec.crop, base_width=spec.base_width)
    )

    def validate(m: nn.Module) -> tuple[float, float]:
        rows, loss, pixels = [], 0.0, 0
        for image, mask in val_pairs:
            prob = predict_prob_map(m, image, spec.crop, spec.stride, device, spec.inference_batch)
            clipped = np.clip(prob, 1e-7, 1 - 1e-7)
            loss -= float(np.sum(np.where(mask, np.log(clipped), np.log1p(-clipped))))
            pixels += mask.size
            rows.append(overlap_counts(post.mask(prob), mask))
        return loss / pixels, validation_score(rows)

    stamp = digest_values(
        asdict(spec),
        asdict(config),
        asdict(post),
        *(parts[name].to_csv(index=False) for name in ("train", "val")),
        code_digest(),
        inputs_digest,
    )
    result = fit(
        model,
        train_set,
        balance=Balance(np.arange(len(train_set))),
        loss_fn=make_loss(spec.loss, spec.dice_weight).to(device),
        validate=validate,
        config=config,
        checkpoint=checkpoint,
        fingerprint=stamp,
        device=device,
    )
    return model, result


def unet_predictor(model: nn.Module, spec: UNetSpec) -> Callable[[np.ndarray], np.ndarray]:
    """Slice -> probability map with the trained U-Net, on the device it sits on."""
    device = next(model.parameters()).device
    return lambda image: predict_prob_map(model, image, spec.crop, spec.stride, device, spec.inference_batch)


# --- band baseline -----------------------------------------------------------------------------


def fit_band(
    root: str | Path, train: pd.DataFrame, spec: BandSpec, post: PostProcess
) -> tuple[float, float, pd.DataFrame]:
    """Grid-search the band on the training slices, scoring masks post-processed as deployed.

    Only the slices whose mask has bleed (the only ones the search scores) are kept in memory.
    Returns ``(lo, hi, table of lo, hi, score)``.
    """
    pairs = [pair for pair in read_pairs(root, train) if pair[1].any()]
    return fit_threshold_band(
        [image for image, _ in pairs],
        [mask for _, mask in pairs],
        inclusive_grid(*spec.lo),
        inclusive_grid(*spec.hi),
        close_kernel=post.close_kernel,
        open_kernel=post.open_kernel,
        channel=spec.channel,
        objective=spec.objective,  # type: ignore[arg-type]
    )


def band_predictor(lo: float, hi: float, spec: BandSpec) -> Callable[[np.ndarray], np.ndarray]:
    """Slice -> raw 0/1 band map (post-processing is the evaluation's, as for the U-Net)."""
    return lambda image: predict_threshold_band(image, lo, hi, channel=spec.channel).astype(np.float64)


# --- outputs -----------------------------------------------------------------------------------


def predict_split(
    predict: Callable[[np.ndarray], np.ndarray],
    root: str | Path,
    parts: Mapping[str, pd.DataFrame],
    out_dir: Path,
) -> pd.DataFrame:
    """Write the probability map of every validation and test slice under ``out_dir/probs``.

    Returns the segmentation predictions table ``slice_id, patient_id, set, fold, prob_path``
    (``prob_path`` relative to ``out_dir``): the Predictions contract with a map in place of
    ``prob_any``, one row per slice.
    """
    frames = []
    for name in ("val", "test"):
        table = parts[name]
        frame = table[["slice_id", "patient_id", "set", "fold"]].copy()
        frame["prob_path"] = [f"probs/{slice_id}.png" for slice_id in table["slice_id"]]
        for (image, _), rel in zip(read_pairs(root, table), frame["prob_path"], strict=True):
            write_prob_map(out_dir / rel, predict(image))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
