"""The contact sheet: colours inherited down the part hierarchy, views from the principal axes with the
object upright and filling its cell, a legend of the parts."""

from __future__ import annotations

import numpy as np
import trimesh

from crossdistill.geometry.demo import demo_part_labels, demo_shape
from crossdistill.geometry.io import load_shape
from crossdistill.methods.sampart3d.pipeline import part_hierarchy
from crossdistill.viz.contact_sheet import _LEGEND_W, _TITLE_H, hierarchy_palettes, scale_sheet
from crossdistill.viz.principal import crop_to_object, principal_frame, principal_views


def demo_levels():
    shape = demo_shape()
    labels = demo_part_labels()
    per_scale = [labels["fine"], labels["coarse"], np.zeros_like(labels["coarse"])]
    return shape, per_scale, part_hierarchy(per_scale, shape.face_areas)


def test_a_part_keeps_its_colour_in_its_largest_child_and_siblings_differ():
    shape, per_scale, levels = demo_levels()
    palettes = hierarchy_palettes(per_scale, levels, shape.face_areas)
    assert [len(p) for p in palettes] == [int(lab.max()) + 1 for lab in per_scale]
    for i, level in enumerate(levels):
        kids: dict[int, list[int]] = {}
        for k, p in level["parent"].items():
            kids.setdefault(p, []).append(int(k))
        for p, children in kids.items():
            area = [shape.face_areas[per_scale[i] == c].sum() for c in children]
            largest = children[int(np.argmax(area))]
            assert np.array_equal(palettes[i][largest], palettes[i + 1][p])
            colours = {tuple(palettes[i][c]) for c in children}
            assert len(colours) == len(children)  # siblings are told apart
    assert np.array_equal(hierarchy_palettes(per_scale, levels, shape.face_areas)[0], palettes[0])


def standing_figure() -> trimesh.Trimesh:
    """A figure 2.4 tall along +z (body, head, arms), then tilted 0.4 rad about z and 0.25 about x."""
    body = trimesh.creation.capsule(height=1.6, radius=0.3)
    head = trimesh.creation.icosphere(radius=0.35)
    head.apply_translation((0, 0, 1.4))
    arms = trimesh.creation.box((1.6, 0.15, 0.15))
    arms.apply_translation((0, 0, 0.6))
    fig = trimesh.util.concatenate([body, head, arms])
    fig.apply_transform(trimesh.transformations.rotation_matrix(0.4, (0, 0, 1)))
    fig.apply_transform(trimesh.transformations.rotation_matrix(0.25, (1, 0, 0)))
    return fig


def test_a_tilted_z_up_figure_stands_in_the_front_view(tmp_path):
    path = tmp_path / "figure.stl"  # STL: z up by convention
    standing_figure().export(path)
    shape = load_shape(path)
    frame = principal_frame(shape)
    assert frame.principal and frame.up_axis == "+z"
    assert np.isclose(np.linalg.det(frame.rotation), 1.0)
    assert frame.extents[1] > 2 * frame.extents[0] and frame.extents[0] >= frame.extents[2]  # up is the long axis
    head = shape.triangles.mean(1) @ frame.rotation[1] > np.percentile(shape.triangles.mean(1) @ frame.rotation[1], 80)
    views, _ = principal_views(shape, size=96)
    for v in (0, 1):  # front and side: taller than wide, head at the top
        ys, xs = np.nonzero(views.foreground[v])
        assert np.ptp(ys) > 1.5 * np.ptp(xs)
        fid = views.face_id[v]
        head_rows = np.nonzero((fid >= 0) & head[np.maximum(fid, 0)])[0]
        assert head_rows.mean() < ys.mean()  # image rows grow downwards


def test_glb_up_is_y_and_a_cube_keeps_the_world_axes(tmp_path):
    shape, _, _ = demo_levels()
    frame = principal_frame(shape)
    assert frame.up_axis == "+y" and abs(frame.rotation[1] @ [0, 1, 0]) > 0.99
    trimesh.creation.box().export(tmp_path / "cube.glb")
    cube = principal_frame(load_shape(tmp_path / "cube.glb"))
    assert not cube.principal and np.allclose(cube.rotation, np.eye(3))


def test_the_object_fills_its_cell():
    shape = demo_shape()
    views, _ = principal_views(shape, size=128)
    for v in range(len(views)):
        cell = crop_to_object(views.rgb[v], views.foreground[v], 100)
        ys, xs = np.nonzero((cell < 250).any(-1))
        assert max(np.ptp(ys), np.ptp(xs)) + 1 >= 90  # 4% margin each side


def test_sheet_rows_titles_and_legend():
    shape, per_scale, levels = demo_levels()
    cell = 96
    sheet = np.asarray(scale_sheet(shape, per_scale, (0.0, 1.0, 2.0), levels, cell=cell))
    assert sheet.shape == (3 * (cell + _TITLE_H) + _TITLE_H, 4 * cell + _LEGEND_W, 3)
    palettes = hierarchy_palettes(per_scale, levels, shape.face_areas)
    for row, i in enumerate((2, 1, 0)):  # coarse at the top
        y = _TITLE_H + row * (cell + _TITLE_H) + _TITLE_H
        share = np.bincount(per_scale[i], weights=shape.face_areas)
        first = int(np.argmax(share))  # the legend lists the largest part first
        assert np.array_equal(sheet[y + 6, 4 * cell + 8 + 5], palettes[i][first])
        second = int(np.argsort(-share, kind="stable")[1]) if len(share) > 1 else None
        if second is not None:
            assert np.array_equal(sheet[y + 13 + 6, 4 * cell + 8 + 5], palettes[i][second])
