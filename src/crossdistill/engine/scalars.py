"""Logged training scalars: a CSV file (one row per logged step) and a loss plot (PNG).

The CSV (``scalars.csv``) has a ``step`` column and one column per scalar name; it is
appended to as training goes (a line is flushed at a time), and on resume the rows of steps
at or after the resumed step are dropped (with any half-written last line of a killed run),
so a killed and resumed run logs each step once.

The plot (``loss.png``) is drawn with matplotlib when it is installed, else with Pillow (a
core dependency): a line of each scalar whose name contains ``loss`` against the step.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from crossdistill.io_utils import write_bytes, write_text

__all__ = ["ScalarLog", "read_scalars", "plot_scalars"]


def read_scalars(path: str | Path) -> dict[str, np.ndarray]:
    """The columns of a ``scalars.csv``: name -> (rows,) float64 array (``step`` included).

    Rows with a missing or unreadable field (a killed run's last line) are left out.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return {}
    header, body = rows[0], []
    for r in rows[1:]:
        if len(r) != len(header):
            continue
        try:
            body.append([float(v) if v != "" else math.nan for v in r])
        except ValueError:
            continue
    arr = np.asarray(body, dtype=np.float64).reshape(-1, len(header))
    return {name: arr[:, i] for i, name in enumerate(header)}


class ScalarLog:
    """Appends scalars to ``<run_dir>/scalars.csv``; see the module docstring.

    Args:
        run_dir: folder of the run.
        names: the scalar columns (besides ``step``), fixed for the run.
        start_step: the first step this process will log: earlier rows are kept, later ones dropped.
    """

    def __init__(self, run_dir: str | Path, names: Sequence[str], start_step: int = 0) -> None:
        self.path = Path(run_dir) / "scalars.csv"
        self.names = list(names)
        old = read_scalars(self.path)
        header = ["step", *self.names]
        keep: list[list[float]] = []
        if old and list(old) == header:
            steps = old["step"]
            keep = [[old[h][i] for h in header] for i in range(len(steps)) if steps[i] < start_step]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        for row in keep:
            w.writerow([int(row[0]), *[_fmt(v) for v in row[1:]]])
        write_text(self.path, buf.getvalue())
        self._fh = self.path.open("a", newline="")

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Append one row (missing names are left empty)."""
        self._fh.write(",".join([str(int(step)), *[_fmt(values.get(n, math.nan)) for n in self.names]]) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _fmt(v: float) -> str:
    v = float(v)
    return "" if math.isnan(v) else repr(v)


def plot_scalars(csv_path: str | Path, png_path: str | Path, title: str = "training") -> Path | None:
    """Draw the ``*loss*`` columns of a scalars CSV against the step into ``png_path`` (atomic).

    Returns:
        the PNG path, or None when there is nothing to draw.
    """
    cols = read_scalars(csv_path)
    series = {k: v for k, v in cols.items() if "loss" in k and np.isfinite(v).any()}
    if "step" not in cols or not series:
        return None
    steps = cols["step"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return write_bytes(png_path, _pil_plot(steps, series, title))
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, ys in series.items():
        ok = np.isfinite(ys)
        ax.plot(steps[ok], ys[ok], label=name, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return write_bytes(png_path, buf.getvalue())


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def _pil_plot(steps: np.ndarray, series: Mapping[str, np.ndarray], title: str, w: int = 600, h: int = 350) -> bytes:
    """PNG bytes of a line plot of ``series`` against ``steps`` (Pillow only)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 60, w - 15, 25, h - 35
    finite = np.concatenate([ys[np.isfinite(ys)] for ys in series.values()])
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    x0, x1 = float(steps.min()), float(steps.max())
    if x1 <= x0:
        x1 = x0 + 1.0

    def xy(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - lo) / (hi - lo) * (bottom - top))

    d.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    d.text((left, 5), title, fill=(0, 0, 0))
    d.text((5, top), f"{hi:.4g}", fill=(0, 0, 0))
    d.text((5, bottom - 10), f"{lo:.4g}", fill=(0, 0, 0))
    d.text((left, bottom + 5), f"{int(x0)}", fill=(0, 0, 0))
    d.text((right - 40, bottom + 5), f"{int(x1)}", fill=(0, 0, 0))
    d.text(((left + right) // 2 - 10, bottom + 15), "step", fill=(0, 0, 0))
    for i, (name, ys) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        ok = np.isfinite(ys)
        pts = [xy(x, y) for x, y in zip(steps[ok], ys[ok])]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=1)
        elif pts:
            d.point(pts, fill=colour)
        d.text((right - 150, top + 5 + 12 * i), name, fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
