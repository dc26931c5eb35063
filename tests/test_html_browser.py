"""The compile report in a real browser (slow tier): headless Chromium (the Debian package,
``/usr/bin/chromium``, installed by .ci/run) opens the page of a CNN (a recurrent SNN for the
xylo class) compiled for each shipped chip class, runs its scripts and takes a screenshot.  Checks: the rendered DOM has one core
element per core; the page made no network request (no external reference in the HTML, and
none in Chromium's net log, with every host name unresolvable); the console shows nothing
(Chromium prints every console message and uncaught error as ``INFO:CONSOLE``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nmc.cli import main

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
MODEL = str(ROOT / "examples" / "mnist_cnn.onnx")
MODEL_OF_CLASS = {"xylo": str(ROOT / "examples" / "kws_rnn.nmd")}  # a recurrent SNN: a Xylo fabric runs no CNN


def chromium(url: str, tmp: Path, *extra: str) -> tuple[str, str, list[str]]:
    """(DOM after scripts ran, stderr, URLs the page itself requested)."""
    netlog = tmp / f"net-{len(list(tmp.glob('net-*')))}.json"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={netlog}", "--virtual-time-budget=3000",
           *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr, page_requests(netlog)


def page_requests(netlog: Path) -> list[str]:
    """URLs of requests the page made: Chromium's own (updates, accounts) have the initiator
    'not an origin'; a file:// page's have 'null'."""
    log = json.loads(netlog.read_text())
    kinds = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls, initiator = {}, {}
    for e in log["events"]:
        params, source = e.get("params", {}), e["source"]["id"]
        if "url" in params:
            urls.setdefault(source, params["url"])
        if kinds.get(e["type"]) == "URL_REQUEST_START_JOB" and "initiator" in params:
            initiator[source] = params["initiator"]
    return sorted({u for s, u in urls.items() if initiator.get(s) not in (None, "not an origin")
                   and not u.startswith("file:")})


# a class's first shipped chip, unless it cannot hold the test's model (multicast-tiny: 18 cores)
HOLDS_THE_MODEL = {"multicast": "spinnaker1-board"}


def shipped_chip_per_class() -> list[str]:
    from nmc.targets.chip import load_chip

    first = dict(HOLDS_THE_MODEL)
    for path in sorted((ROOT / "targets" / "chips").glob("*.toml")):
        chip = load_chip(str(path))
        first.setdefault(chip.chip_class, chip.name)
    return [first[k] for k in sorted(first)]


@pytest.fixture(scope="module")
def browser_tmp(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)")
    return tmp_path_factory.mktemp("browser")


def test_the_net_log_check_sees_a_page_request(browser_tmp):
    page = browser_tmp / "fetches.html"
    page.write_text('<html><body><img src="http://nmc-test.example.com/x.png"></body></html>')
    _, _, requests = chromium(page.as_uri(), browser_tmp, "--dump-dom")
    assert requests == ["http://nmc-test.example.com/x.png"]


@pytest.mark.parametrize("chip", shipped_chip_per_class())
def test_report_renders_in_chromium(browser_tmp, chip, capsys):
    rng = np.random.default_rng(0)
    calib = browser_tmp / "calib.npz"
    np.savez(calib, x=rng.random((24, 1, 28, 28), dtype=np.float32))
    out, rep, page = browser_tmp / f"{chip}.nmb", browser_tmp / f"{chip}.json", browser_tmp / f"{chip}.html"
    from nmc.targets.chip import load_chip

    chip_class = load_chip(chip).chip_class
    model = MODEL_OF_CLASS.get(chip_class)
    given = [model] if model else [MODEL, "--calib", str(calib)]
    assert main(["compile", *given, "--target", chip, "-o", str(out), "--report", str(rep), "--html", str(page)]) == 0
    capsys.readouterr()
    report = json.loads(rep.read_text())
    html = page.read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)""", html, re.I)

    dom, log, requests = chromium(page.as_uri(), browser_tmp, "--dump-dom")
    cores = sorted(int(c) for c in re.findall(r'<rect data-core="(\d+)"', dom))
    from nmc.targets.classes import ChipClass, chip_class as class_named

    # a class without a board view (xylo: one fabric; multicast: its board is drawn by inspect --plot only)
    boardless = type(class_named(chip_class)).board_view is ChipClass.board_view
    assert cores == ([] if boardless else list(range(report["cores"]))), "one SVG element per core"
    assert requests == [], f"the page requested {requests}"
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    shot = browser_tmp / f"{chip}.png"
    chromium(page.as_uri(), browser_tmp, f"--screenshot={shot}", "--window-size=1400,1800")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000, "a screenshot with something drawn"
