"""The self-contained plots page of ``make review``, on a page shaped like DVC's."""

from __future__ import annotations

import base64
import re

import pytest

from tools.review import TEMPLATE, labelled_changes, metrics_table, self_contained

PAGE = """<!DOCTYPE html><html><head><title>t</title></head><body>
<div id = "plots_train_m_csv">
    <script type = "text/javascript">
        var spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "data": {"values": [{"x": 1, "y": 2}]},
                    "mark": "line", "encoding": {"x": {"field": "x"}, "y": {"field": "y"}}};
        vegaEmbed('#plots_train_m_csv', spec);
    </script>
</div>
<img src="static/workspace_plots_explain_m.png">
</body></html>"""


def test_images_and_vega_are_inlined(tmp_path):
    (tmp_path / "static").mkdir()
    png = b"\x89PNG\r\n\x1a\nnot really"
    (tmp_path / "static" / "workspace_plots_explain_m.png").write_bytes(png)
    page = self_contained(PAGE, tmp_path)
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page
    assert 'type = "text/javascript"' not in page  # DVC's call moved into the bundle
    module = page.split('<script type="module">', 1)[1].split("</script>", 1)[0]
    assert "#plots_train_m_csv" in module and len(module) > 100_000  # the libraries themselves
    assert not re.search(r"<script[^>]+src=", page)
    assert page.index('<div id = "plots_train_m_csv">') < page.index('<script type="module">')


def test_a_missing_image_or_an_external_script_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="workspace_plots_explain_m.png"):
        self_contained(PAGE, tmp_path)
    cdn = '<html><head><script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head><body></body></html>'
    with pytest.raises(ValueError, match="external script"):
        self_contained(cdn, tmp_path)


def test_the_template_leaves_out_dvcs_cdn_scripts():
    page = TEMPLATE.format(title="x")
    assert "{plot_divs}" in page and "{scripts}" not in page


def test_each_metric_change_is_labelled_against_the_base_interval():
    diff = {
        "metrics/classification/m.json": {
            "slice_roc_auc.value": {"old": 0.90, "new": 0.95, "diff": 0.05},
            "slice_roc_auc.ci_low": {"old": 0.85, "new": 0.91, "diff": 0.06},
            "slice_roc_auc.ci_high": {"old": 0.94, "new": 0.98, "diff": 0.04},
            "patient_roc_auc.value": {"old": 0.80, "new": 0.82, "diff": 0.02},
            "patient_roc_auc.ci_low": {"old": 0.70, "new": 0.70, "diff": 0},
            "patient_roc_auc.ci_high": {"old": 0.90, "new": 0.91, "diff": 0.01},
            "patient_sensitivity": {"old": 0.6, "new": 1.0, "diff": 0.4},
            "patient_specificity": {"old": 0.8, "new": 0.8, "diff": 0},
        },
        "metrics/external/site/new.json": {"n_studies": {"old": None, "new": 12}},
    }
    rows = {(r["path"].split("/")[-1], r["metric"]): r for r in labelled_changes(diff)}
    assert set(rows) == {
        ("m.json", "slice_roc_auc"),
        ("m.json", "patient_roc_auc"),
        ("m.json", "patient_sensitivity"),
        ("new.json", "n_studies"),
    }  # unchanged metrics and the bounds of a labelled value are not rows of their own
    assert rows[("m.json", "slice_roc_auc")]["label"] == "**outside** the base's 95% CI"
    assert rows[("m.json", "patient_roc_auc")]["label"] == "within the base's 95% CI"
    assert rows[("m.json", "patient_sensitivity")]["label"] == "no interval"
    assert rows[("new.json", "n_studies")]["base"] == "-"
    table = metrics_table(labelled_changes(diff))
    assert table.splitlines()[0].startswith("| Path | Metric |") and "| 0.9 | 0.95 | 0.05 |" in table
    assert metrics_table([]) == "No metric changed."
