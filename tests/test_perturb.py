"""Perturbations (bdnn evaluate --perturb) and the training-time robustness augmentations."""
import json

import numpy as np
import pytest

from bdnn.perturb import (AUGMENTATIONS, PERTURBATIONS, PerturbError, brightness, contrast, jpeg, parse_names,
                          perturb, robust_augment, shift)


def _faces(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_primitives_do_what_they_say():
    f = _faces()
    assert (brightness(f, 300) == 255).all() and (brightness(f, -300) == 0).all()
    flat = contrast(f, 0.0)
    assert all(np.ptp(x) <= 1 for x in flat)  # every face collapses to its mean
    assert np.array_equal(contrast(f, 1.0), f)
    s = shift(f, 2, -3)
    assert np.array_equal(s[:, 2:, :-3], f[:, :-2, 3:])
    assert np.array_equal(s[:, 0], s[:, 1]) and np.array_equal(s[:, :, -1], s[:, :, -2])  # edges repeated
    assert np.array_equal(shift(f, 0, 0), f)
    per = shift(f[:2], [1, 0], [0, 1])  # per-face amounts
    assert np.array_equal(per[0, 1:], f[0, :-1]) and np.array_equal(per[1, :, 1:], f[1, :, :-1])
    j = jpeg(f, 30)
    assert j.dtype == np.uint8 and j.shape == f.shape and not np.array_equal(j, f)


def test_every_perturbation_is_deterministic_and_keeps_the_format(fer):
    faces = fer.split("PrivateTest")[0][:20]
    for name in PERTURBATIONS:
        a, b = perturb(faces, name, seed=1), perturb(faces, name, seed=1)
        assert a.dtype == np.uint8 and a.shape == faces.shape, name
        assert np.array_equal(a, b), name
        assert not np.array_equal(a, faces), name
        d = np.abs(a.astype(int) - faces).mean()
        assert 0 < d < 40, (name, d)  # a perturbation, not a different image
    assert not np.array_equal(perturb(faces, "noise-8", 1), perturb(faces, "noise-8", 2))
    with pytest.raises(PerturbError, match="unknown perturbation"):
        perturb(faces, "rotate-10")


def test_parse_names():
    assert parse_names("all", PERTURBATIONS) == list(PERTURBATIONS) == parse_names(None, PERTURBATIONS)
    assert parse_names("jpeg-30, shift-2", PERTURBATIONS) == ["jpeg-30", "shift-2"]
    with pytest.raises(PerturbError, match="unknown: nope"):
        parse_names("jpeg-30,nope", PERTURBATIONS)


def test_robust_augment_is_seeded_and_partial():
    f = _faces(200)
    a = robust_augment(f, list(AUGMENTATIONS), np.random.default_rng(5), prob=0.5)
    b = robust_augment(f, list(AUGMENTATIONS), np.random.default_rng(5), prob=0.5)
    assert np.array_equal(a, b) and a.dtype == np.uint8
    changed = (a != f).any(axis=(1, 2)).mean()
    assert 0.9 < changed <= 1.0  # six augmentations at p=0.5: almost every face is touched
    one = robust_augment(f, ["brightness"], np.random.default_rng(5), prob=0.3)
    assert 0.15 < (one != f).any(axis=(1, 2)).mean() < 0.45
    assert np.array_equal(robust_augment(f, [], np.random.default_rng(5)), f)
    with pytest.raises(PerturbError, match="unknown augmentation"):
        robust_augment(f, ["rotate"], np.random.default_rng(0))


def test_evaluate_perturb_cli(tiny_model, fer, tmp_path, capsys):
    from bdnn.cli import main
    out = tmp_path / "rob.json"
    assert main(["evaluate", "--model", str(tiny_model), "--limit", "40", "--perturb", "jpeg-30,shift-2",
                 "--json-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| clean |" in text and "| jpeg-30 (JPEG quality 30) |" in text and "largest drop:" in text
    rep = json.loads(out.read_text())
    assert rep["n"] == 40 and [r["name"] for r in rep["perturbations"]] == ["jpeg-30", "shift-2"]
    from bdnn.contract import model_sha256
    assert rep["model_sha256"] == model_sha256(tiny_model)
    for r in rep["perturbations"]:
        assert r["drop_points"] == pytest.approx(100 * (rep["clean"]["acc_fivecrop_mean"] - r["acc_fivecrop_mean"]), abs=0.01)
    # the clean row equals a plain evaluate of the same faces
    assert main(["evaluate", "--model", str(tiny_model), "--limit", "40", "--json-out", str(tmp_path / "plain.json")]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert plain["acc_fivecrop_mean"] == rep["clean"]["acc_fivecrop_mean"]
    assert main(["evaluate", "--model", str(tiny_model), "--limit", "5", "--perturb", "nope"]) == 2
    assert "unknown: nope" in capsys.readouterr().err
