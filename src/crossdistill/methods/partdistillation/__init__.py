"""PartDistillation (Cho et al., CVPR 2023): 2D part discovery from an instance-segmentation model.

Stages, one module each:

* :mod:`.crops`: every object instance on one fixed grid (and back into its image);
* :mod:`.proposals`: cosine k-means of the teacher's pixel features inside each instance mask;
* :mod:`.decoder` / :mod:`.training`: a query-based part decoder trained on the proposals,
  then self-trained on a teacher snapshot's partitions of strongly augmented crops
  (:mod:`.augment`: augmentation and the EMA snapshot);
* :mod:`.ranking`: per object class, the decoder's part embeddings are clustered and the
  clusters ranked by density, so recurring parts get class-specific names; the
  class-specific part score (part-ness x cluster probability);
* :mod:`.final`: the final self-training on class-specific part ids (a per-class cluster head);
* :mod:`.pipeline`: :class:`PartDistillation`, the whole method behind one object.
"""
