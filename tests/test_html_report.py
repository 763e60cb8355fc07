"""sim/fault/html_report.py and ``npuforge report --html``: the page's content, the CLI, and the page in a browser.

The browser test runs a small real campaign (400 SEUs on the 3x5 array), writes its
report page and loads it in headless Chromium through the DevTools protocol (a pipe,
no port): no console error or exception, every plot image decoded, and every plot's
area in a full-page screenshot is not blank.
"""

import base64
import dataclasses
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import BUILD_ROOT, ROOT
from PIL import Image
from test_fault_report import _manifest, _meta, _results

from npuforge import cli
from sim.fault.html_report import render_html, top_sites, vulnerable_registers, write_html
from sim.fault.report import build_report
from sim.fault.store import CampaignStore

PLOTS = ("metrics", "rows", "bits", "cycles")
TEST_CAMPAIGN = ROOT / "tests" / "configs" / "campaigns" / "tpe_3x5_seu.yaml"
CHROMIUM = next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


def _images(page: str) -> dict[str, bytes]:
    """Plot id -> the SVG bytes of its ``data:`` URI."""
    found = {}
    for chunk in page.split('<img class="plot" id="plot-')[1:]:
        name = chunk.split('"', 1)[0]
        uri = chunk.split('src="', 1)[1].split('"', 1)[0]
        assert uri.startswith("data:image/svg+xml;base64,")
        found[name] = base64.b64decode(uri.split(",", 1)[1], validate=True)
    return found


def test_page_has_the_report_and_self_contained_plots():
    """The toy campaign of test_fault_report (hand-computed there): its numbers and plots are on the page."""
    meta, results = _meta(_manifest()), _results()
    report = build_report(meta, results)
    page = render_html(report, meta, results)
    for expected in ("Fault campaign toy_seu on toy",
                     "ASIL reached: A (point estimates), A at the 95% bounds; target D missed",
                     "86.08%", "29.41%", "&gt;= 99%", "&lt; 10",  # SPFM, LFM, targets (escaped)
                     "46 stored of", "core.a", "core.b", "core.c", "parity_b", "80.00%",
                     "Every fault site is safety-related", "single_point at a site no mechanism covers"):
        assert expected in page, expected
    assert "http://" not in page and "https://" not in page and "<script" not in page  # nothing to fetch
    images = _images(page)
    assert sorted(images) == sorted(PLOTS)
    for name, svg in images.items():
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg") and len(svg) > 5000, name
        assert sum(1 for e in root.iter() if e.tag.endswith("path")) > 10, name
    assert render_html(report, meta, results) == page  # deterministic

    # Sites by sdc + hang: core.a.reg 4 of 10, core.c.mem 2 of 16, core.b.reg 2 of 20.
    sites = {site["path"]: site for site in meta["manifest"]["fault_sites"]}
    ranked = top_sites(report, results, sites)
    assert [(r["site"], r["vulnerable"], r["injections"]) for r in ranked] == \
        [("core.a.reg", 4, 10), ("core.c.mem", 2, 16), ("core.b.reg", 2, 20)]
    assert (ranked[0]["max_differing"], ranked[0]["max_abs_diff"]) == (2, 7)
    assert vulnerable_registers(results, sites) == ["core.a.reg", "core.b.reg"]  # memories are not registers
    assert 'class="verdict missed"' in page


def test_page_of_a_campaign_where_every_fault_is_masked():
    """No sdc or hang: PMHF 0 (drawn at the edge of its log axis), ASIL D at the point only, nothing ranked."""
    meta = _meta(_manifest(mechanisms=None))
    results = _results({"core.a.reg": (10, 0, 0, 0, 0), "core.b.reg": (5, 0, 0, 0, 0), "core.c.mem": (4, 0, 0, 0, 0)})
    report = build_report(meta, results)
    assert report["pmhf_fit"] == 0 and report["asil"] == "D" and not report["meets_target_conservative"]
    page = render_html(report, meta, results)
    assert 'class="verdict marginal"' in page and "target D met (not at the bounds)" in page
    assert "No injection ended in sdc or hang." in page and "No register injection ended in sdc or hang" in page
    assert sorted(_images(page)) == sorted(PLOTS)


