import numpy as np
import pytest

from bdnn.arch import ARCHS, ArchSpec, get_arch
from bdnn.combine import combine_scores
from bdnn.preprocess import CROP_NAMES, CROP_OFFSETS, five_crops, normalize


def test_five_crop_offsets_are_the_papers():
    assert CROP_NAMES == ("top-left", "top-right", "bottom-left", "bottom-right", "centre")
    assert CROP_OFFSETS == ((0, 0), (0, 6), (6, 0), (6, 6), (3, 3))


def test_five_crops_cut_the_right_windows():
    face = np.arange(48 * 48, dtype=np.int64).reshape(48, 48)
    faces = (face % 251).astype(np.uint8)[None]
    c = five_crops(faces)
    assert c.shape == (1, 5, 42, 42) and c.dtype == np.uint8
    for k, (r, col) in enumerate(CROP_OFFSETS):
        np.testing.assert_array_equal(c[0, k], faces[0, r:r + 42, col:col + 42])


@pytest.mark.parametrize("bad", [np.zeros((2, 40, 48), np.uint8), np.zeros((2, 48, 48), np.float32)])
def test_five_crops_rejects_bad_faces(bad):
    with pytest.raises(ValueError):
        five_crops(bad)


def test_normalization_maps_0_255_to_minus1_plus1():
    x = np.array([0.0, 127.5, 255.0])
    np.testing.assert_allclose(normalize(x), [-1.0, 0.0, 1.0])


def test_arch_geometry_matches_the_paper():
    b4 = get_arch("bdnn4")
    assert b4.block_channels == (64, 128, 256, 512) and b4.dense
    assert b4.flat_features() == 4096            # 2*512 channels x 2x2
    assert [f for _, f, _ in b4.fc_layers()] == [4096, 1024, 1024]
    assert abs(b4.weight_bits() / 1e6 - 11.5) < 0.1   # ~11.5 Mbit of binary weights
    assert abs(b4.macs_per_crop() / 1e6 - 437) < 5    # ~437 M binary MACs per crop
    assert get_arch("bcnn4").flat_features() == 2048 and not get_arch("bcnn4").dense
    assert [len(ARCHS[k].block_channels) for k in ("bdnn2", "bdnn3", "bdnn4", "bcnn4")] == [2, 3, 4, 4]
    assert get_arch("bdnn4-hw").flat_features() == 2048  # 2*256 channels on a 2x2 map
    assert get_arch("bdnn4-hw-gp").flat_features() == 512  # ... and with a global max-pool
    assert ArchSpec.from_dict(b4.to_dict()) == b4
    with pytest.raises(ValueError, match="unknown architecture"):
        get_arch("bdnn5")


def test_combine_mean_and_vote():
    s = np.zeros((1, 5, 3))
    s[0, :3, 0] = 1.0           # three crops say class 0 weakly
    s[0, 3:, 2] = 10.0          # two crops say class 2 strongly
    assert combine_scores(s, "mean").argmax() == 2
    assert combine_scores(s, "vote").argmax() == 0
    with pytest.raises(ValueError):
        combine_scores(s, "median")
