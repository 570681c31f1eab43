"""The README's screenshot of `crossdistill view` (docs/figures/view.png).

Segments one PartNet-Mobility safe with the default settings, names its parts offline at scale 1,
serves it, and in headless Chromium (Debian's, through the `playwright` package) moves the slider
to 0.75 (a scale that was not segmented), clicks the handle and shift-clicks the right side (fixed pixel
positions of this object in a 1280 x 760 window), then takes a screenshot.

    python bench/view_figure.py                   # writes docs/figures/view.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "bench" / "_cache" / "view_figure"
SOURCE = "partnet_mobility_dev/Safe/102278.glb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--out", default=str(REPO / "docs" / "figures" / "view.png"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from playwright.sync_api import sync_playwright

    from crossdistill.view.server import ViewerServer
    from crossdistill.view.session import ViewerSession

    src = Path(args.data) / SOURCE
    obj = CACHE / src.stem
    cli = [sys.executable, "-m", "crossdistill.cli.main"]
    if not (obj / "segment.json").is_file():
        subprocess.run([*cli, "segment", str(src), "-o", str(CACHE), "--quiet"], check=True)
    if not (obj / "scale_1.0" / "names.json").is_file():
        subprocess.run([*cli, "name", str(obj), "--offline", "--scale", "1", "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
    server = ViewerServer(ViewerSession.open(obj, export_dir=CACHE / "exports"), port=0, precompute=False).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(server.url)
            page.wait_for_function("document.body.dataset.status === 'ready'", timeout=300_000)
            page.evaluate("() => { const el = document.getElementById('scale'); el.value = 0.75; "
                          "el.dispatchEvent(new Event('input')); }")
            page.wait_for_function("document.body.dataset.scale === '0.750000' && "
                                   "document.body.dataset.status === 'ready'", timeout=300_000)
            page.mouse.click(468, 470)  # the handle
            page.wait_for_function("viewer.state.lastSelect !== null", timeout=60_000)
            page.keyboard.down("Shift")
            page.mouse.click(610, 400)  # the right side
            page.keyboard.up("Shift")
            page.wait_for_timeout(1500)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.stop()
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
