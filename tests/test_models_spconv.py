"""The spconv CPU-backward shim and the sparse convolutions it enables, checked against dense torch."""

from __future__ import annotations

import importlib

import _learning  # noqa: F401 - one torch thread
import pytest
import torch

from labelfree3d.models.spconv_compat import SPCONV_MODULES_WITH_STREAMS, current_stream_handle, import_spconv


def _random_sparse(seed: int, size: int = 10, count: int = 150, channels: int = 3):
    generator = torch.Generator().manual_seed(seed)
    flat = torch.randperm(size**3, generator=generator)[:count]
    coords = torch.stack([flat // size**2, (flat // size) % size, flat % size], dim=1).int()
    features = torch.randn(count, channels, generator=generator, dtype=torch.float64)
    return coords, features


def test_shim_is_installed_in_every_module_that_binds_the_stream_getter():
    import_spconv()
    for name in SPCONV_MODULES_WITH_STREAMS:
        assert importlib.import_module(name).get_current_stream is current_stream_handle
    if not torch.cuda.is_available():
        assert current_stream_handle() == 0


# (grid size, voxels, torch threads): spconv 2.3.8's own CPU scatter-add races with more than one
# OpenMP thread (shared row pointers); on 2 threads it gave wrong rows in every call on this size
THREAD_CASES = {"1-thread": (10, 150, 1), "2-threads": (24, 6000, 2)}


@pytest.mark.parametrize("case", sorted(THREAD_CASES))
def test_submanifold_conv_forward_and_backward_match_dense_conv3d(case):
    spconv = import_spconv()
    size, count, threads = THREAD_CASES[case]
    coords, features = _random_sparse(0, size=size, count=count)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _check_submanifold_conv_against_dense(spconv, coords, features, size)
    finally:
        torch.set_num_threads(previous)


def _check_submanifold_conv_against_dense(spconv, coords, features, size):
    conv = spconv.SubMConv3d(3, 4, 3, bias=False, indice_key="t").double()
    weight = conv.weight.detach().clone()  # spconv 2.x layout: (out, kx, ky, kz, in)
    sparse_in = features.clone().requires_grad_(True)
    x = spconv.SparseConvTensor(sparse_in, torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), coords], 1), [size] * 3, 1)
    out = conv(x)
    upstream = torch.randn_like(out.features)
    (out.features * upstream).sum().backward()  # needs the shim on a CPU-only torch

    c = coords.long()
    leaf = features.clone().requires_grad_(True)
    grid = torch.zeros(size, size, size, 3, dtype=torch.float64).index_put((c[:, 0], c[:, 1], c[:, 2]), leaf)
    dense_in = grid.permute(3, 0, 1, 2)[None]
    dense_weight = weight.permute(0, 4, 1, 2, 3).contiguous().requires_grad_(True)
    dense_out = torch.nn.functional.conv3d(dense_in, dense_weight, padding=1)
    out_c = out.indices[:, 1:].long()
    at_sites = dense_out[0, :, out_c[:, 0], out_c[:, 1], out_c[:, 2]].T
    assert torch.allclose(out.features, at_sites, atol=1e-10)
    (at_sites * upstream).sum().backward()
    assert torch.allclose(sparse_in.grad, leaf.grad, atol=1e-10)
    assert torch.allclose(conv.weight.grad, dense_weight.grad.permute(0, 2, 3, 4, 1), atol=1e-10)


def test_strided_and_inverse_conv_backward_run_on_cpu():
    spconv = import_spconv()
    coords, features = _random_sparse(1, size=16, count=300, channels=2)
    leaf = features.float().requires_grad_(True)
    x = spconv.SparseConvTensor(leaf, torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), coords], 1), [16] * 3, 1)
    down = spconv.SparseConv3d(2, 5, 2, stride=2, indice_key="d")
    up = spconv.SparseInverseConv3d(5, 3, 2, indice_key="d")
    y = up(down(x))
    assert torch.equal(y.indices, x.indices)  # the inverse conv restores the fine voxels row by row
    y.features.square().sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0
    assert down.weight.grad is not None and up.weight.grad is not None
