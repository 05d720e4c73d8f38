"""Conversion speed: the pipeline's converter against a naive reference on the same DICOM set.

Generates (once, cached under ``bench/out/``) a synthetic cohort of 512x512 int16 DICOM slices
with :func:`ich.synth.write_cohort`, without masks (like RSNA), then times, in rounds so that
load from other processes hits every contender alike:

* ``ceiling``: ``pydicom.dcmread`` + ``pixel_array`` per slice, one process: no conversion can
  read faster than this;
* ``naive``: the obvious one-process script: ``dcmread``, float64 rescale and windowing with
  numpy, ``PIL`` resize and PNG save at Pillow's default settings;
* ``ours xN``: :func:`ich.data.cohort_conversion.convert_cohort` with N worker processes (the real stage:
  validation, quarantine checks, index, pseudonyms), N = 1 and the machine's core count.

It prints the median slices/second of each, ours against naive, the single-worker converter
as a fraction of the read ceiling, and a cProfile of one worker's per-slice work grouped by
step (where the time beyond reading goes) with its top functions.

    python bench/convert_speed.py [--slices 1024] [--size 256] [--rounds 3] [--workers N]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from PIL import Image

from ich.data.cohort_conversion import ConvertConfig, convert_cohort, convert_rows
from ich.data.windowing import DEFAULT_WINDOWS
from ich.synth import write_cohort

OUT = Path(__file__).resolve().parent / "out" / "convert"
SLICES_PER_STUDY = 16


def cohort(n_slices: int) -> Path:
    """The cached benchmark cohort: ``n_slices`` (rounded up to whole studies) 512x512 slices."""
    n_patients = -(-n_slices // SLICES_PER_STUDY)
    raw = OUT / f"raw-{n_patients * SLICES_PER_STUDY}"
    if not (raw / "manifest.csv").exists():
        shutil.rmtree(raw, ignore_errors=True)
        write_cohort(
            raw,
            n_patients=n_patients,
            slices_per_study=SLICES_PER_STUDY,
            matrix=512,
            seed=0,
            workers=os.cpu_count() or 1,
        )
        manifest = pd.read_csv(raw / "manifest.csv", dtype=str, keep_default_na=False)
        manifest.assign(mask_path="").to_csv(raw / "manifest.csv", index=False)  # RSNA has no masks
        shutil.rmtree(raw / "masks")
    return raw


def dicom_paths(raw: Path) -> list[Path]:
    manifest = pd.read_csv(raw / "manifest.csv", dtype=str, keep_default_na=False)
    return [raw / p for p in manifest["path"]]


def ceiling(paths: list[Path], out: Path, size: int) -> None:
    """Read and decode only."""
    for path in paths:
        _ = pydicom.dcmread(path).pixel_array


def naive(paths: list[Path], out: Path, size: int) -> None:
    """What one would write first: float64 numpy windowing, Pillow resize and PNG defaults."""
    out.mkdir(parents=True)
    for path in paths:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        channels = [np.clip((hu - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8) for lo, hi in DEFAULT_WINDOWS]
        image = Image.fromarray(np.stack(channels, axis=-1)).resize((size, size))
        image.save(out / f"{ds.SOPInstanceUID}.png")


def ours(raw: Path, workers: int) -> Callable[[list[Path], Path, int], None]:
    def run(paths: list[Path], out: Path, size: int) -> None:
        index, quarantine = convert_cohort(raw, out, ConvertConfig(size=size, workers=workers))
        assert len(index) == len(paths) and quarantine.empty, "benchmark cohort must convert cleanly"

    return run


def timed(fn: Callable[[list[Path], Path, int], None], paths: list[Path], size: int) -> float:
    """Slices per second of one run (output written to a fresh folder, removed afterwards)."""
    out = OUT / "run"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    fn(paths, out, size)
    rate = len(paths) / (time.perf_counter() - started)
    shutil.rmtree(out, ignore_errors=True)
    return rate


STEPS: dict[str, tuple[str, str | None]] = {
    "dcmread (parse)": ("pydicom/filereader.py", "dcmread"),
    "pixel_array (decode)": ("pydicom/dataset.py", "pixel_array"),
    "read_ct_slice (all)": ("ich/io/dicom.py", "read_ct_slice"),
    "windowing": ("ich/data/windowing.py", None),
    "resize": ("ich/data/resize.py", "resize_square"),
    "PNG encode": ("ich/io/slices.py", "encode_png"),
    "file write": ("ich/io/slices.py", "put"),
    "per slice total": ("ich/data/cohort_conversion.py", "convert_rows"),
}
"""Step -> (file suffix, function); ``None`` means every entry point into the file."""


def _step_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds per step from cProfile's table."""
    seconds = dict.fromkeys(STEPS, 0.0)
    for (filename, _, function), (_, _, _, cumulative, callers) in stats.stats.items():  # type: ignore[attr-defined]
        for step, (file_part, name) in STEPS.items():
            if not filename.endswith(file_part):
                continue
            if name is not None and function == name:
                seconds[step] += cumulative
            elif name is None and not any(caller[0].endswith(file_part) for caller in callers):
                seconds[step] += cumulative  # calls inside the file are already in their caller's time
    return seconds


