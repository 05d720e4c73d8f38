"""How DVC copes with a converted cohort of many small files: sharded files against packed shards.

RSNA 2019 converts to 752,803 slice PNGs. ``convert``'s output is one DVC-tracked folder, and
every ``train@<model>`` stage depends on it, so each ``dvc repro``/``dvc status`` hashes or at
least stats it once per stage. This builds a throw-away git + DVC repository per layout with
the real pipeline's shape (a producer stage writing ``data/converted``, ``--consumers`` stages
depending on it, like the ``train@`` stages) and times the DVC operations on ``--files`` tiny
PNGs laid out as

* ``sharded``: one file per slice in 256 folders (``images/<2 hex>/<id>.png``, as ``convert``
  writes them);
* ``packed``: the same PNG bytes in ``--shards`` uncompressed zip archives.

Timed: ``dvc repro`` (DVC's own time: the producer's writing time is measured inside it and
subtracted), ``dvc status`` with nothing changed (twice: the second hits DVC's state database),
``dvc status`` after one slice changed, and ``dvc commit`` of that change (rehashing).

    python bench/dvc_scale.py [--files 100000] [--shards 64] [--consumers 3] [--layouts sharded,packed]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRODUCER = """
import hashlib, json, sys, time, zipfile
from pathlib import Path

import cv2
import numpy as np

layout, n, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
started = time.perf_counter()
out = Path("data/converted")
rng = np.random.default_rng(0)
blobs = (cv2.imencode(".png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))[1].tobytes() for _ in range(n))
names = [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(n)]
if layout == "sharded":
    for name, blob in zip(names, blobs):
        path = out / "images" / name[:2] / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
else:
    (out / "images").mkdir(parents=True)
    archives = [zipfile.ZipFile(out / "images" / f"shard-{k:04d}.zip", "w", zipfile.ZIP_STORED) for k in range(shards)]
    for name, blob in zip(names, blobs):
        archives[int(name[:8], 16) % shards].writestr(f"{name}.png", blob)
    for archive in archives:
        archive.close()
(out / "index.csv").write_text("slice_id\\n" + "\\n".join(names) + "\\n")
Path("producer_seconds.json").write_text(json.dumps(time.perf_counter() - started))
"""

CONSUMER = """
import sys
from pathlib import Path
Path(f"data/used_{sys.argv[1]}.txt").write_text(str(sum(1 for _ in open("data/converted/index.csv"))))
"""


def _run(args: list[str], cwd: Path) -> float:
    """Seconds ``args`` took in ``cwd`` (raises with its output if it fails)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def make_repo(root: Path, layout: str, files: int, shards: int, consumers: int) -> None:
    root.mkdir(parents=True)
    (root / "producer.py").write_text(PRODUCER)
    (root / "consumer.py").write_text(CONSUMER)
    stages = {
        "convert": {
            "cmd": f"python producer.py {layout} {files} {shards}",
            "deps": ["producer.py"],
            "outs": ["data/converted"],
        },
        "train": {
            "foreach": list(range(consumers)),
            "do": {
                "cmd": "python consumer.py ${item}",
                "deps": ["consumer.py", "data/converted"],
                "outs": ["data/used_${item}.txt"],
            },
        },
    }
    (root / "dvc.yaml").write_text(json.dumps({"stages": stages}, indent=1))
    (root / ".gitignore").write_text("/data/\n/producer_seconds.json\n")
    for args in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"],
    ):
        _run(args, root)


def change_one_slice(root: Path) -> None:
    """Append a byte to one file (packed: one slice's change rewrites its whole shard)."""
    first = min((root / "data" / "converted" / "images").rglob("*.*"))
    with first.open("ab") as f:
        f.write(b"\0")


def _fmt(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def measure(root: Path, layout: str, files: int, shards: int, consumers: int) -> dict[str, float | int]:
    make_repo(root, layout, files, shards, consumers)
    figures: dict[str, float | int] = {}
    repro = _run(["dvc", "repro"], root)
    figures["dvc repro (DVC's share)"] = repro - json.loads((root / "producer_seconds.json").read_text())
    figures["dvc status, unchanged (1st)"] = _run(["dvc", "status"], root)
    figures["dvc status, unchanged (2nd)"] = _run(["dvc", "status"], root)
    change_one_slice(root)
    figures["dvc status, one slice changed"] = _run(["dvc", "status"], root)
    figures["dvc commit of that change"] = _run(["dvc", "commit", "-f", "convert"], root)
    figures["files and folders in workspace + cache"] = sum(
        1 for folder in (root / "data", root / ".dvc" / "cache") for _ in folder.rglob("*")
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=64, help="zip archives in the packed layout")
    parser.add_argument("--consumers", type=int, default=3, help="stages depending on the output (train@ models)")
    parser.add_argument("--layouts", default="sharded,packed")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed at the end")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ich-dvc-scale-"))
    layouts = args.layouts.split(",")
    print(
        f"{args.files:,} tiny PNGs, {args.consumers} consuming stages, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; seconds unless stated"
    )
    results = {}
    try:
        for layout in layouts:
            results[layout] = measure(workdir / layout, layout, args.files, args.shards, args.consumers)
            print(f"{layout}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in results[layout].items()), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n| operation | " + " | ".join(layouts) + " |\n|---|" + "---|" * len(layouts))
    for key in results[layouts[0]]:
        print(f"| {key} | " + " | ".join(_fmt(results[layout][key]) for layout in layouts) + " |")


if __name__ == "__main__":
    main()