def test_cli_writes_the_page_whole(tmp_path, capsys):
    db = tmp_path / "toy.db"
    with CampaignStore.open(db, create=_meta(_manifest())) as store:
        store.add(_results())
    out = tmp_path / "out" / "report.html"
    assert cli.main(["report", str(db), "--html", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary left
    assert out.read_text().startswith("<!DOCTYPE html>") and (out.stat().st_mode & 0o644) == 0o644

    def fails(*args) -> str:
        assert cli.main(["report", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        return err

    assert f"--html: got '{tmp_path}', which is a directory" in fails(db, "--html", tmp_path)
    blocked = tmp_path / "file.txt"
    blocked.write_text("a file, not a directory")
    assert "--html: got" in fails(db, "--html", blocked / "r.html")
    assert "no such campaign database" in fails(tmp_path / "missing.db", "--html", out)

    # A failed write leaves the old page, not a half-written one.
    page = out.read_text()
    with pytest.raises(TypeError):
        write_html(out, None)
    assert out.read_text() == page and [p.name for p in out.parent.iterdir()] == ["report.html"]


# ----------------------------------------------------------------------- the page in Chromium


def _above_9(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class DevTools:
    """Headless Chromium driven over ``--remote-debugging-pipe``: JSON messages ended by NUL on fds 3 and 4."""

    def __init__(self, binary: str, profile: Path, timeout: float = 60.0):
        self.timeout, self.events, self._next, self._buffer = timeout, [], 0, b""
        to_chrome, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome = os.pipe()
        # The child's ends move above 9 first, so that redirecting them to 3 and 4 cannot clobber each other.
        to_chrome, from_chrome = (_above_9(fd) for fd in (to_chrome, from_chrome))
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 "--remote-debugging-pipe", "--no-first-run", f"--user-data-dir={profile}", "about:blank"]
        # The browser reads commands on fd 3 and writes replies on fd 4 (bash: dash takes one-digit fds only).
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_chrome} 4>&{from_chrome}', binary, *flags],
            pass_fds=(to_chrome, from_chrome), stdout=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no message from Chromium in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit code {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


IMAGES_JS = """JSON.stringify({
  title: document.title,
  verdict: document.getElementById('verdict').textContent,
  images: [...document.images].map(i => {
    const b = i.getBoundingClientRect();
    return {id: i.id, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
            box: [b.left + window.scrollX, b.top + window.scrollY, b.width, b.height]};
  })})"""


def render(page: Path, profile: Path) -> tuple[dict, list[str], Image.Image]:
    """Load ``page`` in Chromium: what the DOM says of it, the console errors, a full-page screenshot."""
    chrome = DevTools(CHROMIUM, profile)
    try:
        target = chrome.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            chrome.send(f"{domain}.enable", session=session)
        chrome.send("Emulation.setDeviceMetricsOverride",
                    {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
        chrome.send("Page.navigate", {"url": page.as_uri()}, session)
        chrome.wait_for("Page.loadEventFired")
        dom = json.loads(chrome.send("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True},
                                     session)["result"]["value"])
        size = chrome.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = chrome.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}, session)
        errors = [f"{event['method']}: {json.dumps(event['params'])[:300]}" for event in chrome.events
                  if event.get("method") == "Runtime.exceptionThrown"
                  or (event.get("method") == "Runtime.consoleAPICalled"
                      and event["params"]["type"] in ("error", "assert"))
                  or (event.get("method") == "Log.entryAdded" and event["params"]["entry"]["level"] == "error")]
    finally:
        chrome.close()
    return dom, errors, Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("L")


def _spread(image: Image.Image, box) -> tuple[float, float]:
    """Standard deviation of the grey levels in ``box`` (x, y, w, h) and the fraction of non-white pixels."""
    x, y, w, h = (round(v) for v in box)
    pixels = np.asarray(image.crop((x, y, x + w, y + h)), dtype=float)
    return float(pixels.std()), float((pixels < 200).mean())


@pytest.mark.rtl
@pytest.mark.xdist_group("tpe_3x5_w8")
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (Debian: apt-get install chromium; "
                                             "make test installs it when apt-get is available)")
def test_report_page_renders_in_chromium(tmp_path):
    from npuforge.registry import kind_workloads
    from sim.fault import campaign as campaigns
    from sim.fault.config import load_campaign

    prepared = campaigns.prepare(load_campaign(TEST_CAMPAIGN, workloads=kind_workloads), build_root=BUILD_ROOT)
    prepared.sample = dataclasses.replace(prepared.sample, faults=prepared.sample.faults[:400])
    db = tmp_path / "c.sqlite"
    assert campaigns.run(prepared, db=db, workers=2).ran == 400
    page = tmp_path / "report.html"
    assert cli.main(["report", str(db), "--html", str(page)]) == 0
    with CampaignStore.open(db) as store:
        report = build_report(store.meta(), store.results())

    dom, errors, shot = render(page, tmp_path / "profile")
    assert errors == [], errors
    assert dom["title"] == "Fault campaign tpe_3x5_seu on tpe_3x5_w8"
    assert dom["verdict"].startswith(f"ASIL reached: {report['asil']} (point estimates)")
    images = {image["id"]: image for image in dom["images"]}
    assert sorted(images) == sorted(f"plot-{name}" for name in PLOTS)
    assert shot.width == 1200 and shot.height > 2500  # the whole page, not the 900-pixel viewport
    for name, image in images.items():
        assert image["complete"] and image["width"] > 300 and image["height"] > 100, image
        x, y, w, h = image["box"]
        assert w > 800 and h > 100 and y + h <= shot.height, image  # laid out at the page's width
        spread, ink = _spread(shot, image["box"])
        assert spread > 20 and 0.02 < ink < 0.9, (name, spread, ink)  # drawn: neither blank nor a solid block
    # The measure tells blank from drawn: the page's left margin beside the plots is blank.
    margin = images["plot-metrics"]["box"]
    assert _spread(shot, (0, margin[1], 10, margin[3]))[0] < 1
