"""The viewer page in a real headless browser: load, move the slider, click parts, export.

Needs the Python ``playwright`` package (it drives the browser; its own browser download is not
used) and a Chromium on the machine (Debian: ``apt-get install chromium``; or set
``CROSSDISTILL_CHROMIUM`` to a Chromium / Chrome binary). Without either the test skips and says
which is missing; ``test_view_server.py`` covers the same server logic without a browser.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main

SLIDER_NEXT = 1.05  # the slider's step after 1.0: a scale that was not segmented


def _chromium() -> str | None:
    env = os.environ.get("CROSSDISTILL_CHROMIUM")
    if env:
        return env if os.path.isfile(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "browser test needs the playwright package (pip install playwright; it drives the system Chromium)"
    if _chromium() is None:
        return "browser test needs Chromium: apt-get install chromium, or set CROSSDISTILL_CHROMIUM"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture(scope="module")
def page(server):
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        pg = browser.new_page(viewport={"width": 1000, "height": 700}, accept_downloads=True)
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(server.url)
        pg.wait_for_function("document.body.dataset.status === 'ready' || document.body.dataset.status === 'error'",
                             timeout=60_000)
        assert pg.evaluate("document.body.dataset.status") == "ready", pg.text_content("#message")
        yield pg
        assert not errors, errors
        browser.close()


def _wait_scale(pg, scale: float) -> None:
    pg.wait_for_function(f"document.body.dataset.scale === '{scale:.6f}' && document.body.dataset.status === 'ready'",
                         timeout=60_000)


def test_slider_click_shift_click_and_export_in_a_real_browser(page, server, viewed, tmp_path):
    obj, mesh, gt, src = viewed
    pg = page
    _wait_scale(pg, 1.0)
    # the page shows the segmented scale 1 as segment wrote it
    shown = np.array(pg.evaluate("Array.from(viewer.state.labels)"))
    assert (shown == np.load(obj / "scale_1.0" / "labels.npy")).all()
    assert pg.evaluate("viewer.highlightedFaces().length") == 0

    # move the slider one step with the keyboard: the page asks the server for a scale never segmented
    pg.focus("#scale")
    pg.keyboard.press("ArrowRight")
    _wait_scale(pg, SLIDER_NEXT)
    want = server.session.labels(SLIDER_NEXT)
    assert (np.array(pg.evaluate("Array.from(viewer.state.labels)")) == want).all()
    wrong = pg.evaluate("""() => {  // every face drawn in its part's colour after the recolour
        const s = viewer.state, c = viewer.colours();
        let bad = 0;
        for (let f = 0; f < s.n; f++) {
            const hex = s.parts.parts[s.labels[f]].colour;
            const rgb = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
            if (c[f * 9] !== rgb[0] || c[f * 9 + 1] !== rgb[1] || c[f * 9 + 2] !== rgb[2]) bad++;
        }
        return bad; }""")
    assert wrong == 0
    assert pg.evaluate("viewer.state.timings.scale.scale") == SLIDER_NEXT

    # click the sphere (in the middle of the view): its part at this scale lights up
    x, y = pg.evaluate("viewer.project(0, 0, 0)")
    pg.mouse.click(x, y)
    pg.wait_for_function("viewer.state.timings.click !== null && viewer.state.lastSelect !== null", timeout=30_000)
    face = pg.evaluate("viewer.state.timings.click.element")
    assert gt[face] == 1
    lit = np.array(pg.evaluate("viewer.highlightedFaces()"))
    first = np.flatnonzero(want == want[face])
    assert (lit == first).all() and (gt[lit] == 1).all()
    assert pg.evaluate("viewer.state.lastSelect.part") == want[face]  # the server's select agrees
    # ... and so does `crossdistill select` for the same face and scale
    out = tmp_path / "sel"
    assert main(["select", str(obj), "--face", str(face), "--scale", str(SLIDER_NEXT), "-o", str(out), "--quiet"]) == 0
    assert (np.flatnonzero(np.load(out / f"scale_{SLIDER_NEXT:g}" / "selection.npy")) == first).all()
    assert "area" in pg.text_content("#part-info")

    # shift-click the cylinder: both parts lit
    x, y = pg.evaluate("viewer.project(2, 0, 0)")
    pg.evaluate("viewer.state.timings.click = null")
    pg.keyboard.down("Shift")
    pg.mouse.click(x, y)
    pg.keyboard.up("Shift")
    pg.wait_for_function("viewer.state.picks.length === 2 && viewer.state.timings.click !== null", timeout=30_000)
    second_face = pg.evaluate("viewer.state.timings.click.element")
    assert gt[second_face] == 2
    both = np.flatnonzero((want == want[face]) | (want == want[second_face]))
    assert (np.array(pg.evaluate("viewer.highlightedFaces()")) == both).all()

    # export the selection: the downloaded GLB holds exactly the lit faces
    with pg.expect_download(timeout=60_000) as dl:
        pg.click("#export-selection")
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.suffix == ".glb" and path.read_bytes()[:4] == b"glTF"
    scene = trimesh.load(path)
    tris = np.concatenate([scene.geometry[g].copy().apply_transform(scene.graph.get(n)[0]).triangles
                           for n in scene.graph.nodes_geometry for g in [scene.graph[n][1]]])
    assert len(tris) == len(both)
    got = np.sort(tris.mean(axis=1), axis=0)
    assert np.allclose(got, np.sort(mesh.triangles[both].mean(axis=1), axis=0), atol=1e-5)
    pg.wait_for_function("viewer.state.lastExport !== null", timeout=30_000)
    assert pg.evaluate("viewer.state.lastExport.savedTo").endswith(".glb")
