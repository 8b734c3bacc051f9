"""The compact artifact round-trips: load -> same outputs as the model it was saved from."""
import numpy as np
import pytest
import torch

from bdnn.artifact import ArtifactError, load
from bdnn.nn import from_artifact, save_artifact
from conftest import calibrated_model, tiny_spec

SPEC = tiny_spec()


def test_artifact_round_trip_on_real_crops(tmp_path, private_crops):
    crops, _ = private_crops
    model = calibrated_model(SPEC, crops[:200])
    path = save_artifact(model, tmp_path / "model.npz")
    back = from_artifact(load(tmp_path))
    x = torch.from_numpy(crops[:100, None].astype(np.float32))
    with torch.no_grad():
        a, b = model(x).numpy(), back(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert path.stat().st_size < SPEC.weight_bits() / 8 + 16_000  # bit-packed, not float


def test_artifact_size_of_bdnn4_is_compact(tmp_path):
    from bdnn.arch import get_arch
    from bdnn.nn import BDNN
    path = save_artifact(BDNN(get_arch("bdnn4")), tmp_path / "model.npz")
    assert path.stat().st_size < 5_000_000   # ~11.5 Mbit packed = 1.44 MB + norm params


def test_bad_artifacts_give_clear_errors(tmp_path):
    with pytest.raises(ArtifactError, match="no model artifact"):
        load(tmp_path)
    (tmp_path / "model.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a readable model artifact"):
        load(tmp_path / "model.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ArtifactError, match="not a BDNN model artifact"):
        load(tmp_path / "other.npz")
