"""Stage ``bundle``: the trained pipeline as one folder that ``ich predict --bundle`` needs alone (``data/bundle``)."""

from __future__ import annotations

from pathlib import Path

from ich import layout
from ich.io.atomic import atomic_dir
from ich.params import load_params
from ich.predict.pack import pack_bundle


def main() -> None:
    with atomic_dir(layout.BUNDLE) as out:
        manifest = pack_bundle(Path("."), load_params(), out)
    size = sum(entry["size"] for entry in manifest["files"].values())
    print(
        f"{layout.BUNDLE}: deciders {', '.join(manifest['deciders'])}; segmenters "
        f"{', '.join(manifest['segmenters']) or 'none'}; {len(manifest['files']) + 1} files, {size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
