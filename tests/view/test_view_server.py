"""The viewer's HTTP endpoints without a browser (:mod:`crossdistill.view.server`), and `crossdistill view`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main
from crossdistill.geometry.io import load_shape
from crossdistill.methods.sampart3d.interactive import InteractiveSegmenter

#: a scale between the segmented ones: the viewer computes it with segment's stage 3
UNSAVED = 0.75


def _get(server, path: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _post(server, path: str, doc: dict) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(server.url.rstrip("/") + path, data=json.dumps(doc).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _labels(server, scale: float) -> np.ndarray:
    status, body, headers = _get(server, f"/api/labels?scale={scale}")
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    return np.frombuffer(body, dtype="<i4")


def test_page_and_vendored_three_js_are_served_locally(server):
    status, body, headers = _get(server, "/")
    assert status == 200 and b'<script type="module" src="/static/viewer.js">' in body
    assert b"http://" not in body and b"https://" not in body  # nothing from a CDN
    for path in ("/static/viewer.js", "/static/vendor/three/three.module.js", "/static/vendor/three/three.core.js",
                 "/static/vendor/three/OrbitControls.js"):
        status, body, headers = _get(server, path)
        assert status == 200 and headers["Content-Type"].startswith("text/javascript"), path
        assert b"from 'https" not in body and b'from "https' not in body
    assert _get(server, "/static/vendor/three/LICENSE")[0] == 200
    assert _get(server, "/static/../session.py")[0] == 404  # nothing outside static/
    assert _get(server, "/static/%2e%2e/server.py")[0] == 404


def test_info_geometry_and_hierarchy(server, viewed):
    obj, mesh, gt, src = viewed
    info = json.loads(_get(server, "/api/info")[1])
    assert info["element"] == "face" and info["n_elements"] == len(mesh.faces)
    assert info["saved_scales"] == [0.0, 0.5, 1.0, 1.5, 2.0] and info["default_scale"] == 1.0
    assert info["named_scales"] == [1.0]
    # the hierarchy: roots are the coarsest scale's parts, children nest down to the finest
    roots = info["hierarchy"]
    assert roots and all(n["scale"] == 2.0 for n in roots)
    assert abs(sum(n["share"] for n in roots) - 1.0) < 1e-3
    leaf = roots[0]
    while leaf["children"]:
        leaf = leaf["children"][0]
    assert leaf["scale"] == 0.0
    body = _get(server, "/api/geometry")[1]
    assert body[:4] == b"CDV1"
    kind, nv, nf = np.frombuffer(body, "<u4", 3, 4)
    assert (kind, nv, nf) == (0, len(mesh.vertices), len(mesh.faces))
    verts = np.frombuffer(body, "<f4", nv * 3, 16).reshape(-1, 3)
    faces = np.frombuffer(body, "<u4", nf * 3, 16 + nv * 12).reshape(-1, 3)
    shape = load_shape(src)
    assert np.allclose(verts, shape.vertices, atol=1e-6) and (faces == shape.faces).all()


def test_labels_match_segment_and_select_at_saved_and_other_scales(server, viewed, tmp_path):
    obj, mesh, gt, src = viewed
    saved = np.load(obj / "scale_1.0" / "labels.npy")
    assert (_labels(server, 1.0) == saved).all()  # a segmented scale: the saved labels
    status, _, headers = _get(server, "/api/labels?scale=1")
    assert headers["X-Saved-Scale"] == "true" and int(headers["X-Parts"]) == saved.max() + 1
    lab = _labels(server, UNSAVED)  # another scale: segment's stage 3 on the saved field
    assert lab.shape == (len(mesh.faces),) and lab.min() == 0
    # ... which is what `crossdistill select` answers for a click there
    face = int(np.flatnonzero(gt == 1)[5])
    out = tmp_path / "sel"
    assert main(["select", str(obj), "--face", str(face), "--scale", str(UNSAVED), "-o", str(out), "--quiet"]) == 0
    picked = np.load(out / f"scale_{UNSAVED:g}" / "selection.npy")
    assert (picked == (lab == lab[face])).all()
    doc = json.loads(_get(server, f"/api/select?scale={UNSAVED}&face={face}")[1])
    assert doc["part"] == lab[face] and doc["n_selected"] == int(picked.sum()) and doc["element"] == face
    # a click given as a point picks the face under it
    centre = mesh.triangles[face].mean(axis=0)
    by_point = json.loads(_get(server, f"/api/select?scale={UNSAVED}&x={centre[0]}&y={centre[1]}&z={centre[2]}")[1])
    assert by_point["element"] == face and by_point["part"] == doc["part"]


def test_stage3_on_the_saved_field_reproduces_the_segmented_scales(viewed):
    obj, mesh, gt, src = viewed
    seg = InteractiveSegmenter.from_dir(obj, load_shape(src))
    assert seg.parts.notes == [] and seg.bundle.evidence is not None
    together = seg.parts._compute((0.5, 1.5))  # several scales in one run of stage 3, as the precompute does
    for s, lab in zip((0.5, 1.5), together):
        assert (lab == np.load(obj / f"scale_{s:.1f}" / "labels.npy")).all(), s


def test_parts_carry_area_share_and_names(server, viewed):
    obj, mesh, gt, src = viewed
    doc = json.loads(_get(server, "/api/parts?scale=1")[1])
    names = json.loads((obj / "scale_1.0" / "names.json").read_text())["names"]
    assert doc["saved"] and doc["n_parts"] == len(doc["parts"])
    assert abs(sum(p["share"] for p in doc["parts"]) - 1.0) < 1e-6
    assert abs(sum(p["area"] for p in doc["parts"]) - mesh.area) < 1e-6 * mesh.area
    assert [p["name"] for p in doc["parts"]] == [names[str(p["id"])] for p in doc["parts"]]
    assert all(p["name_scale"] == 1.0 and p["colour"].startswith("#") for p in doc["parts"])
    other = json.loads(_get(server, f"/api/parts?scale={UNSAVED}")[1])  # names carried from scale 1 where they fit
    assert not other["saved"] and any(p["name"] for p in other["parts"])
    assert all(p["name_scale"] in (None, 1.0) for p in other["parts"])


def test_export_all_and_selection_as_glb(server, viewed):
    obj, mesh, gt, src = viewed
    lab = _labels(server, 1.0)
    status, body, headers = _post(server, "/api/export", {"scale": 1.0, "what": "all"})
    assert status == 200 and headers["Content-Type"] == "model/gltf-binary" and body[:4] == b"glTF"
    saved_to = headers["X-Saved-To"]
    assert open(saved_to, "rb").read() == body
    scene = trimesh.load(saved_to)
    assert sum(len(g.faces) for g in scene.geometry.values()) == len(mesh.faces)
    assert len(scene.geometry) == lab.max() + 1
    picks = [{"scale": 1.0, "part": int(lab[np.flatnonzero(gt == 1)[0]])},
             {"scale": 0.5, "part": int(_labels(server, 0.5)[np.flatnonzero(gt == 2)[0]])}]
    status, body, headers = _post(server, "/api/export", {"scale": 1.0, "what": "selection", "picks": picks})
    assert status == 200
    want = (lab == picks[0]["part"]) | (_labels(server, 0.5) == picks[1]["part"])
    scene = trimesh.load(headers["X-Saved-To"])
    assert sum(len(g.faces) for g in scene.geometry.values()) == int(want.sum())
    got = np.concatenate([g.apply_transform(scene.graph.get(n)[0]).triangles.reshape(-1, 9)
                          for n in scene.graph.nodes_geometry for g in [scene.geometry[scene.graph[n][1]].copy()]])
    assert np.allclose(np.sort(got.mean(axis=1)), np.sort(mesh.triangles[want].reshape(-1, 9).mean(axis=1)), atol=1e-5)


@pytest.mark.parametrize("path, status", [
    ("/api/labels", 400), ("/api/labels?scale=abc", 400), ("/api/labels?scale=5", 400), ("/api/labels?scale=nan", 400),
    ("/api/select?scale=1&face=999999", 400), ("/api/select?scale=1&face=x", 400), ("/api/select?scale=1", 400),
    ("/api/select?scale=1&x=50&y=50&z=50", 400), ("/api/nope", 404),
])
def test_bad_requests_get_one_line_json_errors(server, path, status):
    code, body, _ = _get(server, path)
    doc = json.loads(body)
    assert code == status and isinstance(doc["error"], str) and "\n" not in doc["error"], (path, doc)


def test_bad_export_requests(server):
    assert _post(server, "/api/export", {"scale": 1.0, "what": "selection", "picks": []})[0] == 400
    no_such_part = [{"scale": 1, "part": 999}]
    assert _post(server, "/api/export", {"scale": 1.0, "what": "selection", "picks": no_such_part})[0] == 400
    assert _post(server, "/api/export", {"scale": 1.0, "what": "everything"})[0] == 400
    assert _post(server, "/api/export", {"scale": 1.0, "picks": "nope"})[0] == 400


def test_precompute_fills_the_slider_cache(viewed):
    from crossdistill.view.server import ViewerServer
    from crossdistill.view.session import ViewerSession

    srv = ViewerServer(ViewerSession.open(viewed[0]), port=0, precompute=True)
    srv.grid = srv.grid[:3]  # 1.0 (saved), then 0.95 and 1.05 (computed)
    srv.start()
    try:
        srv._worker.join(timeout=60)
        assert srv.status() == {"precompute": True, "cached": 3, "of": 3}
        alone = InteractiveSegmenter.from_dir(viewed[0], load_shape(viewed[3])).parts  # one scale at a time
        for s in srv.grid:
            assert (srv.session.labels(s) == alone.labels(s)).all(), s
    finally:
        srv.stop()


def test_view_cli_bad_input_exit_2(viewed, tmp_path, capsys):
    obj = viewed[0]
    cases = [["view", str(tmp_path / "missing")], ["view", str(obj), "--port", "70000"],
             ["view", str(tmp_path)]]  # a folder that is no segment output
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), (argv, err)


def test_a_point_cloud_is_served_and_exported_as_points(tmp_path, three_primitives, fast_segment_args):
    from crossdistill.view.server import ViewerServer
    from crossdistill.view.session import ViewerSession

    mesh, gt = three_primitives
    pts, fid = trimesh.sample.sample_surface(mesh, 3000, seed=0)
    src = tmp_path / "cloud.ply"
    trimesh.PointCloud(pts).export(src)
    assert main(["segment", str(src), "-o", str(tmp_path / "out"), *fast_segment_args]) == 0
    obj = tmp_path / "out" / "cloud"
    srv = ViewerServer(ViewerSession.open(obj, export_dir=tmp_path / "exports"), port=0, precompute=False).start()
    try:
        body = _get(srv, "/api/geometry")[1]
        assert tuple(np.frombuffer(body, "<u4", 3, 4)) == (1, len(pts), 0) and len(body) == 16 + 12 * len(pts)
        lab = _labels(srv, 1.0)
        assert (lab == np.load(obj / "scale_1.0" / "labels.npy")).all()
        assert _labels(srv, UNSAVED).shape == (len(pts),)
        assert _get(srv, "/api/select?scale=1&face=0")[0] == 400  # a face click needs a mesh
        x, y, z = pts[10]
        doc = json.loads(_get(srv, f"/api/select?scale=1&x={x}&y={y}&z={z}")[1])
        assert doc["element"] == 10 and doc["part"] == lab[10] and doc["area"] is None
        status, _, headers = _post(srv, "/api/export", {"scale": 1.0, "what": "all"})
        scene = trimesh.load(headers["X-Saved-To"])
        assert status == 200 and sum(len(g.vertices) for g in scene.geometry.values()) == len(pts)
    finally:
        srv.stop()


def test_view_of_a_file_that_does_not_segment_fails_cleanly(tmp_path, capsys):
    bad = tmp_path / "broken.glb"
    bad.write_bytes(b"not a mesh")
    assert main(["view", str(bad), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error:")


def test_every_file_of_the_page_is_package_data():
    """A wheel carries only the non-Python files pyproject.toml lists: every file the page needs is listed."""
    import fnmatch
    import tomllib
    from pathlib import Path

    import crossdistill.view as view

    root = Path(view.__file__).parent
    globs = tomllib.loads((root.parents[2] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "crossdistill.view"]
    files = [f.relative_to(root).as_posix() for f in (root / "static").rglob("*") if f.is_file()]
    assert "static/vendor/three/three.core.js" in files
    assert all(any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs) for f in files), files


def test_view_cli_serves_until_terminated(viewed):
    """`crossdistill view OBJ --port 0` prints its address on stdout, serves, and stops cleanly on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "crossdistill.cli.main", "view", str(viewed[0]), "--port", "0",
                             "--no-precompute", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
        with urllib.request.urlopen(url + "api/info", timeout=60) as r:
            assert json.loads(r.read())["name"] == viewed[0].name
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == ""
