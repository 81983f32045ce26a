"""MaskedConv2D: mask values, exact dependency pattern, no state written, serialization."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from pixelcnn_tf.layers import MaskedConv2D, causal_mask, channel_groups


def test_mask_3x3_single_channel():
    a = causal_mask(3, 3, 1, 1, "A")[..., 0, 0]
    b = causal_mask(3, 3, 1, 1, "B")[..., 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_mask_7x7_spatial_layout(mask_type):
    mask = causal_mask(7, 7, 1, 1, mask_type)[..., 0, 0]
    assert mask[:3].all(), "rows above the centre are fully visible"
    assert not mask[4:].any(), "rows below the centre are hidden"
    assert mask[3, :3].all() and not mask[3, 4:].any()
    assert mask[3, 3] == (1 if mask_type == "B" else 0)
    assert mask.sum() == 24 + (mask_type == "B")


def test_channel_groups_are_contiguous_blocks():
    np.testing.assert_array_equal(channel_groups(3, 3), [0, 1, 2])
    np.testing.assert_array_equal(channel_groups(6, 3), [0, 0, 1, 1, 2, 2])
    groups = channel_groups(64, 3)
    assert sorted(set(groups)) == [0, 1, 2] and (np.diff(groups) >= 0).all()
    np.testing.assert_array_equal(channel_groups(3 * 4, 3), np.repeat([0, 1, 2], 4))


def test_rgb_centre_tap_mask_a_and_b():
    # RGB image in -> 6 features (2 per colour group) out, at the centre tap.
    a = causal_mask(3, 3, 3, 6, "A", image_channels=3)[1, 1]
    b = causal_mask(3, 3, 3, 6, "B", image_channels=3)[1, 1]
    expected_a = np.array([[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]])
    expected_b = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(a, expected_a)  # G sees R; B sees R, G; R sees nothing
    np.testing.assert_array_equal(b, expected_b)  # each also sees itself
    # Off-centre taps above/left connect every group to every group.
    assert causal_mask(3, 3, 3, 6, "A", image_channels=3)[0, 2].all()


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("channels", [1, 3])
def test_layer_dependency_pattern_matches_mask(mask_type, channels):
    """Perturb each input sub-pixel; the outputs that change are exactly those the mask allows."""
    size, k = 5, 3
    layer = MaskedConv2D(channels, k, mask_type=mask_type, image_channels=channels, use_bias=False)
    base = np.random.default_rng(0).normal(size=(1, size, size, channels)).astype(np.float32)
    layer(base)
    layer.kernel.assign(np.random.default_rng(1).normal(size=layer.kernel.shape).astype(np.float32) + 3.0)
    reference = np.asarray(layer(base))
    for i in range(size):
        for j in range(size):
            for c in range(channels):
                moved = base.copy()
                moved[0, i, j, c] += 1.0
                changed = np.abs(np.asarray(layer(moved)) - reference)[0] > 1e-5
                for oi in range(size):
                    for oj in range(size):
                        for oc in range(channels):
                            above = oi - 1 <= i < oi or (i == oi and oj - 1 <= j < oj)
                            in_window = above and abs(j - oj) <= 1
                            same = (i, j) == (oi, oj) and (c < oc or (mask_type == "B" and c == oc))
                            assert changed[oi, oj, oc] == (in_window or same), (i, j, c, oi, oj, oc)


def test_call_does_not_write_the_mask_into_the_kernel():
    layer = MaskedConv2D(4, 3, mask_type="A")
    x = np.ones((1, 5, 5, 2), np.float32)
    layer(x)
    layer.kernel.assign(np.ones(layer.kernel.shape, np.float32))
    layer(x)
    np.testing.assert_array_equal(np.asarray(layer.kernel), 1.0)


def test_get_config_round_trip():
    layer = MaskedConv2D(6, 5, mask_type="A", image_channels=3, use_bias=False, name="m")
    clone = MaskedConv2D.from_config(layer.get_config())
    assert (clone.mask_type, clone.image_channels, clone.kernel_size, clone.use_bias) == ("A", 3, (5, 5), False)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, MaskedConv2D) and restored.mask_type == "A"


def test_bad_arguments_raise_early():
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2D(4, 3, mask_type="C")
    with pytest.raises(ValueError, match="padding"):
        MaskedConv2D(4, 3, padding="valid")
