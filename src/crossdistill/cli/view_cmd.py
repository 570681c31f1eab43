"""`crossdistill view`: the interactive part viewer (a local web page) for one segmented object.

``crossdistill view OUT/<object>`` serves a finished ``crossdistill segment`` folder;
``crossdistill view shape.glb`` segments the file first (into ``-o``, default ``view_out/``;
a finished folder there with the same settings is reused) and serves the result. The page and
its API are :mod:`crossdistill.view`; nothing is fetched from the network.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from crossdistill.errors import InputError

EPILOG = """examples:
  crossdistill view out/chair                 # a folder written by `crossdistill segment`
  crossdistill view chair.glb -o out --open   # segment first, then open the page in a browser
  crossdistill view out/chair --port 9000 --host 0.0.0.0   # reachable from other machines (no login!)"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="interactive part viewer in the browser: click parts, turn the scale, export GLB",
                       description="Serve a local web page showing a segmented object with its parts coloured: a "
                                   "scale slider recolours at any scale (segmented scales from their saved labels, "
                                   "others by the same clustering on the saved grouping field); a click highlights "
                                   "the part under it with its area and name, shift-click adds parts; a panel shows "
                                   "the part hierarchy; the selection or all parts export as GLB. Works offline.",
                       epilog=EPILOG)
    p.add_argument("target", help="an object folder written by `crossdistill segment`, or a mesh / point-cloud file "
                                  "to segment first")
    p.add_argument("-o", "--output", default=None,
                   help="where a file given as TARGET is segmented to (default: view_out); ignored for a folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--no-precompute", dest="precompute", action="store_false",
                   help="do not compute the slider's 41 scales in the background after start (each is then "
                        "computed when first shown)")
    p.add_argument("--exports", default=None,
                   help="folder for exported GLB files (default: OBJECT/exports)")
    p.add_argument("--device", default="cpu", help="torch device of the grouping field: cpu (default) or cuda")
    p.add_argument("--log", action="store_true", help="print one line per HTTP request on stderr")
    p.add_argument("--quiet", action="store_true", help="no notes on stderr")
    p.set_defaults(func=run_view)


def segment_first(path: Path, out: Path, quiet: bool) -> Path:
    """Segment ``path`` with `crossdistill segment`'s defaults into ``out``; return its object folder."""
    from crossdistill.cli.main import build_parser
    from crossdistill.cli.segment_cmd import find_inputs

    items = find_inputs(path)
    if len(items) != 1:
        raise InputError(f"{path}: view shows one object; segment a folder with `crossdistill segment`")
    argv = ["segment", str(path), "-o", str(out)] + (["--quiet"] if quiet else [])
    args = build_parser().parse_args(argv)
    code = args.func(args)
    obj = out / items[0][0]
    if code != 0 or not (obj / "segment.json").is_file():
        raise InputError(f"segmenting {path} failed (see {out / 'failures.json'})")
    return obj


def run_view(args: argparse.Namespace) -> int:
    from crossdistill.view.server import ViewerServer
    from crossdistill.view.session import ViewerSession

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be in 0..65535 (got {args.port})")
    target = Path(args.target)
    if target.is_file():
        target = segment_first(target, Path(args.output or "view_out"), args.quiet)
    elif not target.exists():
        raise InputError(f"no such object folder or file: {target}")
    session = ViewerSession.open(target, device=args.device, export_dir=Path(args.exports) if args.exports else None)
    try:
        server = ViewerServer(session, args.host, args.port, precompute=args.precompute, log=args.log)
    except OSError as exc:
        raise InputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
                         "(another viewer running? try --port 0)") from None
    if not args.quiet:
        for note in session.parts_at.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"crossdistill view: {target} (Ctrl-C stops)", file=sys.stderr)
    print(server.url, flush=True)  # the address is the command's output: on stdout, even with --quiet
    if args.open:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, (server.url,)).start()
    server.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:  # Ctrl-C is how a viewer is stopped
        if not args.quiet:
            print("crossdistill view: stopped", file=sys.stderr)
    finally:
        server.stop()
    return 0
