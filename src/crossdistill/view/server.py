"""The part viewer's local web server: the static page and a small JSON / binary API, standard library only.

Endpoints (all on ``http://HOST:PORT``; errors are JSON ``{"error": "..."}`` with status 400,
or 500 for a fault of ours):

=========================================  ==================================================================
``GET /``                                   the page (``static/index.html``); ``GET /static/...`` its files
``GET /api/info``                           :meth:`.ViewerSession.info` (JSON)
``GET /api/geometry``                       :meth:`.ViewerSession.geometry_bytes` (binary)
``GET /api/labels?scale=S``                 int32 part of every face / point at S (binary, little-endian);
                                            headers ``X-Parts`` (count), ``X-Compute-Ms``, ``X-Saved-Scale``
``GET /api/parts?scale=S``                  :meth:`.ViewerSession.parts` (JSON)
``GET /api/select?scale=S&face=F``          the part under a click, as ``crossdistill select`` (JSON);
``GET /api/select?scale=S&x=X&y=Y&z=Z``     a click given as a point in input units
``GET /api/status``                         scales cached so far by the background precompute (JSON)
``POST /api/export``                        body ``{"scale": S, "what": "all"|"selection",
                                            "picks": [{"scale": S, "part": K}, ...]}`` -> the GLB (binary);
                                            header ``X-Saved-To``: where it was also written
=========================================  ==================================================================

Nothing is fetched from the network: the page and three.js are served from ``static/``.
"""

from __future__ import annotations

import json
import mimetypes
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from crossdistill.errors import InputError
from crossdistill.view.session import Pick, ViewerSession, slider_scales

STATIC = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".html": "text/html; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".txt": "text/plain; charset=utf-8"}
MAX_BODY = 1 << 20


class ViewerServer(ThreadingHTTPServer):
    """A threaded HTTP server bound to one :class:`ViewerSession`.

    Args:
        session: the object to serve.
        host, port: where to listen (port 0: any free port; :attr:`url` says which).
        precompute: compute the slider's scales in a background thread after start
            (:meth:`start_precompute`), nearest to the default scale first.
        log: print one line per request on stderr.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, session: ViewerSession, host: str = "127.0.0.1", port: int = 0, precompute: bool = True,
                 log: bool = False) -> None:
        super().__init__((host, port), _Handler)
        self.session = session
        self.log = log
        self.precompute = precompute
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        grid = slider_scales()
        default = float(session.info()["default_scale"])
        self.grid = sorted(grid, key=lambda s: (abs(s - default), s))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "ViewerServer":
        """Serve in a background thread (and start the precompute if asked); returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="crossdistill-view", daemon=True)
        self._thread.start()
        if self.precompute:
            self.start_precompute()
        return self

    def start_precompute(self) -> None:
        """Compute every slider scale once, in a background thread, so a slider move only reads a cache."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._precompute, name="crossdistill-view-precompute", daemon=True)
            self._worker.start()

    def _precompute(self, chunk: int = 4) -> None:
        for i in range(0, len(self.grid), chunk):
            if self._stop.is_set():
                return
            try:
                self.session.parts_at.warm(self.grid[i:i + chunk], chunk)
            except Exception:  # noqa: BLE001 - a failing scale is reported when the page asks for it
                continue

    def status(self) -> dict:
        cached = sum(self.session.parts_at.cached(s) for s in self.grid)
        return {"precompute": self.precompute, "cached": int(cached), "of": len(self.grid)}

    def stop(self) -> None:
        """Stop serving and the precompute (waits for a scale being computed)."""
        self._stop.set()
        self.shutdown()
        self.server_close()
        if self._worker is not None:
            self._worker.join(timeout=60)


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave as two writes: without this, keep-alive replies wait ~40 ms

    def log_message(self, fmt: str, *args) -> None:  # noqa: D401 - http.server hook
        if self.server.log:
            super().log_message(fmt, *args)

    # ---- replies
    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    # ---- routing
    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(self._post)

    def _dispatch(self, route) -> None:
        try:
            route(urlparse(self.path))
        except InputError as exc:
            self._error(400, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - a fault of ours: the page shows it, the server goes on
            self._error(500, f"{type(exc).__name__}: {exc}")

    def _get(self, url) -> None:
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        s = self.server.session
        path = url.path
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path == "/favicon.ico":
            return self._send(204, b"", "image/x-icon")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/info":
            return self._json(s.info())
        if path == "/api/status":
            return self._json(self.server.status())
        if path == "/api/geometry":
            return self._send(200, s.geometry_bytes(), "application/octet-stream")
        if path == "/api/labels":
            scale = _scale(q)
            t = time.perf_counter()
            lab = s.labels(scale)
            ms = (time.perf_counter() - t) * 1000
            return self._send(200, np.ascontiguousarray(lab, dtype="<i4").tobytes(), "application/octet-stream",
                              {"X-Parts": str(int(lab.max()) + 1 if len(lab) else 0), "X-Compute-Ms": f"{ms:.1f}",
                               "X-Saved-Scale": str(s.parts_at.saved_scale(scale) is not None).lower()})
        if path == "/api/parts":
            return self._json(s.parts(_scale(q)))
        if path == "/api/select":
            scale = _scale(q)
            if "face" in q:
                return self._json(s.select(scale, face=_int(q, "face")))
            try:
                point = [float(q[k]) for k in ("x", "y", "z")]
            except (KeyError, ValueError):
                raise InputError("a click needs face=F or x=, y=, z=") from None
            return self._json(s.select(scale, point=point))
        self._error(404, f"no such path: {path}")

    def _post(self, url) -> None:
        if url.path != "/api/export":
            return self._error(404, f"no such path: {url.path}")
        n = int(self.headers.get("Content-Length") or 0)
        if not 0 < n <= MAX_BODY:
            raise InputError("the export request needs a JSON body (at most 1 MiB)")
        try:
            doc = json.loads(self.rfile.read(n))
            picks = [Pick(float(p["scale"]), int(p["part"])) for p in doc.get("picks") or []]
            what, scale = str(doc.get("what", "all")), doc.get("scale", 1.0)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InputError("the export request is not {scale, what, picks: [{scale, part}]}") from None
        name, body, path = self.server.session.export(scale, what, picks)
        self._send(200, body, "model/gltf-binary",
                   {"Content-Disposition": f'attachment; filename="{name}"', "X-Saved-To": str(path)})

    def _static(self, rel: str) -> None:
        root = STATIC.resolve()
        target = (root / rel).resolve()
        if root not in target.parents or not target.is_file():
            return self._error(404, f"no such file: {rel}")
        ctype = _TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, target.read_bytes(), ctype)


def _scale(q: dict[str, str]) -> float:
    if "scale" not in q:
        raise InputError("the request needs scale=S")
    try:
        return float(q["scale"])
    except ValueError:
        raise InputError(f"scale must be a number (got {q['scale']!r})") from None


def _int(q: dict[str, str], key: str) -> int:
    try:
        return int(q[key])
    except ValueError:
        raise InputError(f"{key} must be an integer (got {q[key]!r})") from None
