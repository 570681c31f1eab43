"""The interactive part viewer behind ``crossdistill view``: a local web page for one segmented object.

The object with its parts coloured; a scale slider that recolours at any scale (segmented
scales read their saved labels, any other scale runs segment's own stage 3 on the saved grouping
field, :class:`~crossdistill.methods.sampart3d.scale_parts.ScaleParts`); a click highlights the
part under it at the current scale with its area and name (``crossdistill name``'s names where
present), shift-click adds parts; a panel shows the saved part hierarchy; the selection or all
parts export as GLB. ``select``, ``view`` and ``segment`` give the same part for the same click
and scale.

Library choice: a static three.js page served by the Python standard library
(:mod:`http.server`), not viser or Gradio.

* No new dependency and no network: the server is the standard library; the page is three
  small files of ours plus three.js r187 (MIT), vendored unmodified in ``static/vendor/three``.
  viser 1.1.1 would add websockets, msgspec, zstandard, imageio, rich and requests for one
  command (a 3.6 MB wheel); Gradio 6.31 a 31 MB wheel on a FastAPI / uvicorn / pandas /
  pydantic stack plus huggingface-hub >= 1.16.
* The viewer's hot paths stay on the client, where they are cheap: the page keeps each scale's
  per-face labels (one int32 per face) and recolours a vertex-colour buffer in place, and a
  click is a ray cast on the client, so a click highlights without a round trip. viser
  streams meshes from Python and recolouring means re-sending a mesh; Gradio's ``Model3D``
  shows a file and reports no face under a click.
* The wire protocol is a handful of JSON / binary endpoints (:mod:`.server`) that a test can
  call without a browser, and a headless-browser test drives the real page.

Modules: :mod:`.session` (what is shown, as data), :mod:`.server` (HTTP), ``static/`` (the page).
"""

from crossdistill.view.session import Pick, ViewerSession

__all__ = ["Pick", "ViewerSession"]
