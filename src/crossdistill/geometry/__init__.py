"""geometry: load / validate / save shapes, sample surfaces, normalise, neighbours, demo object.

Public entry points (see each module for details and array shapes):

* :func:`crossdistill.geometry.io.load_shape`, :func:`~crossdistill.geometry.io.validate_shape`,
  :func:`~crossdistill.geometry.io.save_point_cloud`
* :func:`crossdistill.geometry.sampling.sample_surface`, ``estimate_normals``,
  ``farthest_point_sampling``
* :func:`crossdistill.geometry.normalize.normalize_shape`, ``unit_box_transform``
* :func:`crossdistill.geometry.neighbors.knn`
* :func:`crossdistill.geometry.demo.demo_shape`, ``demo_part_labels``
"""

from crossdistill.geometry.demo import demo_part_labels, demo_part_names, demo_shape
from crossdistill.geometry.io import load_shape, save_point_cloud, validate_shape
from crossdistill.geometry.neighbors import knn
from crossdistill.geometry.normalize import normalize_shape, unit_box_transform
from crossdistill.geometry.sampling import estimate_normals, farthest_point_sampling, sample_surface

__all__ = [
    "demo_part_labels",
    "demo_part_names",
    "demo_shape",
    "estimate_normals",
    "farthest_point_sampling",
    "knn",
    "load_shape",
    "normalize_shape",
    "sample_surface",
    "save_point_cloud",
    "unit_box_transform",
    "validate_shape",
]