def profile_worker(raw: Path, size: int, n: int) -> None:
    """cProfile the per-slice work of one worker in this process; print steps and top functions."""
    manifest = pd.read_csv(raw / "manifest.csv", dtype=str, keep_default_na=False)
    rows = manifest.head(n + 1).to_dict("records")
    config = ConvertConfig(size=size, workers=1)
    out = OUT / "run"
    shutil.rmtree(out, ignore_errors=True)
    convert_rows(raw, rows[:1], config, out)  # warm caches (window look-up table)
    profiler = cProfile.Profile()
    profiler.enable()
    convert_rows(raw, rows[1:], config, out)
    profiler.disable()
    shutil.rmtree(out, ignore_errors=True)
    stats = pstats.Stats(profiler)
    seconds = _step_seconds(stats)
    total = seconds["per slice total"]
    print(f"\ncProfile of one worker, {n} slices (the profiler inflates Python-heavy steps such as header parsing):")
    for step, value in seconds.items():
        print(f"  {step:<24} {value / n * 1e3:6.2f} ms/slice  {value / total:6.1%}")
    print("\ntop functions by own time:")
    stats.sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=1024)
    parser.add_argument("--size", type=int, default=256, help="output side in pixels (convert.image_size)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile-slices", type=int, default=200)
    args = parser.parse_args()

    raw = cohort(args.slices)
    paths = dicom_paths(raw)
    contenders = {
        "ceiling": ceiling,
        "naive": naive,
        "ours x1": ours(raw, 1),
        f"ours x{args.workers}": ours(raw, args.workers),
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    print(
        f"{len(paths)} slices of 512x512 int16 DICOM -> {args.size}px RGB PNG; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    for r in range(args.rounds):
        for name, fn in contenders.items():
            rates[name].append(timed(fn, paths, args.size))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.0f}/s" for n, v in rates.items()), flush=True)
    median = {name: statistics.median(v) for name, v in rates.items()}
    best = f"ours x{args.workers}"
    print(f"\nmedian slices/second over {args.rounds} rounds (load average {os.getloadavg()[0]:.1f} at end):")
    for name, value in median.items():
        print(f"  {name:<12} {value:8.1f}")
    print(f"  {best} / naive          = {median[best] / median['naive']:.2f}x")
    print(f"  ours x1 / naive          = {median['ours x1'] / median['naive']:.2f}x (per core)")
    print(f"  ours x1 / read ceiling   = {median['ours x1'] / median['ceiling']:.1%}")
    profile_worker(raw, args.size, args.profile_slices)


if __name__ == "__main__":
    main()
