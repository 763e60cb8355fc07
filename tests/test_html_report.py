"""sim/fault/html_report.py and ``npuforge report --html``: the page's content, the CLI, and the page in a browser.

The browser test runs a small real campaign (400 SEUs on the 3x5 array), writes its
report page and loads it in headless Chromium (Debian's, driven by Playwright): no console
error, exception or failed load, every plot image decoded, and every plot's area in a
full-page screenshot is drawn. Broken pages (blank, a corrupted or blank plot, a script
error) are shown to fail the same check.
"""

import base64
import dataclasses
import io
import shutil
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

#: Debian's chromium runs Playwright's browser side (Playwright's own browser download is not
#: used). In a container: no sandbox, no GPU, /tmp instead of a small /dev/shm, nothing fetched.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--hide-scrollbars"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (Debian: apt-get install chromium; "
                                                             "make test installs it when apt-get is available)")

IMAGES_JS = """() => ({
  title: document.title,
  verdict: document.getElementById('verdict') ? document.getElementById('verdict').textContent : null,
  images: [...document.images].map(i => {
    const b = i.getBoundingClientRect();
    return {id: i.id, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
            box: [b.left + window.scrollX, b.top + window.scrollY, b.width, b.height]};
  })})"""


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module's pages, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


def render(browser, page: Path) -> tuple[dict, list[str], Image.Image]:
    """Load ``page``: what the DOM says of it, the errors (console, uncaught exceptions, failed loads)
    and a full-page screenshot at 1200 pixels wide."""
    view = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    errors = []
    view.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "assert") else None)
    view.on("pageerror", lambda error: errors.append(f"exception: {error}"))
    view.on("requestfailed", lambda request: errors.append(f"request failed: {request.url[:100]}"))
    try:
        view.goto(page.as_uri(), wait_until="load")
        dom = view.evaluate(IMAGES_JS)
        shot = view.screenshot(full_page=True, type="png")
    finally:
        view.close()
    return dom, errors, Image.open(io.BytesIO(shot)).convert("L")


def _spread(image: Image.Image, box) -> tuple[float, float]:
    """Standard deviation of the grey levels in ``box`` (x, y, w, h) and the fraction of non-white pixels."""
    x, y, w, h = (round(v) for v in box)
    pixels = np.asarray(image.crop((x, y, x + w, y + h)), dtype=float)
    return float(pixels.std()), float((pixels < 200).mean())


def problems(dom: dict, errors: list[str], shot: Image.Image) -> list[str]:
    """What is wrong with a rendered report page; ``[]`` for a good one. Every plot must be there,
    decoded, laid out at the page's width and drawn: neither blank nor a solid block."""
    found = list(errors)
    images = {image["id"]: image for image in dom["images"]}
    if sorted(images) != sorted(f"plot-{name}" for name in PLOTS):
        found.append(f"plots: got {sorted(images)}")
    for name, image in sorted(images.items()):
        x, y, w, h = image["box"]
        if not (image["complete"] and image["width"] > 300 and image["height"] > 100):
            found.append(f"{name}: not decoded ({image['width']} x {image['height']} pixels)")
        elif not (w > 800 and h > 100 and y + h <= shot.height):
            found.append(f"{name}: laid out at {image['box']}")
        else:
            spread, ink = _spread(shot, image["box"])
            if not (spread > 20 and 0.02 < ink < 0.9):
                found.append(f"{name}: blank or a solid block (spread {spread:.1f}, ink {ink:.3f})")
    return found


def _write(tmp_path: Path, name: str, page: str) -> Path:
    path = tmp_path / f"{name}.html"
    path.write_text(page)
    return path


def _replace_plot(page: str, name: str, svg: bytes) -> str:
    """``page`` with the image of plot ``name`` replaced by ``svg``."""
    old = base64.b64encode(_images(page)[name]).decode()
    assert old in page
    return page.replace(old, base64.b64encode(svg).decode())


@needs_chromium
def test_the_page_check_fails_broken_pages(tmp_path, chromium):
    """The check is not blind: a blank page, a corrupted image, a blank plot, a script error each fail
    it, while the toy campaign's own page passes."""
    meta, results = _meta(_manifest()), _results()  # the toy campaign of test_fault_report
    good = render_html(build_report(meta, results), meta, results)
    assert problems(*render(chromium, _write(tmp_path, "good", good))) == []

    blank = _write(tmp_path, "blank", "<!DOCTYPE html><html><head><title>t</title></head><body></body></html>")
    assert problems(*render(chromium, blank)) == ["plots: got []"]

    corrupted = _replace_plot(good, "rows", _images(good)["rows"][:2000])  # the SVG cut short
    assert problems(*render(chromium, _write(tmp_path, "corrupted", corrupted))) == \
        ["plot-rows: not decoded (0 x 0 pixels)"]

    white = b'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="400"><rect width="900" height="400" ' \
            b'fill="white"/></svg>'
    found = problems(*render(chromium, _write(tmp_path, "white", _replace_plot(good, "bits", white))))
    assert len(found) == 1 and found[0].startswith("plot-bits: blank or a solid block"), found

    failing = good.replace("</body>", "<script>null.x</script></body>")
    found = problems(*render(chromium, _write(tmp_path, "script", failing)))
    assert len(found) == 1 and found[0].startswith("exception: "), found


@pytest.mark.rtl
@pytest.mark.xdist_group("tpe_3x5_w8")
@needs_chromium
def test_report_page_renders_in_chromium(tmp_path, chromium):
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

    dom, errors, shot = render(chromium, page)
    assert problems(dom, errors, shot) == []
    assert dom["title"] == "Fault campaign tpe_3x5_seu on tpe_3x5_w8"
    assert dom["verdict"].startswith(f"ASIL reached: {report['asil']} (point estimates)")
    assert shot.width == 1200 and shot.height > 2500  # the whole page, not the 900-pixel viewport
    # The measure tells blank from drawn: the page's left margin beside the plots is blank.
    margin = next(image["box"] for image in dom["images"] if image["id"] == "plot-metrics")
    assert _spread(shot, (0, margin[1], 10, margin[3]))[0] < 1
