"""UDAKD / FSKD (Kang et al., ICRA 2025): LiDAR semantic segmentation distilled from a 2D image network.

* :mod:`.frames`: LiDAR scans with calibrated camera images (KITTI, nuScenes layouts);
* :mod:`.datasets`: lazy frame sources (KITTI object, SemanticKITTI, nuScenes sample, nuScenes-lidarseg);
* :mod:`.cache`: the teachers' targets on disk (float16, seen points only, resumable, shared);
* :mod:`.loader`: streamed, augmented, packed training batches (DataLoader workers, the engine's data source);
* :mod:`.targets`: the teacher's features and logits at every point's pixel;
* :mod:`.student`: sparse-voxel U-Net + self-calibrated domain-adaptation module + shared classifier;
* :mod:`.distill`: the UDAKD (InfoNCE) and FSKD (features + soft-label KL) losses and training;
* :mod:`.evaluate`: zero-shot evaluation against per-point labels.
"""
