"""`crossdistill models list | download`: the foundation models, whether they are here, and fetching them."""

from __future__ import annotations

import argparse
import sys

_LIST_EXAMPLE = """example:
  crossdistill models list
  HF_HUB_OFFLINE=1 crossdistill models list     # never touches the network either way"""

_DOWNLOAD_EXAMPLE = """examples:
  crossdistill models download sam                         # into $CROSSDISTILL_MODELS/facebook/sam-vit-base
  crossdistill models download dinov2 --to ~/weights/dinov2
  HF_ENDPOINT=https://my-mirror.example crossdistill models download sam"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the foundation models (SAM, DINOv2, ...) and download their weights",
                       description="The foundation models the commands can use instead of their offline defaults: "
                                   "hub id, size, licence, which command uses each, and whether its weights are on "
                                   "this machine; `download` fetches them through huggingface_hub.",
                       epilog="example:\n  crossdistill models list\n  crossdistill models download sam",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="models_action", metavar="ACTION", help="list or download")
    ls = actions.add_parser("list", help="every model, and whether its weights are found (no network)",
                            description="Every model: name, hub id, size, licence, the commands that use it, and "
                                        "where its weights were found ($CROSSDISTILL_MODELS/<hub id> or the Hugging "
                                        "Face cache). Never touches the network.",
                            epilog=_LIST_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    ls.set_defaults(func=run_list)
    dl = actions.add_parser("download", help="fetch a model's weights from the Hugging Face Hub (or HF_ENDPOINT)",
                            description="Fetch one model's config and weights through huggingface_hub into "
                                        "$CROSSDISTILL_MODELS/<hub id> (default ~/.cache/crossdistill/models), where "
                                        "every command finds them. Honours HF_ENDPOINT (a mirror) and HF_HUB_OFFLINE "
                                        "(then nothing is downloaded); HF_TOKEN for gated repositories. An "
                                        "interrupted download resumes when re-run.",
                            epilog=_DOWNLOAD_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    dl.add_argument("name", help="model name from `crossdistill models list` (e.g. sam, dinov2), or its hub id")
    dl.add_argument("--to", metavar="DIR", default=None,
                    help="folder to put the model's files in (default: $CROSSDISTILL_MODELS/<hub id>; "
                         "elsewhere, pass the folder to the command's weights flag, e.g. --mask-weights DIR)")
    dl.add_argument("--quiet", action="store_true", help="no progress bars")
    dl.set_defaults(func=run_download)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def run_list(args: argparse.Namespace) -> int:
    from crossdistill.teachers.models import model_rows

    rows = model_rows()
    header = ("name", "hub id", "size", "licence", "present", "used by")
    table = [(r.info.name, r.info.hub_id, r.info.size, r.info.licence.split(" (")[0],
              "yes" if r.present else "no", r.info.used_by) for r in rows]
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header) - 1)]
    for row in [header, *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1])
    found = [r for r in rows if r.present]
    for r in found:
        print(f"{r.info.name}: {r.where}")
    if len(found) < len(rows):
        print("get one with: crossdistill models download NAME", file=sys.stderr)
    return 0


def run_download(args: argparse.Namespace) -> int:
    from crossdistill.teachers.models import download, hub_endpoint, model, refuse_offline

    info = model(args.name)
    refuse_offline(info)
    if not args.quiet:
        print(f"downloading {info.hub_id} ({info.size}, licence {info.licence}) from "
              f"{hub_endpoint() or 'https://huggingface.co'}", file=sys.stderr)
    dest = download(info.name, args.to, progress=not args.quiet)
    print(dest)
    if not args.quiet:
        print(f"{info.name} ready in {dest}; used by: {info.used_by}", file=sys.stderr)
    return 0
