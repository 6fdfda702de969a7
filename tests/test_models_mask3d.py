"""The sparse UNet and the mask transformer decoder: shapes, scales, batching, masking, registry."""

from __future__ import annotations

import _learning
import pytest
import torch

from labelfree3d.errors import ParameterError
from labelfree3d.models import build_model, model_spec
from labelfree3d.models.backbone import SparseResUNet, SparseUNetConfig
from labelfree3d.models.mask3d.decoder import MaskDecoderConfig, _ScaleIndex
from labelfree3d.models.mask3d.model import count_parameters
from labelfree3d.models.registry import normalize_spec
from labelfree3d.models.voxelize import collate


def test_default_widths_are_res16unet34c_and_mask3d_sized():
    with torch.device("meta"):  # no memory, no initialisation cost
        counts = count_parameters(build_model({"name": "mask3d"}))
    assert counts["backbone"] == 37_844_704  # Res16UNet34C's 37.8 M parameters
    assert counts["total"] == 39_602_913  # Mask3D's ~39.6 M with the 128-wide decoder


def test_backbone_returns_five_scales_whose_coordinates_nest():
    batch = _learning.tabletop_batch((0, 1))
    net = SparseResUNet(3, SparseUNetConfig(**_learning.TINY_BACKBONE))
    levels = net(batch.coords, batch.features, batch.spatial_shape, batch.batch_size)
    assert [level.stride for level in levels] == [16, 8, 4, 2, 1]
    assert [level.features.shape[1] for level in levels] == list(net.level_channels)
    assert torch.equal(levels[-1].coords, batch.coords)  # stride 1 is row-aligned with the input voxels
    for level in levels[:-1]:
        index = _ScaleIndex(level, batch.coords, batch.positions, batch.offsets, batch.spatial_shape)
        for b in range(batch.batch_size):
            fine = batch.coords[batch.scene_rows(b)].long()
            parents = level.coords[index.rows[b][index.parent[b]]].long()
            assert torch.equal(parents[:, 0], fine[:, 0])
            assert torch.equal(parents[:, 1:], torch.div(fine[:, 1:], level.stride, rounding_mode="floor"))
    assert levels[0].coords.shape[0] < levels[2].coords.shape[0] < levels[4].coords.shape[0]


def test_decoder_outputs_one_prediction_per_layer_plus_the_final_one():
    torch.manual_seed(0)
    model = build_model(_learning.tiny_spec(num_decoders=2, levels=[1, 3]))
    batch = _learning.tabletop_batch((0, 1))
    predictions = model(batch)
    assert len(predictions) == 2 * 2 + 1
    for prediction in predictions:
        assert prediction.objectness.shape == (2, 8)
        assert [m.shape for m in prediction.masks] == [(8, batch.scene_rows(b).stop - batch.scene_rows(b).start) for b in range(2)]
    predictions[-1].masks[1].sum().backward()
    assert all(p.grad is not None for p in model.backbone.parameters())


@pytest.mark.parametrize("similarity, prior", [("dot", "none"), ("cosine", "none"), ("dot", "gaussian")])
def test_batched_scans_give_the_same_predictions_as_single_scans(similarity, prior):
    torch.manual_seed(0)
    model = build_model(_learning.tiny_spec(mask_similarity=similarity, spatial_prior=prior)).eval()
    voxels = [_learning.tabletop_voxels(seed)[0] for seed in (0, 1)]
    with torch.no_grad():
        together = model(collate(voxels))[-1]
        for b, scan in enumerate(voxels):
            alone = model(collate([scan]))[-1]
            assert torch.allclose(together.masks[b], alone.masks[0], atol=1e-4)
            assert torch.allclose(together.objectness[b], alone.objectness[0], atol=1e-4)
    if similarity == "cosine":  # |logits| <= 1 / temperature
        assert together.masks[0].abs().max() <= 1 / MaskDecoderConfig().cosine_temperature + 1e-4


