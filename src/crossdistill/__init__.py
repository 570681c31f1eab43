"""crossdistill: distil 2D foundation models into part segmentation where labels are scarce."""

__version__ = "0.1.0"
