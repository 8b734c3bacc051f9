"""`bdnn live` on a short video the test builds from FER2013 faces pasted into frames.

The clip (written to a tmp folder only, lossless FFV1) has a known label sequence: segments of one
face, two faces and no face. Its faces are chosen so that each is found exactly once, in its slot,
and the still-image path (detect_faces + classify_faces, what `bdnn predict --detect` runs) gives
the cpu backend's prediction of the original 48x48 face: the expected labels are those
predictions, fixed before the run. The labels the run reports must equal them.
"""
import json

import numpy as np
import pytest

from bdnn.cli import main
from bdnn.data import CLASS_NAMES
from bdnn.live import CLASS_COLOURS, STAGES
from conftest import need

SIZE = 144                   # faces pasted 3x enlarged
FRAME = (240, 400)           # rows, cols
SLOTS = ((24, 48), (232, 48))  # (x, y) of the two face slots
PER_SEGMENT = 3              # identical frames per segment
PLAN = ((0,), (0, 1), (), (0,), (0, 1))  # slots filled in each segment


def _cv2():
    try:
        import cv2
    except ImportError as e:
        need(False, f"OpenCV is not installed (the demo extra): {e}")
    return cv2


def paste(cv2, faces_in_slots) -> np.ndarray:
    frame = np.full(FRAME, 128, np.uint8)
    for slot, face in faces_in_slots:
        x, y = SLOTS[slot]
        frame[y:y + SIZE, x:x + SIZE] = cv2.resize(face, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    return frame


def slot_of(box) -> int:
    return int(box[0] + box[2] / 2 > FRAME[1] / 2)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, fer):
    """(video path, expected [{slot: label}] per frame, the frames)."""
    cv2 = _cv2()
    from bdnn.backends import get_backend
    from bdnn.faces import detect_faces
    from bdnn.predict import classify_faces
    cpu = get_backend("cpu")
    pool = iter(fer.split("PrivateTest")[0][:400])
    expected, frames, used = [], [], []
    for slots in PLAN:
        for _ in range(200):  # draw faces until this segment's frame reads back exactly
            faces = [next(pool) for _ in slots]
            frame = paste(cv2, list(zip(slots, faces)))
            want = {s: classify_faces(cpu, f[None])[0].name for s, f in zip(slots, faces)}
            found = detect_faces(frame)
            got = {slot_of(f.box): p.name for f, p in zip(found, classify_faces(cpu, np.stack([f.face for f in found])))} \
                if found else {}
            if len(found) == len(slots) and got == want and not set(want.values()) & set(used[-1:]):
                break
        else:
            pytest.fail("no FER2013 faces found for the clip")
        used += list(want.values())
        expected += [want] * PER_SEGMENT
        frames += [frame] * PER_SEGMENT
    assert len(set(used)) >= 3, used  # a sequence that tells labels apart
    path = tmp_path_factory.mktemp("clip") / "faces.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (FRAME[1], FRAME[0]))
    assert w.isOpened()
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    w.release()
    return path, expected, frames


def test_live_labels_match_the_cpu_backend_on_a_known_sequence(clip, tmp_path, capsys):
    cv2 = _cv2()
    video, expected, frames = clip
    out = tmp_path / "annotated.mkv"  # lossless, so the drawing can be checked pixel by pixel
    assert main(["live", "--video", str(video), "--json", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    lines = [json.loads(line) for line in cap.out.splitlines()]
    summary = lines.pop()["summary"]
    assert [r["frame"] for r in lines] == list(range(len(expected)))
    for r, want in zip(lines, expected):
        assert {slot_of(f["box"]): f["label"] for f in r["faces"]} == want, r["frame"]
        assert all(f["smoothed"] in CLASS_NAMES and set(f["scores"]) == set(CLASS_NAMES) for f in r["faces"])
    # a face keeps its track (and smoothed bar) through its segment
    seg = [[f["track"] for f in r["faces"]] for r in lines[3:6]]
    assert seg[0] == seg[1] == seg[2] and len(set(seg[0])) == 2
    n_faces = sum(len(w) for w in expected)
    assert summary["frames"] == len(expected) and summary["faces"] == n_faces
    assert summary["frames_without_face"] == PER_SEGMENT
    assert summary["faces_per_s"] > 0 and set(summary["ms_per_frame"]) == set(STAGES)
    assert "no face found (the run goes on)" in cap.err
    print(f"\nlive, cpu backend (bdnn4): {summary['frames_per_s']:.1f} frames/s, {summary['faces_per_s']:.1f} faces/s; "
          + ", ".join(f"{k} {v:.1f} ms/frame" for k, v in summary["ms_per_frame"].items()))
    # the annotated video: every frame, each face's box drawn in its label's colour
    got = read_frames(cv2, out)
    assert len(got) == len(frames) and got[0].shape == (*FRAME, 3)
    for r, ann in zip(lines, got):
        for f in r["faces"]:
            x, y, w, h = f["box"]
            colour = CLASS_COLOURS[CLASS_NAMES.index(f["label"])]
            assert tuple(ann[y + h // 2, x]) == colour and tuple(ann[y + h, x + w // 2]) == colour, r["frame"]
    # and as MPEG-4 (lossy): all frames, the source's size
    assert main(["live", "--video", str(video), "--out", str(tmp_path / "annotated.mp4")]) == 0
    assert "annotated video: " in capsys.readouterr().out
    got = read_frames(cv2, tmp_path / "annotated.mp4")
    assert len(got) == len(frames) and got[0].shape == (*FRAME, 3)


def read_frames(cv2, path):
    rd, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = rd.read()
        if not ok:
            return out
        out.append(f)


@pytest.mark.parametrize("args,message", [
    (["--camera", "97"], "camera 97"),
    (["--video", "{tmp}/missing.mp4"], "missing.mp4: no such video file"),
    (["--video", "{tmp}/notes.avi"], ("notes.avi: OpenCV cannot open it as a video", "notes.avi: no frame could be read")),
    (["--video", "{clip}", "--out", "{tmp}/a.gif"], "write .mp4, .avi or .mkv"),
    (["--video", "{clip}", "--smooth", "0"], "--smooth must be in (0, 1]"),
], ids=["no-camera", "missing-video", "not-a-video", "bad-output", "bad-smoothing"])
def test_bad_input_is_a_clear_error(clip, tmp_path, capsys, args, message):
    _cv2()
    (tmp_path / "notes.avi").write_text("not a video")
    args = [a.format(tmp=tmp_path, clip=clip[0]) for a in args]
    assert main(["live", *args]) == 2
    err = capsys.readouterr().err
    messages = message if isinstance(message, tuple) else (message,)  # OpenCV builds differ on where they fail
    assert "bdnn live: error: " in err and any(m in err for m in messages) and "Traceback" not in err, err


def test_show_without_a_gui_says_what_to_do_instead(clip, capsys):
    import re
    cv2 = _cv2()
    if not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        pytest.skip("this OpenCV has a GUI: --show would open a window")
    assert main(["live", "--video", str(clip[0]), "--show"]) == 2
    assert "--show needs an OpenCV with a GUI" in capsys.readouterr().err