def test_gaussian_spatial_prior_starts_as_a_blob_of_the_configured_radius_around_each_query():
    torch.manual_seed(0)
    model = build_model(_learning.tiny_spec(spatial_prior="gaussian", spatial_prior_radius=0.2)).eval()
    plain = build_model(_learning.tiny_spec()).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("decoder.spatial_head.")})
    batch = _learning.tabletop_batch((0,))
    with torch.no_grad():
        first, plain_first = model(batch)[0], plain(batch)[0]  # before any layer: the same queries
        queries = model.decoder._query_positions(batch.positions, batch.offsets)[0]
    positions = batch.positions.float()
    diagonal = (positions.max(dim=0).values - positions.min(dim=0).values).norm()
    expected = -(torch.cdist(queries.float(), positions) / diagonal).square() / (2 * 0.2**2)
    assert torch.allclose(first.masks[0] - plain_first.masks[0], expected, atol=1e-4)
    # the prior is learned: gradients reach the centre/radius head
    model.train()
    model(batch)[-1].masks[0].sum().backward()
    assert model.decoder.spatial_head.weight.grad.abs().sum() > 0
    with pytest.raises(ParameterError, match="spatial_prior must be one of"):
        build_model(_learning.tiny_spec(spatial_prior="box"))
    with pytest.raises(ParameterError, match="spatial_prior_radius"):
        build_model(_learning.tiny_spec(spatial_prior="gaussian", spatial_prior_radius=0))


def test_masked_attention_blocks_voxels_outside_each_query_mask():
    torch.manual_seed(0)
    model = build_model(_learning.tiny_spec()).eval()
    batch = _learning.tabletop_batch((0,))
    decoder = model.decoder
    levels = model.backbone(batch.coords, batch.features, batch.spatial_shape, 1)
    scale = _ScaleIndex(levels[3], batch.coords, batch.positions, batch.offsets, batch.spatial_shape)
    m = batch.coords.shape[0]
    logits = torch.full((8, m), -5.0)
    chosen = scale.parent[0][:3]
    logits[0, torch.isin(scale.parent[0], chosen)] = 5.0  # query 0 covers three coarse voxels, the others nothing
    prediction = type(model(batch)[-1])(torch.zeros(1, 8), [logits])
    sampled = [torch.arange(scale.rows[0].shape[0])]
    padding = torch.zeros(1, scale.rows[0].shape[0], dtype=torch.bool)
    blocked = decoder._blocked(prediction, scale, sampled, padding)
    assert blocked.shape == (decoder.config.num_heads, 8, scale.rows[0].shape[0])
    allowed = torch.zeros(scale.rows[0].shape[0], dtype=torch.bool)
    allowed[chosen] = True
    assert torch.equal(blocked[0, 0], ~allowed)
    assert not blocked[0, 1:].any()  # empty masks attend everywhere rather than nowhere


def test_scans_smaller_than_the_query_count_still_get_every_query():
    torch.manual_seed(0)
    model = build_model(_learning.tiny_spec(num_queries=40)).eval()
    voxels, _ = _learning.tabletop_voxels(0, voxel_size=0.5)  # a handful of voxels
    assert voxels.num_voxels < 40
    with torch.no_grad():
        final = model(collate([voxels]))[-1]
    assert final.masks[0].shape == (40, voxels.num_voxels)


def test_registry_round_trips_specs_and_rejects_bad_ones():
    spec = _learning.tiny_spec()
    model = build_model(spec)
    assert model_spec(model) == normalize_spec(spec)
    assert build_model(model_spec(model)).config == model.config
    with pytest.raises(ParameterError, match="unknown model 'nope'"):
        build_model({"name": "nope"})
    with pytest.raises(ParameterError, match="no setting"):
        build_model({"name": "mask3d", "decoder": {"queries": 3}})
    with pytest.raises(ParameterError, match="divisible"):
        build_model({"name": "mask3d", "decoder": {"hidden_dim": 18, "num_heads": 4}})
    with pytest.raises(ParameterError, match="planes must have 8"):
        build_model({"name": "mask3d", "backbone": {"planes": [8, 8]}})
    with pytest.raises(ParameterError, match="attention_sample_sizes must have 4"):
        build_model({"name": "mask3d", "decoder": {"levels": [0, 1], "attention_sample_sizes": [1, 2]}})
