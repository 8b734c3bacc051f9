"""Shared fixtures: the real FER2013 (from ../shared), small calibrated models, a FINN build dir."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fer():
    """The shared FER2013. CI must have it (fail there); elsewhere skip with the reason."""
    from bdnn.data import DataError, load_fer2013
    try:
        return load_fer2013()
    except DataError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"FER2013 not available: {e}")


@pytest.fixture(scope="session")
def private_crops(fer):
    """Five crops of the first PrivateTest faces, uint8 (N*5, 42, 42), with their face labels."""
    from bdnn.preprocess import five_crops
    faces, labels = fer.split("PrivateTest")
    return five_crops(faces[:64]).reshape(-1, 42, 42), labels[:64]


def calibrated_model(spec, crops: np.ndarray, seed: int = 0):
    """Random +-1 weights with BatchNorm statistics measured on real crops.

    Random BN statistics saturate every sign and make all inputs look alike; calibrated ones give
    the diverse activations a bit-exactness test needs.
    """
    import torch
    from bdnn.nn import BDNN
    torch.manual_seed(seed)
    model = BDNN(spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.momentum = None  # cumulative average over the calibration batch
                m.weight.uniform_(0.5, 1.5).mul_(torch.where(torch.rand_like(m.weight) < 0.2, -1.0, 1.0))
                m.bias.uniform_(-0.3, 0.3)
        model.train()
        model(torch.from_numpy(crops[:, None].astype(np.float32)))
    return model.eval()


@pytest.fixture(scope="session")
def finn_build_dir(tmp_path_factory):
    from bdnn_hw import finn_env
    d = tmp_path_factory.mktemp("finn_build")
    finn_env.ensure_finn(d)
    return d


@pytest.fixture(scope="session")
def shipped_frontend(tmp_path_factory, finn_build_dir):
    from bdnn_hw.flow import run_frontend
    model = REPO / "models" / "bdnn4"
    if not (model / "model.npz").exists():
        pytest.fail("models/bdnn4/model.npz is missing: the project must ship a trained BDNN4")
    return run_frontend(model, tmp_path_factory.mktemp("bdnn4_frontend"), progress=False)
