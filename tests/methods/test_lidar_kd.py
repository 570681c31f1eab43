"""UDAKD / FSKD: point targets, losses, distillation on a synthetic scan, persistence, real frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdistill.methods.lidar_kd.distill import (DistillConfig, context_region, distill_lidar, info_nce,
                                                   load_student, predict_points, save_student, soft_label_kl)
from crossdistill.methods.lidar_kd.evaluate import map_classes, zero_shot_iou
from crossdistill.methods.lidar_kd.frames import CameraImage, LidarFrame
from crossdistill.methods.lidar_kd.loader import Augment
from crossdistill.methods.lidar_kd.student import StudentConfig
from crossdistill.methods.lidar_kd.targets import PointTargets, point_targets
from crossdistill.render.lidar import CameraCalib
from crossdistill.teachers.base import SemanticMap

W_IMG, H_IMG = 160, 80


def _camera() -> CameraCalib:
    K = np.array([[80.0, 0, W_IMG / 2], [0, 80.0, H_IMG / 2], [0, 0, 1]])
    to_cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    return CameraCalib(K, to_cam, W_IMG, H_IMG, "front")


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground (class 0) and box-shaped 'cars' (class 1) all around the sensor: (N, 4) points, (N,) labels."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.arange(-16, 16, 0.4), np.arange(-16, 16, 0.4)), -1).reshape(-1, 2)
    ground = np.c_[g + rng.normal(0, 0.05, g.shape), np.full(len(g), -1.5)]
    cars = []
    for cx, cy in [(8, -3), (10, 4), (-8, 2), (-6, -6), (3, 10)] + [tuple(rng.uniform(-12, 12, 2))]:
        u = rng.uniform(-1, 1, (500, 3)) * [2.0, 0.9, 0.7]
        face = rng.integers(0, 3, 500)
        u[np.arange(500), face] = np.sign(u[np.arange(500), face]) * np.array([2.0, 0.9, 0.7])[face]
        cars.append(u + [cx, cy, -0.8])
    cars = np.concatenate(cars)
    pts = np.concatenate([ground, cars])
    inten = np.r_[np.full(len(ground), 0.2), np.full(len(cars), 0.6)] + rng.normal(0, 0.05, len(pts))
    return np.c_[pts, inten].astype(np.float32), np.r_[np.zeros(len(ground)), np.ones(len(cars))].astype(np.int64)


def _frame(seed: int) -> LidarFrame:
    pts, lab = _scene(seed)
    img = CameraImage(np.zeros((H_IMG, W_IMG, 3), np.uint8), _camera())
    return LidarFrame(f"s{seed}", pts, 1.0, (img,), lab, ("background", "car"), "synthetic")


CLASSIFIER = (np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]) * 4, np.zeros(2))


def _teacher_targets(frame: LidarFrame, noise: float = 0.1, seed: int = 0) -> PointTargets:
    """What a good 2D teacher would give: features near the class's direction, for the points the camera sees."""
    from crossdistill.render.lidar import point_pixels

    rng = np.random.default_rng(seed)
    seen = point_pixels(frame.points, frame.images[0].camera) >= 0
    feats = np.eye(4, dtype=np.float32)[frame.labels] + noise * rng.normal(size=(len(seen), 4)).astype(np.float32)
    feats[~seen] = 0
    logits = feats @ CLASSIFIER[0].T.astype(np.float32)
    return PointTargets(seen, feats, logits.astype(np.float32))


