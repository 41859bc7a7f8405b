"""The report page in a real browser: it renders, every plot is there, nothing overflows.

Headless Chromium (Debian's ``chromium`` package; ``make setup`` installs it when absent) loads the
page at 1280 px with a checking script appended to a copy of it — the page itself carries no
script — and prints the DOM, in which the script left its measurements.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from privsynth.models.privacy_audit import AuditResult
from privsynth.server.evaluation import auditor_view
from privsynth.server.evaluation.canary import CanaryAudit
from privsynth.server.evaluation.page import plot_ids, render
from report_fixture import audit_result, small_report

WIDTH = 1280

CHECK = """
<pre id="layout-check"></pre><script>
(function () {
  const width = window.innerWidth;
  const plots = {};
  document.querySelectorAll("svg.plot").forEach(function (svg) {
    const box = svg.getBoundingClientRect();
    plots[svg.id] = {width: box.width, height: box.height, right: box.right,
                     shapes: svg.querySelectorAll("rect, polyline, line").length};
  });
  const overflowing = [];
  document.querySelectorAll("main *").forEach(function (el) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 0.5) overflowing.push(el.tagName);
  });
  document.getElementById("layout-check").textContent = JSON.stringify({
    width: width, scrollWidth: document.documentElement.scrollWidth, plots: plots,
    overflowing: overflowing, title: document.title});
})();
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: make setup installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _audit(_stop: object) -> AuditResult:
    """A canary audit with 1,000 canaries whose scores leak a little (some guesses right)."""
    rng = random.Random(0)
    included = [rng.random() < 0.5 for _ in range(1000)]
    scores = [rng.random() + (0.3 if x else 0.0) for x in included]
    return audit_result(scores, included, claimed=4.0, delta=1e-6)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return small_report(
        model="models/page-test",
        canary_audit=CanaryAudit(
            requested=True,
            run=_audit,
            model_mechanism={"epsilon": 4.0, "noise_multiplier": 1.1, "steps": 90},
        ),
    )


def _measure(page: str, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    out = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={WIDTH},900",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', out, re.S)
    assert found, "the checking script did not run"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def test_page_is_self_contained(report: dict[str, Any]) -> None:
    page = render(report)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"""\b(src|href)\s*=""", page, re.I)
    assert "url(" not in page and "@import" not in page
    # Every plot is inline SVG; the only URL is the SVG namespace (never fetched).
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}


@pytest.mark.parametrize("view", ["owner", "auditor"])
def test_page_renders_every_plot_without_overflow_at_1280px(
    report: dict[str, Any], view: str, tmp_path: Path
) -> None:
    shown = report if view == "owner" else auditor_view(report)
    expected = plot_ids(shown)
    assert len(expected) == (8 if view == "owner" else 7)  # no label plot for auditors
    assert "plot-canary" in expected
    result = _measure(render(shown), tmp_path)
    assert result["title"] == "Quality report — models/page-test"
    assert result["width"] == WIDTH
    assert sorted(result["plots"]) == sorted(expected)
    for plot_id, box in result["plots"].items():
        assert box["width"] > 200 and box["height"] > 80, plot_id
        assert box["shapes"] >= 3, plot_id
        assert box["right"] <= WIDTH, plot_id
    assert result["scrollWidth"] <= WIDTH
    assert result["overflowing"] == []
