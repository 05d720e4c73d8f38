"""Stage ``download``: materialise the raw cohort selected by ``params.download`` into data/raw."""

from __future__ import annotations

from ich.io.atomic import atomic_dir
from ich.params import load_params
from ich.sources import materialise

OUT = "data/raw"


def main() -> None:
    params = load_params()["download"]
    source = params["source"]
    with atomic_dir(OUT) as tmp:
        materialise(source, params.get(source.replace("-", "_"), {}) | {"path": params.get("path", "")}, tmp)


if __name__ == "__main__":
    main()
