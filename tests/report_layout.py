"""Layout of a rendered report in headless Chromium: page height and where given elements sit.

The report itself has no script (it must stay self-contained and inert). To measure it, a copy
is made with one small script appended that writes the measurements into the DOM, and Chromium's
``--dump-dom`` prints that DOM after the page has laid out at the given window width. Used by
tests/test_report_layout.py and benchmarks/bench_report.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_PROBE = """<script>
(function () {
  var out = {height: Math.max(document.body.scrollHeight, document.documentElement.scrollHeight),
             width: document.documentElement.clientWidth, elements: {}, overflowing_images: 0};
  IDS.forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { var r = el.getBoundingClientRect();
              out.elements[id] = {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY,
                                  height: r.height, visible: r.height > 0}; }
  });
  out.shrunk_images = 0;
  document.querySelectorAll("img").forEach(function (img) {
    var r = img.getBoundingClientRect();
    if (r.right > out.width + 1) { out.overflowing_images += 1; }
    // drawn smaller than 90% of its pixel size: its lettering is smaller than designed
    if (r.width > 0 && r.width < 0.9 * img.naturalWidth) { out.shrunk_images += 1; }
  });
  var pre = document.createElement("pre");
  pre.id = "layout-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium_args(profile: str) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--hide-scrollbars"]


def measure(html_path: Path, ids: list[str], *, width: int = 1400, height: int = 900,
            browser: str | None = None, timeout: float = 120) -> dict:
    """Page height, the top/bottom (px from the page top) of each element id, and the number of
    images wider than the page (``overflowing_images``) or drawn below 90% of their pixel size
    (``shrunk_images``: smaller lettering than designed), rendered at ``width`` x ``height`` CSS
    pixels. Raises RuntimeError when Chromium fails."""
    browser = browser or find_chromium()
    if browser is None:
        raise RuntimeError("headless Chromium not found")
    html = Path(html_path).read_text()
    probe = _PROBE.replace("IDS", json.dumps(list(ids)))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "probe.html"
        copy.write_text(html.replace("</body>", probe + "</body>", 1))
        profile = Path(tmp) / "profile"
        run = subprocess.run([browser, *chromium_args(str(profile)), f"--window-size={width},{height}",
                              "--virtual-time-budget=5000", "--dump-dom", copy.as_uri()],
                             capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, "HOME": tmp})
    m = re.search(r'<pre id="layout-probe">(.*?)</pre>', run.stdout, re.S)
    if run.returncode != 0 or not m:
        raise RuntimeError(f"Chromium did not render {html_path}: {run.stderr[-1500:]}")
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
