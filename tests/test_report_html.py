"""The HTML compile report (nmc/report_html.py): a pure function of the --report JSON, one core
element per core, escaped names, no external references; inspect and eval pages."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from nmc.cli import main
from nmc.report_html import advice, render, render_eval

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODEL = str(EXAMPLES / "digits_mlp.nmir")
DATA = str(EXAMPLES / "digits_test.npz")
EXTERNAL = re.compile(r"""(?:src|href|xlink:href|action)\s*=\s*["']?\s*(?:https?:|//)|url\(\s*["']?\s*(?:https?:|//)|@import""",
                      re.I)


def no_external_references(html: str) -> None:
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "http://" not in html and "https://" not in html


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    with np.load(DATA) as d:
        np.savez(tmp / "calib.npz", x=d["x"][:40])
    out, rep, page = tmp / "m.nmb", tmp / "r.json", tmp / "r.html"
    assert main(["compile", MODEL, "--target", "mesh-tiny", "--calib", str(tmp / "calib.npz"), "--timesteps", "8",
                 "-o", str(out), "--report", str(rep), "--html", str(page)]) == 0
    return out, json.loads(rep.read_text()), page.read_text(), tmp


def test_page_is_the_json_rendered(compiled):
    _, report, html, _ = compiled
    assert html == render(report) == render(copy.deepcopy(report)), "a pure, deterministic function of the JSON"
    no_external_references(html)
    assert html.startswith("<!DOCTYPE html>") and "<script>" in html and "<svg" in html


def test_one_core_element_per_core_and_summary_numbers(compiled):
    out, report, html, _ = compiled
    cores = re.findall(r'data-core="(\d+)"', html)
    assert sorted(int(c) for c in cores) == list(range(report["cores"]))
    summary = html[html.index('<div class="cards">'):html.index("<h2>")]
    assert f">{report['cores']}<" in summary and f"lower bound {report['cores_lower_bound']}" in summary
    assert f">{report['chips']}<" in summary and f"{report['latency_steps']} steps" in summary
    assert report["energy_per_inference_j"] > 0
    # the per-layer table: one row per population, conversion loss measured on the calibration inputs
    names = [r["name"] for r in report["layers"]]
    assert names == ["relu1", "fc2"] and report["loss_samples"] == 32
    assert sum(r["neurons"] for r in report["layers"]) == report["neurons"]
    assert sum(r["synapses"] for r in report["layers"]) == report["synapses"]
    assert all(r["loss"]["relative_error"] is not None for r in report["layers"])
    assert all(r["input_axons_limit"] > 0 and r["max_core_axons"] <= r["input_axons_limit"] for r in report["layers"])
    for name, seconds in report["passes"].items():
        assert f"<code>{name}</code>" in html and f"{seconds:.3f} s" in html


def test_the_report_does_not_change_the_image(compiled, tmp_path):
    out, _, _, tmp = compiled
    plain = tmp_path / "plain.nmb"
    assert main(["compile", MODEL, "--target", "mesh-tiny", "--calib", str(tmp / "calib.npz"), "--timesteps", "8",
                 "-o", str(plain)]) == 0
    assert plain.read_bytes() == out.read_bytes()


def test_inspect_html_shows_the_same_board_and_says_what_is_not_recorded(compiled, capsys):
    out, report, html, tmp = compiled
    page = tmp / "inspect.html"
    assert main(["inspect", str(out), "--html", str(page)]) == 0
    capsys.readouterr()
    text = page.read_text()
    no_external_references(text)
    assert re.findall(r'data-core="\d+"', text) == re.findall(r'data-core="\d+"', html)
    assert "not recorded" in text
    assert text.count("<tr") == html.count("<tr")  # same tables: layers, links, passes (timings aside)


def test_names_are_escaped():
    report = {"target": "<b>chip</b>", "target_class": None, "cores": None, "pipeline": "a{x=<y>}",
              "passes": {"<img src=x>": 0.5}, "statistics": {}, "remarks": ["quantize: %<script>: saturated parameters 3"],
              "layers": [{"name": "</td><script>alert(1)</script>", "neurons": 3, "loss": None}],
              "board": None, "timesteps": 4, "latency_steps": 5, "source_sha256": "\"'&"}
    html = render(report)
    assert "<script>alert" not in html and "<img src=x>" not in html and "<b>chip" not in html
    assert "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x&gt;" in html
    assert html.count("<script>") == 1  # the page's own
    assert any("saturate" in a["text"] for a in advice(report))


def test_cpu_image_page(tmp_path, compiled):
    _, _, _, tmp = compiled
    out, page = tmp_path / "c.nmb", tmp_path / "c.html"
    assert main(["compile", MODEL, "--target", "cpu", "--calib", str(tmp / "calib.npz"), "-o", str(out),
                 "--html", str(page)]) == 0
    html = page.read_text()
    no_external_references(html)
    assert "data-core=" not in html and "no mapping onto cores" in html and "%relu1" in html


def test_eval_page():
    report = {"ann_accuracy": 0.95, "samples": 10, "backend": "cpu", "encoding": "rate", "thresholds": "calibrated",
              "convert_options": "maxpool=tree", "notes": ["a <note>"],
              "snn": [{"timesteps": t, "latency_steps": t + 1, "rate_code_accuracy": 0.9, "rate_code_agreement": 0.9,
                       "float_accuracy": 0.8 + t / 100, "float_agreement": 0.9, "int_accuracy": 0.8,
                       "int_agreement": 0.85, "spikes_per_sample": 100.0, "synaptic_ops_per_sample": 1e4,
                       "int_layers": [{"layer": "<l>", "neurons": 3, "correlation": 0.9, "relative_error": 0.1,
                                       "clipped": 0.0, "rate": 0.2, "quant_error": 0.01, "saturated": 0}]}
                      for t in (4, 8, 16)]}
    html = render_eval(report)
    no_external_references(html)
    assert html == render_eval(copy.deepcopy(report))
    assert html.count("<polyline") == 3 and html.count("<circle") == 9
    assert "&lt;l&gt;" in html and "a &lt;note&gt;" in html and "Per-layer losses" in html
