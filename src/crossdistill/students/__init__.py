"""3D student networks distilled from 2D teachers.

:mod:`.point_student`: a light neighbourhood-pooling per-point classifier (PartDistill's
student, trained on CPU over many shapes at once).
"""

from crossdistill.students.point_student import IN_FEATURES, PointStudent, knn_graph, point_features

__all__ = ["PointStudent", "knn_graph", "point_features", "IN_FEATURES"]
