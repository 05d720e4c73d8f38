"""Which settings make a stage's output bytes independent of the CPU it runs on? An experiment.

Another CPU differs from this one in the instruction set its math libraries pick (oneDNN for
convolutions, MKL for matrix products, OpenBLAS for NumPy) and often in its number of cores
(PyTorch's intra-op threads split reductions differently). Both can be imitated on one machine:
``ONEDNN_MAX_CPU_ISA`` caps oneDNN at an older instruction set, ``MKL_CBWR`` fixes MKL's code
path, ``OPENBLAS_CORETYPE`` fixes OpenBLAS's kernels, and ``OMP_NUM_THREADS`` sets the threads.

For each candidate setting, a stage runs under every instruction-set cap and thread count in
a throw-away copy of the project (its converted data linked in), and the md5 of its outputs is
compared: a setting works when every cell of its row has the same md5. Prints the table (md5
prefixes, seconds at 2 threads) and writes it to ``bench/out/determinism-<stage>.json``.

    python bench/determinism.py [--stage "train wa2d_cnn3"] [--threads 1,2,4]

Needs a project whose ``data/converted`` and ``data/split`` exist (``dvc repro split``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ich.reproducible import PINNED_ENVIRONMENT  # noqa: E402
from tools.project import copy_project  # noqa: E402

CPUS: dict[str, dict[str, str]] = {
    "this CPU": {},
    "AVX-512": {
        "ATEN_CPU_CAPABILITY": "avx512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_CBWR": "AVX512",
        "OPENBLAS_CORETYPE": "SkylakeX",
    },
    "AVX2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_CBWR": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
    },
}
"""Other CPUs, imitated by capping each library's instruction set: an AVX-512 server, an AVX2 desktop."""
SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "ATen + oneDNN AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "ATen + oneDNN + MKL AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
    "pinned (ich.reproducible)": dict(PINNED_ENVIRONMENT),
}
"""Candidate settings, each run under every imitated CPU (a setting's own values win: another CPU
can only differ from it in the libraries it leaves free) and every thread count."""
OUTPUTS = {"train": "data/models/{arg}", "evaluate": "data/evaluation", "ensemble": "data/ensemble"}


def _md5(folder: Path) -> str:
    digest = hashlib.md5()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _work_copy(workdir: Path, out: str) -> None:
    """The code, params and the checkout's data, linked file by file except the stage's output
    (which the stage writes in the copy, never through a link into the checkout)."""
    copy_project(REPO, workdir)
    shutil.copy(REPO / "params.yaml", workdir / "params.yaml")
    for name in (
        "raw",
        "converted",
        "split",
        "ensemble",
        *(f"models/{m.name}" for m in (REPO / "data/models").iterdir()),
    ):
        if (REPO / "data" / name).exists() and f"data/{name}" != out:
            (workdir / "data" / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / "data" / name).symlink_to(REPO / "data" / name)


def run_stage(stage: list[str], env: dict[str, str], threads: int) -> tuple[str, float]:
    """md5 of the stage's outputs and its seconds, run in a fresh work copy under ``env``."""
    with tempfile.TemporaryDirectory(prefix="ich-determinism-") as tmp:
        workdir = Path(tmp)
        out = OUTPUTS[stage[0]].format(arg=stage[-1])
        _work_copy(workdir, out)
        full = {k: v for k, v in os.environ.items() if k not in PINNED_ENVIRONMENT}
        full.update(env, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(workdir), ICH_ENVIRONMENT="as-given")
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, f"stages/{stage[0]}.py", *stage[1:]], cwd=workdir, env=full, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(stage)} under {env} failed:\n{done.stderr[-3000:]}")
        return _md5(workdir / out), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="train wa2d_cnn3", help='a stage and its argument, e.g. "evaluate"')
    parser.add_argument("--threads", default="1,2,4")
    args = parser.parse_args()
    stage = args.stage.split()
    threads = [int(t) for t in args.threads.split(",")]
    results = {}
    for name, setting in SETTINGS.items():
        row = {}
        for cpu, caps in CPUS.items():
            for n in threads:
                md5, seconds = run_stage(stage, {**caps, **setting}, n)
                row[f"{cpu}/{n}"] = {"md5": md5, "seconds": round(seconds, 1)}
                print(f"{name:28s} {cpu:9s} {n} threads  {md5[:8]}  {seconds:5.1f} s", flush=True)
        results[name] = {"env": setting, "runs": row, "identical": len({r["md5"] for r in row.values()}) == 1}
    print()
    print(f"{args.stage}: output md5 per imitated CPU / threads")
    cells = list(next(iter(results.values()))["runs"])
    print(f"| setting | {' | '.join(cells)} | identical | seconds (this CPU, 2 threads) |")
    print("|---|" + "---|" * (len(cells) + 2))
    for name, result in results.items():
        runs = result["runs"]
        at_two = runs.get("this CPU/2", next(iter(runs.values())))["seconds"]
        md5s = " | ".join(runs[c]["md5"][:8] for c in cells)
        print(f"| {name} | {md5s} | {'yes' if result['identical'] else 'no'} | {at_two} |")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"determinism-{stage[0]}.json").write_text(
        json.dumps({"stage": args.stage, "results": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
