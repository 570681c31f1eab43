"""PartDistillation (Cho et al., CVPR 2023): 2D part discovery from an instance-segmentation model.

Stages, one module each:

* :mod:`.crops`: every object instance on one fixed grid (and back into its image);
* :mod:`.proposals`: k-means of the teacher's pixel features inside each instance mask;
* :mod:`.decoder` / :mod:`.training`: a query-based part decoder trained on the proposals,
  then self-trained on its own confident predictions;
* :mod:`.ranking`: per object class, the decoder's part embeddings are clustered and the
  clusters ranked by density, so recurring parts get class-specific names;
* :mod:`.pipeline`: :class:`PartDistillation`, the whole method behind one object.
"""
