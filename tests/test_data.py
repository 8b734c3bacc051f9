"""Tests of sw/bdnn/data.py (FER2013 loading). All inputs are small synthetic files
in tmp_path, except one test that reads the real npz when it is present."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image

from bdnn import data
from bdnn.data import CLASS_NAMES, FACE_SIZE, SPLITS, DataError, FER2013, load_fer2013

NPIX = FACE_SIZE * FACE_SIZE


# --------------------------------------------------------------------------- helpers


def _faces(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, size=(n, FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    faces[0, 0, :3] = (0, 255, 7)  # make sure the extremes are present
    return faces


def _pix_str(face: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in face.ravel())


def _write_csv(path: pathlib.Path, rows, header="emotion,pixels,Usage") -> pathlib.Path:
    lines = [header] + [f"{e},{p},{u}" for e, p, u in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _good_rows(n: int = 4):
    faces = _faces(n)
    usages = ["Training", "PublicTest", "PrivateTest", "Training"]
    return [(i % 7, _pix_str(faces[i]), usages[i % 4]) for i in range(n)], faces


def _save_face(path: pathlib.Path, face: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(face)
    if mode != "L":
        im = im.convert(mode)
    im.save(path)


def _expect(exc_info, *parts: str) -> None:
    msg = str(exc_info.value)
    for part in parts:
        assert part in msg, f"{part!r} not in message {msg!r}"


# --------------------------------------------------------------------------- constants / record


def test_constants():
    assert CLASS_NAMES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert SPLITS == ("Training", "PublicTest", "PrivateTest")
    assert FACE_SIZE == 48
    assert issubclass(DataError, ValueError)


def test_split_unknown_name_lists_valid(tmp_path):
    rec = FER2013(
        pixels=np.zeros((2, 48, 48), np.uint8),
        labels=np.array([0, 1], np.uint8),
        usage=np.array([0, 2], np.uint8),
        source="mem",
    )
    with pytest.raises(DataError) as ei:
        rec.split("Trainig")
    _expect(ei, "Trainig", "Training", "PublicTest", "PrivateTest")
    assert rec.counts() == {"Training": 1, "PublicTest": 0, "PrivateTest": 1}
    assert rec.split("PublicTest")[0].shape == (0, 48, 48)


# --------------------------------------------------------------------------- CSV


def test_csv_round_trip(tmp_path):
    rows, faces = _good_rows(4)
    f = _write_csv(tmp_path / "fer2013.csv", rows)
    d = load_fer2013(f)
    assert d.source == str(f)
    assert d.pixels.dtype == np.uint8 and d.pixels.shape == (4, 48, 48)
    assert np.array_equal(d.pixels, faces)
    assert d.labels.tolist() == [0, 1, 2, 3] and d.labels.dtype == np.uint8
    assert d.usage.tolist() == [0, 1, 2, 0] and d.usage.dtype == np.uint8
    assert d.counts() == {"Training": 2, "PublicTest": 1, "PrivateTest": 1}
    px, lb = d.split("Training")
    assert np.array_equal(px, faces[[0, 3]]) and lb.tolist() == [0, 3]
    px, lb = d.split("PrivateTest")
    assert np.array_equal(px, faces[[2]]) and lb.tolist() == [2]


def test_csv_columns_any_order_and_case(tmp_path):
    rows, faces = _good_rows(2)
    f = tmp_path / "reordered.csv"
    f.write_text("USAGE,Pixels,Emotion\n" + "".join(f"{u},{p},{e}\n" for e, p, u in rows))
    d = load_fer2013(f)
    assert np.array_equal(d.pixels, faces)
    assert d.labels.tolist() == [0, 1] and d.usage.tolist() == [0, 1]


def test_csv_wrong_pixel_count(tmp_path):
    rows, _ = _good_rows(3)
    rows[1] = (rows[1][0], " ".join(rows[1][1].split()[:-1]), rows[1][2])
    f = _write_csv(tmp_path / "short.csv", rows)
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "row 2", "line 3", str(NPIX - 1))


def test_csv_non_numeric_pixel(tmp_path):
    rows, _ = _good_rows(3)
    toks = rows[2][1].split()
    toks[5] = "x7"
    rows[2] = (rows[2][0], " ".join(toks), rows[2][2])
    f = _write_csv(tmp_path / "nonnum.csv", rows)
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "row 3", "line 4", "'x7'")


def test_csv_pixel_out_of_range(tmp_path):
    rows, _ = _good_rows(2)
    toks = rows[0][1].split()
    toks[0] = "256"
    rows[0] = (rows[0][0], " ".join(toks), rows[0][2])
    f = _write_csv(tmp_path / "range.csv", rows)
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "row 1", "line 2", "256", "0..255")


def test_csv_unknown_usage(tmp_path):
    rows, _ = _good_rows(3)
    rows[1] = (rows[1][0], rows[1][1], "Validation")
    f = _write_csv(tmp_path / "usage.csv", rows)
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "row 2", "'Validation'", "Training", "PublicTest", "PrivateTest")


@pytest.mark.parametrize("bad", ["7", "-1", "happy"])
def test_csv_label_out_of_range(tmp_path, bad):
    rows, _ = _good_rows(3)
    rows[2] = (bad, rows[2][1], rows[2][2])
    f = _write_csv(tmp_path / "label.csv", rows)
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "row 3", "line 4", "emotion", bad)


def test_csv_empty_file(tmp_path):
    f = tmp_path / "empty.csv"
    f.write_text("")
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "empty")


def test_csv_header_only(tmp_path):
    f = _write_csv(tmp_path / "header.csv", [])
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "no data rows")


def test_csv_missing_column(tmp_path):
    f = tmp_path / "nousage.csv"
    f.write_text("emotion,pixels\n0," + " ".join(["1"] * NPIX) + "\n")
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "'usage'", "line 1")


def test_csv_wrong_field_count(tmp_path):
    rows, _ = _good_rows(2)
    f = tmp_path / "fields.csv"
    f.write_text("emotion,pixels,Usage\n" + f"{rows[0][0]},{rows[0][1]},{rows[0][2]}\n0,1 2 3\n")
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), "row 2", "line 3", "2 fields")


# --------------------------------------------------------------------------- dispatch / paths


def test_missing_path(tmp_path):
    p = tmp_path / "nope" / "fer2013.npz"
    with pytest.raises(DataError) as ei:
        load_fer2013(p)
    _expect(ei, str(p), "does not exist")


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "fer.txt"
    p.write_text("hello")
    with pytest.raises(DataError) as ei:
        load_fer2013(p)
    _expect(ei, str(p), ".txt")


def test_env_var_honoured(tmp_path, monkeypatch):
    rows, faces = _good_rows(2)
    f = _write_csv(tmp_path / "env.csv", rows)
    monkeypatch.setenv("FER2013_PATH", str(f))
    assert data.default_data_path() == f
    d = load_fer2013()
    assert d.source == str(f) and np.array_equal(d.pixels, faces)
    # set but missing: returned as is, and loading names it
    missing = tmp_path / "missing.npz"
    monkeypatch.setenv("FER2013_PATH", str(missing))
    assert data.default_data_path() == missing
    with pytest.raises(DataError) as ei:
        load_fer2013()
    _expect(ei, str(missing))


def test_no_path_anywhere(monkeypatch):
    monkeypatch.delenv("FER2013_PATH", raising=False)
    monkeypatch.setattr(data, "default_data_path", lambda: None)
    with pytest.raises(DataError) as ei:
        load_fer2013()
    _expect(ei, "--data", "FER2013_PATH")


# --------------------------------------------------------------------------- npz


def test_npz_round_trip(tmp_path):
    faces = _faces(5, seed=3)
    labels = np.array([6, 0, 3, 3, 1], np.uint8)
    usage = np.array([0, 0, 1, 2, 2], np.uint8)
    f = tmp_path / "small.npz"
    np.savez_compressed(f, pixels=faces, labels=labels, usage=usage)
    d = load_fer2013(f)
    assert np.array_equal(d.pixels, faces) and d.pixels.dtype == np.uint8
    assert np.array_equal(d.labels, labels) and np.array_equal(d.usage, usage)
    assert d.counts() == {"Training": 2, "PublicTest": 1, "PrivateTest": 2}
    px, lb = d.split("PrivateTest")
    assert np.array_equal(px, faces[3:]) and lb.tolist() == [3, 1]
    # int64 arrays holding values in range are converted
    f2 = tmp_path / "ints.npz"
    np.savez(f2, pixels=faces.astype(np.int64), labels=labels.astype(np.int64), usage=usage.astype(np.int32))
    d2 = load_fer2013(f2)
    assert np.array_equal(d2.pixels, faces) and d2.labels.dtype == np.uint8


@pytest.mark.parametrize(
    "change, part",
    [
        (dict(labels=np.array([0, 7], np.uint8)), "'labels'"),
        (dict(usage=np.array([0, 3], np.uint8)), "'usage'"),
        (dict(pixels=np.zeros((2, 48, 47), np.uint8)), "'pixels'"),
        (dict(pixels=np.full((2, 48, 48), 300, np.int64)), "'pixels'"),
        (dict(labels=np.array([0, 1, 2], np.uint8)), "lengths"),
        (dict(usage=None), "'usage'"),
    ],
)
def test_npz_bad_arrays(tmp_path, change, part):
    arrays = dict(pixels=np.zeros((2, 48, 48), np.uint8), labels=np.array([0, 1], np.uint8),
                  usage=np.array([0, 1], np.uint8))
    arrays.update(change)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    f = tmp_path / "bad.npz"
    np.savez(f, **arrays)
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f), part)


def test_npz_corrupt(tmp_path):
    f = tmp_path / "corrupt.npz"
    f.write_bytes(b"not a zip at all")
    with pytest.raises(DataError) as ei:
        load_fer2013(f)
    _expect(ei, str(f))


# --------------------------------------------------------------------------- image folders


def test_folders_train_test_naming(tmp_path):
    faces = _faces(5, seed=1)
    root = tmp_path / "imgs"
    _save_face(root / "train" / "happy" / "b.png", faces[0])
    _save_face(root / "train" / "happy" / "a.PNG", faces[1])
    _save_face(root / "train" / "Angry" / "z.png", faces[2])
    _save_face(root / "test" / "sad" / "PublicTest_001.png", faces[3])
    _save_face(root / "test" / "sad" / "PrivateTest_002.png", faces[4])
    (root / "train" / "happy" / "notes.txt").write_text("ignored")
    d = load_fer2013(root)
    assert d.source == str(root)
    assert d.counts() == {"Training": 3, "PublicTest": 1, "PrivateTest": 1}
    # sorted by usage, then class index, then path
    assert d.usage.tolist() == [0, 0, 0, 1, 2]
    assert d.labels.tolist() == [0, 3, 3, 4, 4]
    assert np.array_equal(d.pixels, faces[[2, 1, 0, 3, 4]])
    px, lb = d.split("PublicTest")
    assert np.array_equal(px, faces[[3]]) and lb.tolist() == [4]
    # deterministic
    d2 = load_fer2013(root)
    assert np.array_equal(d2.pixels, d.pixels) and np.array_equal(d2.labels, d.labels)


def test_folders_usage_naming_and_digit_classes(tmp_path):
    faces = _faces(3, seed=2)
    root = tmp_path / "imgs"
    _save_face(root / "Training" / "0" / "x.png", faces[0])
    _save_face(root / "PublicTest" / "6" / "y.png", faces[1])
    _save_face(root / "PrivateTest" / "5" / "z.png", faces[2])
    (root / "README").mkdir()  # unrelated folders in the root are ignored
    d = load_fer2013(root)
    assert d.usage.tolist() == [0, 1, 2]
    assert d.labels.tolist() == [0, 6, 5]
    assert np.array_equal(d.pixels, faces)


def test_folders_jpeg(tmp_path):
    root = tmp_path / "imgs"
    face = np.full((48, 48), 128, np.uint8)
    _save_face(root / "val" / "fear" / "a.JPG", face)
    _save_face(root / "val" / "fear" / "b.jpeg", face)
    d = load_fer2013(root)
    assert d.counts()["PublicTest"] == 2 and d.labels.tolist() == [2, 2]
    assert np.abs(d.pixels.astype(int) - 128).max() <= 1


def test_folders_wrong_size(tmp_path):
    root = tmp_path / "imgs"
    _save_face(root / "train" / "happy" / "ok.png", _faces(1)[0])
    big = root / "train" / "happy" / "big.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(big)
    with pytest.raises(DataError) as ei:
        load_fer2013(root)
    _expect(ei, str(big), "64x64", "48x48 grayscale")


def test_folders_rgb(tmp_path):
    root = tmp_path / "imgs"
    rgb = root / "test" / "neutral" / "rgb.png"
    _save_face(rgb, _faces(1)[0], mode="RGB")
    with pytest.raises(DataError) as ei:
        load_fer2013(root)
    _expect(ei, str(rgb), "48x48 RGB", "mode L")


def test_folders_corrupt_image(tmp_path):
    root = tmp_path / "imgs"
    good = root / "train" / "sad" / "good.png"
    _save_face(good, _faces(1)[0])
    bad = root / "train" / "sad" / "truncated.png"
    bad.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DataError) as ei:
        load_fer2013(root)
    _expect(ei, str(bad))
    junk = root / "train" / "sad" / "truncated.png"
    junk.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError) as ei:
        load_fer2013(root)
    _expect(ei, str(junk))


def test_folders_unknown_class(tmp_path):
    root = tmp_path / "imgs"
    _save_face(root / "train" / "contempt" / "a.png", _faces(1)[0])
    with pytest.raises(DataError) as ei:
        load_fer2013(root)
    _expect(ei, str(root / "train" / "contempt"), "'contempt'")


def test_folders_no_splits_or_no_images(tmp_path):
    root = tmp_path / "flat"
    _save_face(root / "happy" / "a.png", _faces(1)[0])
    with pytest.raises(DataError) as ei:
        load_fer2013(root)
    _expect(ei, str(root), "no split folders", "happy")
    root2 = tmp_path / "empty"
    (root2 / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataError) as ei:
        load_fer2013(root2)
    _expect(ei, str(root2), "no images")


def test_load_writes_nothing(tmp_path):
    rows, _ = _good_rows(2)
    _write_csv(tmp_path / "a.csv", rows)
    _save_face(tmp_path / "imgs" / "train" / "sad" / "a.png", _faces(1)[0])
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    load_fer2013(tmp_path / "a.csv")
    load_fer2013(tmp_path / "imgs")
    after = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    assert before == after


# --------------------------------------------------------------------------- real data


def test_real_npz_counts(fer):
    d = fer  # the shared FER2013 (conftest: required under CI, skipped with the reason elsewhere)
    assert d.counts() == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert len(d) == 35887
    assert d.labels[0] == 0 and d.usage[0] == 0
    assert d.pixels[0].ravel()[:5].tolist() == [70, 80, 82, 72, 58]