def test_point_targets_read_the_map_at_each_points_pixel():
    frame = _frame(0)
    C = 3
    feats = np.zeros((C, H_IMG // 4, W_IMG // 4), np.float32)
    feats[0, :, : W_IMG // 8] = 1.0  # the left half of the image
    feats[1, :, W_IMG // 8:] = 1.0
    logits = np.stack([feats[0], feats[1]])
    tg = point_targets(frame, [SemanticMap(feats, logits, (H_IMG, W_IMG))], occlusion_px=0)
    uv, z = frame.images[0].camera.project(frame.points)
    inside = (z >= 1) & (uv[:, 0] >= 0) & (uv[:, 0] < W_IMG) & (uv[:, 1] >= 0) & (uv[:, 1] < H_IMG)
    assert np.array_equal(tg.seen, inside)
    left = tg.seen & (uv[:, 0] < W_IMG / 2 - 4)
    right = tg.seen & (uv[:, 0] > W_IMG / 2 + 4)
    assert np.allclose(tg.features[left, 0], 1) and np.allclose(tg.features[right, 1], 1)
    assert (tg.features[~tg.seen] == 0).all() and (tg.logits[~tg.seen] == 0).all()
    with pytest.raises(ValueError):
        point_targets(frame, [])


def test_losses_match_their_definitions():
    s, t = torch.randn(6, 4), torch.randn(6, 4)
    sn, tn = torch.nn.functional.normalize(s, dim=1), torch.nn.functional.normalize(t, dim=1)
    logits = sn @ tn.T / 0.1
    manual = -(logits.diag() - logits.logsumexp(1)).mean()
    assert torch.allclose(info_nce(s, t, 0.1), manual, atol=1e-5)
    zs, zt = torch.randn(5, 3), torch.randn(5, 3)
    p, q = torch.softmax(zt / 2, 1), torch.softmax(zs / 2, 1)
    manual_kl = 4 * (p * (p.log() - q.log())).sum(1).mean()
    assert torch.allclose(soft_label_kl(zs, zt, 2.0), manual_kl, atol=1e-5)


def test_context_region_keeps_what_surrounds_the_seen_points():
    pts = np.array([[0.0, 0, 0], [3.0, 0, 0], [9.0, 0, 0], [30.0, 0, 0]])
    keep = context_region(pts, np.array([True, False, False, False]), 4.0)
    assert keep.tolist() == [True, True, False, False]


FAST = StudentConfig(voxel_size=0.4, widths=(8, 16, 16))


@pytest.mark.parametrize("mode, batch_size, augment", [
    ("fskd", 1, None), ("udakd", 1, None),
    # batches + augmentation: slow (~15-30 s); tests/methods/lidar_kd/test_lidar_loader.py covers the path fast
    pytest.param("fskd", 2, Augment(), marks=pytest.mark.slow)])
def test_the_student_labels_cars_no_camera_saw(mode, batch_size, augment):
    frames = [_frame(s) for s in range(2)]
    targets = [_teacher_targets(f, seed=i) for i, f in enumerate(frames)]
    cfg = DistillConfig(mode=mode, student=FAST, iterations=80 // batch_size, pairs=512, lr=5e-3, context=100.0,
                        batch_size=batch_size, augment=augment)
    student, losses = distill_lidar(frames, targets, CLASSIFIER, cfg, progress=False)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    test = _frame(7)
    unseen = ~_teacher_targets(test).seen
    pred = predict_points(student, test).argmax(1)
    iou, miou = zero_shot_iou(pred, test.labels, 2, unseen)
    assert iou[1] > 0.5, iou  # cars behind the camera, never supervised


def test_student_round_trip_and_determinism(tmp_path):
    frames = [_frame(0)]
    targets = [_teacher_targets(frames[0])]
    cfg = DistillConfig(mode="fskd", student=FAST, iterations=5, pairs=256, augment=Augment(jitter=0.02))
    a, _ = distill_lidar(frames, targets, CLASSIFIER, cfg, progress=False)
    b, _ = distill_lidar(frames, targets, CLASSIFIER, cfg, progress=False)
    pa, pb = predict_points(a, frames[0]), predict_points(b, frames[0])
    assert np.array_equal(pa, pb)
    path = save_student(tmp_path / "s.pt", a, ("background", "car"), cfg, "test")
    back, names, cfg2 = load_student(path)
    assert names == ("background", "car") and cfg2 == cfg
    assert np.allclose(predict_points(back, frames[0]), pa, atol=1e-6)


def test_class_mapping_and_scores():
    m = map_classes(["road", "car", "person", "rider", "sky"], ["background", "car", "pedestrian", "cyclist"])
    assert m.tolist() == [0, 1, 2, 3, 0]
    iou, miou = zero_shot_iou(np.array([0, 0, 1, 1]), np.array([0, 1, 1, -1]), 2)
    assert iou.tolist() == [0.5, 0.5] and miou == 0.5


def test_real_frames_load_with_cameras_and_boxes(shared_data):
    from crossdistill.methods.lidar_kd.frames import kitti_frames, nuscenes_frames

    kf = kitti_frames(shared_data / "kitti_sample")
    assert [f.name for f in kf] == ["000000", "000001", "000002", "000003"]
    f = kf[3]
    assert f.images[0].image.shape == (375, 1242, 3) and len(f.labels) == len(f.points)
    assert f.class_names[f.images[0].box_labels[0]] == "car"
    feats = f.point_features()
    assert feats.shape == (len(f.points), 4) and 0 <= feats[:, 3].min() and feats[:, 3].max() <= 1
    (nf,) = nuscenes_frames(shared_data / "nuscenes_sample")
    assert len(nf.images) == 6 and nf.intensity_scale == 255.0
    front = next(c for c in nf.images if c.camera.name == "CAM_FRONT")
    assert len(front.boxes) > 0 and (front.boxes[:, 2] <= front.camera.width).all()


@pytest.mark.gpu
def test_the_student_gives_the_same_answer_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    frames = [_frame(0)]
    cfg = DistillConfig(mode="fskd", student=FAST, iterations=3, pairs=256)
    student, _ = distill_lidar(frames, [_teacher_targets(frames[0])], CLASSIFIER, cfg, progress=False)
    cpu = predict_points(student, frames[0], "cpu")
    gpu = predict_points(student, frames[0], "cuda")
    assert np.allclose(cpu, gpu, atol=1e-4)
    cuda_student, _ = distill_lidar(frames, [_teacher_targets(frames[0])], CLASSIFIER, cfg, device="cuda",
                                    progress=False)
    assert np.isfinite(predict_points(cuda_student, frames[0], "cuda")).all()
