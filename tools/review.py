"""What a reviewer reads for a change: params diff, metrics diff and plots diff against a base revision.

``make review`` (``python -m tools.review --base main``) prints, in this order, ``dvc params diff
<base> --md`` and the metrics that changed (``dvc metrics diff <base>``), each change labelled
against the base's 95% interval where the metric carries one (``{value, ci_low, ci_high}``):
*outside* the interval is a change the evaluation can tell from resampling noise, *within* is
not. Both go to ``review/review.md`` (what CI posts as a pull-request comment), and ``dvc plots
diff <base>`` is rendered as one self-contained page, ``review/plots.html``.

DVC's own plots page loads Vega from a CDN and links its images as separate files, so it
neither opens offline nor travels as one attachment. Here the page is rendered from a template
without DVC's CDN scripts; every image is embedded as a data URI, and the Vega-Lite calls DVC
writes are bundled together with Vega, Vega-Lite and Vega-Embed themselves (vl-convert's
JavaScript bundle) into one inline module script. Opening it makes no network request.
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import re
import subprocess
import tempfile
from pathlib import Path

import vl_convert

from ich.io.atomic import write_text

VEGA_LITE_VERSION = "5.21"
"""The Vega-Lite major version DVC writes its specs for (``vega-lite/v5.json``)."""

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }}</style>
</head>
<body>
<h1>{title}</h1>
{{plot_divs}}
</body>
</html>
"""
"""DVC ``--html-template``: its ``{plot_divs}`` only; no ``{scripts}``, which would load the CDN."""

_INLINE_SCRIPT = re.compile(r'<script type\s*=\s*"text/javascript">(.*?)</script>', re.S)
_IMAGE = re.compile(r'<img src="([^"]+)"')


def dvc(*args: str, cwd: str | Path = ".") -> str:
    """Run ``dvc *args`` and return its standard output; a failure raises with DVC's message."""
    done = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed ({done.returncode}):\n{done.stderr.strip()}")
    return done.stdout


def _data_uri(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: an image the plots page links to is missing")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def self_contained(html: str, folder: Path) -> str:
    """DVC's plots page (written to ``folder``) with its images and Vega libraries inlined."""
    html = _IMAGE.sub(lambda m: f'<img src="{_data_uri(folder / m[1])}"', html)
    calls = _INLINE_SCRIPT.findall(html)
    html = _INLINE_SCRIPT.sub("", html)
    if re.search(r"<script[^>]+src=", html):
        raise ValueError("the plots page still loads an external script")
    if not calls:
        return html
    # each DVC call declares `var spec`: a block per call keeps them apart
    bundle = vl_convert.javascript_bundle("\n".join("{" + c + "}" for c in calls), vl_version=VEGA_LITE_VERSION)
    bundle = bundle.replace("</script", "<\\/script")  # a literal in the libraries must not end the tag
    return html.replace("</body>", f'<script type="module">\n{bundle}\n</script>\n</body>')


def plots_page(base: str, title: str, cwd: str | Path = ".") -> str:
    """``dvc plots diff <base>`` as one self-contained HTML page."""
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(TEMPLATE.format(title=title))
        out = Path(tmp) / "plots"
        dvc("plots", "diff", base, "--out", str(out), "--html-template", str(template), cwd=cwd)
        return self_contained((out / "index.html").read_text(), out)


def _number(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def labelled_changes(diff: dict[str, dict[str, dict]]) -> list[dict[str, str]]:
    """One row per changed metric of ``dvc metrics diff --json --all``, labelled against the base's interval.

    A ``<name>.value`` whose file also has ``<name>.ci_low`` and ``<name>.ci_high`` is *outside*
    when its new value leaves the base's interval and *within* otherwise; the bounds themselves
    are not listed (they move with their value); other metrics have *no interval*.
    """
    rows = []
    for path, metrics in sorted(diff.items()):
        for key, change in sorted(metrics.items()):
            stem, _, last = key.rpartition(".")
            if last in ("ci_low", "ci_high") and f"{stem}.value" in metrics:
                continue
            if change.get("old") == change.get("new"):
                continue
            label = "no interval"
            if last == "value":
                low, high = (metrics.get(f"{stem}.{b}", {}).get("old") for b in ("ci_low", "ci_high"))
                new = change.get("new")
                if None not in (low, high, new):
                    label = "within the base's 95% CI" if low <= new <= high else "**outside** the base's 95% CI"
            rows.append(
                {
                    "path": path,
                    "metric": stem if last == "value" else key,
                    "base": _number(change.get("old")),
                    "workspace": _number(change.get("new")),
                    "change": _number(change.get("diff")),
                    "label": label,
                }
            )
    return rows


def metrics_table(rows: list[dict[str, str]]) -> str:
    """The labelled changes as a markdown table (``Path`` first, as DVC's)."""
    if not rows:
        return "No metric changed."
    lines = ["| Path | Metric | base | workspace | change | against the base's interval |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['path']} | {r['metric']} | {r['base']} | {r['workspace']} | {r['change']} | {r['label']} |" for r in rows
    ]
    return "\n".join(lines)


def review(base: str, out: Path, cwd: str | Path = ".") -> str:
    """Write ``out/review.md`` and ``out/plots.html``; return the markdown (params, then metrics)."""
    params = dvc("params", "diff", base, "--md", cwd=cwd).strip() or "No parameter changed."
    diff = json.loads(dvc("metrics", "diff", base, "--json", "--all", cwd=cwd) or "{}")
    metrics = metrics_table(labelled_changes(diff))
    markdown = (
        f"## Parameters changed against `{base}`\n\n{params}\n\n## Metrics changed against `{base}`\n\n{metrics}\n"
    )
    write_text(out / "review.md", markdown)
    write_text(out / "plots.html", plots_page(base, f"Plots: workspace against {base}", cwd=cwd))
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--out", type=Path, default=Path("review"), help="folder for review.md and plots.html")
    args = parser.parse_args()
    print(review(args.base, args.out))
    print(f"plots: {args.out / 'plots.html'} (self-contained)")


if __name__ == "__main__":
    main()
