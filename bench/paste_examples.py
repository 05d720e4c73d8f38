"""A figure of real bleeds pasted into normal training slices (:mod:`ich.data.bleed_paste`).

Reads a project whose ``split`` stage has run (``data/converted`` and ``data/split``; by default
this repository, e.g. after ``python -m tools.profile profiles/ct-ich-jpg.yaml && dvc repro split``),
builds the bank of bleeds from the training slices of that split, as ``train@<model>`` does
with ``paste`` set, and pastes bleeds into normal training slices. Each row of the figure: the
donor slice with its mask outlined, the recipient as it was, the recipient with the bleed, and
the pasted mask outlined.

    python bench/paste_examples.py [--project .] [--model bleedmap_paste] [--rows 4] [--out docs/figures/bleed-paste.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ich.params import with_train_defaults  # noqa: E402
from ich.train.classify import parse_section  # noqa: E402
from tools.profile import resolve_profile  # noqa: E402


def outlined(grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``grey`` as RGB with the outline of ``mask`` in red."""
    rgb = np.dstack([grey] * 3)
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, (255, 40, 40), 1)
    return rgb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=REPO, help="a project whose split stage has run")
    parser.add_argument("--profile", type=Path, default=REPO / "profiles" / "ct-ich-jpg.yaml")
    parser.add_argument("--model", default="bleedmap_paste", help="a train section with paste > 0")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "bleed-paste.png")
    args = parser.parse_args()

    sections = with_train_defaults(resolve_profile(args.profile))["train"]
    spec, training, _ = parse_section(args.model, sections[args.model])
    if not training.paste:
        raise SystemExit(f"train.{args.model} pastes nothing (paste: 0)")
    index = pd.read_csv(args.project / "data" / "converted" / "index.csv")
    split = pd.read_csv(args.project / "data" / "split" / "split.csv")
    train = index.merge(split[["patient_id", "set", "fold"]], on="patient_id")
    train = train[train["set"] == "train"].reset_index(drop=True)
    data = training.dataset(spec, train, args.project / "data" / "converted")
    bank = data.bank
    torch.manual_seed(args.seed)
    tiles = []
    normal = np.flatnonzero(train["any"].to_numpy() == 0)
    for i in torch.randperm(len(normal)).tolist():
        if len(tiles) == args.rows:
            break
        row = int(normal[i])
        donor = bank.donors[int(torch.randint(len(bank.donors), ()))]
        recipient = data.decoded(row)
        pasted = bank.paste(recipient, donor)
        if pasted is None:
            continue
        image, mask = pasted[0].numpy()[0], pasted[1].numpy()
        before = recipient.numpy()[0]
        tiles.append(
            np.hstack(
                [
                    outlined(data.decoded(donor.row).numpy()[0], data.mask(donor.row).numpy()[0]),
                    outlined(before, np.zeros_like(mask)),
                    outlined(image, np.zeros_like(mask)),
                    outlined(image, mask),
                ]
            )
        )
    if not tiles:
        raise SystemExit("no bleed found a place inside a normal slice")
    figure = np.vstack(tiles)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"written: {args.out} ({len(tiles)} rows: donor with its mask | recipient | with the bleed | pasted mask)")


if __name__ == "__main__":
    main()
