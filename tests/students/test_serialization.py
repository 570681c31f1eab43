"""Space-filling-curve serialisation and patch attention (PTv3's building blocks)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crossdistill.students.patch_attention import PatchLayout, patch_attention
from crossdistill.students.serialization import ORDERS, hilbert_code, serialize, z_order_code


def _cube(depth: int) -> torch.Tensor:
    r = torch.arange(2 ** depth)
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)


@pytest.mark.parametrize("curve", [z_order_code, hilbert_code])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_curve_codes_are_a_bijection_of_the_cube(curve, depth):
    cube = _cube(depth)
    code = curve(cube[torch.randperm(len(cube), generator=torch.Generator().manual_seed(0))], depth)
    assert sorted(code.tolist()) == list(range(8 ** depth))


def test_hilbert_steps_are_face_adjacent_and_z_order_is_not():
    cube = _cube(3)
    steps = {}
    for name, curve in (("hilbert", hilbert_code), ("z", z_order_code)):
        walk = cube[torch.argsort(curve(cube, 3))]
        steps[name] = (walk[1:] - walk[:-1]).abs().sum(1)
    assert bool((steps["hilbert"] == 1).all())
    assert int(steps["z"].max()) > 1


@pytest.mark.parametrize("curve", [z_order_code, hilbert_code])
def test_code_shifted_by_three_bits_is_the_parent_cells_code(curve):
    cube = _cube(4)
    assert torch.equal(curve(cube, 4) >> 3, curve(cube >> 1, 3))


def test_serialize_orders_are_permutations_and_inverses_restore_them():
    g = torch.Generator().manual_seed(3)
    coords = torch.unique(torch.randint(0, 20, (300, 3), generator=g), dim=0)
    batch = torch.randint(0, 3, (len(coords),), generator=g).sort().values
    s = serialize(coords, batch, ORDERS)
    n = len(coords)
    assert s.code.shape == s.order.shape == s.inverse.shape == (4, n)
    for k in range(4):
        assert torch.equal(s.order[k].sort().values, torch.arange(n))
        assert torch.equal(s.order[k][s.inverse[k]], torch.arange(n))
        assert torch.equal(s.inverse[k][s.order[k]], torch.arange(n))
        assert bool((batch[s.order[k]].diff() >= 0).all())  # clouds one after another along every curve
    assert len({tuple(o.tolist()) for o in s.order}) == 4  # four different orders
    # transposed curves: the code of the x/y-swapped coordinates
    assert torch.equal(s.code[1], serialize(coords[:, [1, 0, 2]], batch, ("z",)).code[0])


def test_coarser_serialisation_groups_voxels_by_parent_cell():
    g = torch.Generator().manual_seed(4)
    coords = torch.unique(torch.randint(0, 16, (200, 3), generator=g), dim=0)
    batch = torch.zeros(len(coords), dtype=torch.long)
    s = serialize(coords, batch, ("hilbert", "z"))
    parent_cells, parent = torch.unique(coords >> 1, dim=0, return_inverse=True)
    c = s.coarser(parent, len(parent_cells))
    assert torch.equal(c.code, serialize(parent_cells, torch.zeros(len(parent_cells), dtype=torch.long),
                                         ("hilbert", "z"), depth=s.depth - 1).code)


def test_unknown_order_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown serialisation order"):
        serialize(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), ("peano",))


def _reference_attention(qkv, order, counts, K, heads):
    """Attention computed chunk by chunk, no padding: each cloud's run along the order cut every K."""
    N, C3 = qkv.shape
    C = C3 // 3
    out = torch.zeros(N, C)
    start = 0
    for n in counts.tolist():
        for a in range(start, start + n, K):
            rows = order[a:min(a + K, start + n)]
            q, k, v = qkv[rows].view(len(rows), 3, heads, C // heads).permute(1, 2, 0, 3)
            out[rows] = F.scaled_dot_product_attention(q, k, v).transpose(0, 1).reshape(len(rows), C)
        start += n
    return out


@pytest.mark.parametrize("counts,K", [([5, 3], 4), ([8, 4], 4), ([2, 7, 1], 3)])
def test_padded_patch_attention_equals_unpadded_attention(counts, K):
    counts = torch.tensor(counts)
    N, heads, C = int(counts.sum()), 2, 8
    g = torch.Generator().manual_seed(5)
    qkv = torch.randn(N, 3 * C, generator=g)
    order = torch.cat([torch.randperm(int(n), generator=g) + int(counts[:i].sum()) for i, n in enumerate(counts)])
    inverse = torch.argsort(order)
    layout = PatchLayout.build(counts, K)
    assert (layout.valid is None) == bool((counts % K == 0).all())
    out = patch_attention(qkv, order, inverse, layout, heads)
    assert torch.allclose(out, _reference_attention(qkv, order, counts, K, heads), atol=1e-6)
