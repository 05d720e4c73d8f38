"""Stage ``download``: materialise the raw cohort selected by ``params.download`` into data/raw."""

from __future__ import annotations

from ich import layout
from ich.io.atomic import atomic_dir
from ich.params import load_params
from ich.sources import materialise, source_options


def main() -> None:
    source, options = source_options(load_params()["download"])
    with atomic_dir(layout.RAW) as tmp:
        materialise(source, options, tmp)


if __name__ == "__main__":
    main()
