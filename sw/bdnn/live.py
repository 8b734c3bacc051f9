"""Live demo: camera or video frames -> faces -> five crops -> backend -> annotated frames.

    bdnn live --camera 0 [--backend pynq] [--show]
    bdnn live --video clip.mp4 --out annotated.mp4 [--json]

Each frame: OpenCV's Haar cascade finds the faces (``detect``); each face is cropped with a margin,
resized to 48x48 and cut into the paper's five 42x42 crops (``preprocess``); one backend call
scores every crop of the frame (``accelerator``); the five crops' scores are averaged per face, the
face is matched to the previous frame's faces (box overlap) for a smoothed score bar, and boxes,
labels, bars and the frame rate are drawn (``draw``). Headless, the annotated frames go to
``--out``; ``--show`` opens a window (needs an OpenCV with a GUI and a display).

OpenCV (the ``demo`` extra, or the PYNQ image's own) is imported only when a run starts.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .combine import combine_scores
from .data import CLASS_NAMES
from .errors import BdnnError, require
from .preprocess import five_crops

STAGES = ("detect", "preprocess", "accelerator", "draw")
# BGR colour per class: angry, disgust, fear, happy, sad, surprise, neutral
CLASS_COLOURS = ((40, 40, 230), (40, 150, 40), (160, 60, 160), (40, 200, 240), (200, 110, 40), (230, 200, 40),
                 (190, 190, 190))
WRITERS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}


class VideoError(BdnnError, RuntimeError):
    """No camera, an unreadable video, an output that cannot be written."""


def _cv2():
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # our messages say what went wrong, not V4L2's
    return require("cv2", "bdnn live")


def open_source(camera: int | None = None, video: str | Path | None = None):
    """An opened cv2.VideoCapture and a name for it; VideoError saying why not otherwise."""
    cv2 = _cv2()
    if video is not None:
        path = Path(video)
        if not path.is_file():
            raise VideoError(f"{video}: no such video file")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise VideoError(f"{video}: OpenCV cannot open it as a video (not a video file, or an unknown codec)")
        return cap, str(video)
    if camera is None:
        raise VideoError("give a source: --camera N or --video FILE")
    if sys.platform.startswith("linux") and not Path(f"/dev/video{camera}").exists():
        raise VideoError(f"camera {camera}: no /dev/video{camera} here (is a USB camera plugged in? "
                         "try another --camera N, or --video FILE)")
    cap = cv2.VideoCapture(int(camera))
    if not cap.isOpened():
        raise VideoError(f"camera {camera} could not be opened (in use by another program? try another --camera N, "
                         "or --video FILE)")
    return cap, f"camera {camera}"


def softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


@dataclass
class Track:
    id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray          # smoothed class probabilities


@dataclass
class Tracker:
    """Matches each frame's faces to the previous frame's by box overlap; smooths their scores
    with an exponential moving average (``alpha`` = weight of the newest frame)."""
    alpha: float = 0.5
    min_iou: float = 0.3
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def update(self, boxes, probs) -> list[Track]:
        old, out = list(self.tracks), []
        for box, p in zip(boxes, probs):
            best = max(old, key=lambda t: iou(t.box, box), default=None)
            if best is not None and iou(best.box, box) >= self.min_iou:
                old.remove(best)
                out.append(Track(best.id, box, self.alpha * p + (1 - self.alpha) * best.probs))
            else:
                out.append(Track(self.next_id, box, np.asarray(p, dtype=np.float64)))
                self.next_id += 1
        self.tracks = out
        return out


def draw_face(cv2, frame, box, label: int, track: Track) -> None:
    """Box and label in the class colour, and the smoothed score bar under the box."""
    x, y, w, h = box
    top = int(track.probs.argmax())
    colour = CLASS_COLOURS[label % len(CLASS_COLOURS)]
    thick = max(2, frame.shape[1] // 320)
    cv2.rectangle(frame, (x, y), (x + w, y + h), colour, thick)
    text = CLASS_NAMES[label]
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    ty = max(th + 4, y)
    cv2.rectangle(frame, (x, ty - th - 4), (x + tw + 6, ty), colour, -1)
    cv2.putText(frame, text, (x + 3, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    by = min(frame.shape[0] - 8, y + h + 4)
    cv2.rectangle(frame, (x, by), (x + w, by + 7), (60, 60, 60), -1)
    cv2.rectangle(frame, (x, by), (x + int(round(w * float(track.probs[top]))), by + 7),
                  CLASS_COLOURS[top % len(CLASS_COLOURS)], -1)
    cv2.putText(frame, f"{CLASS_NAMES[top]} {track.probs[top]:.0%}", (x, min(frame.shape[0] - 2, by + 19)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


def draw_stats(cv2, frame, lines: list[str]) -> None:
    y = 4
    for line in lines:
        (tw, th), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(frame, (4, y), (12 + tw, y + th + 8), (0, 0, 0), -1)
        cv2.putText(frame, line, (8, y + th + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        y += th + 10


@dataclass
class Stats:
    frames: int = 0
    faces: int = 0
    frames_without_face: int = 0
    seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall: float = 0.0

    def lines(self) -> list[str]:
        n = max(self.frames, 1)
        fps = self.frames / self.wall if self.wall else 0.0
        return [f"{fps:.1f} frames/s  {self.faces / self.wall if self.wall else 0.0:.1f} faces/s",
                " | ".join(f"{k} {1e3 * v / n:.1f}" for k, v in self.seconds.items()) + " ms/frame"]

    def summary(self, source: str, backend: str) -> dict:
        n = max(self.frames, 1)
        return {"source": source, "backend": backend, "frames": self.frames, "faces": self.faces,
                "frames_without_face": self.frames_without_face, "seconds": round(self.wall, 3),
                "frames_per_s": self.frames / self.wall if self.wall else 0.0,
                "faces_per_s": self.faces / self.wall if self.wall else 0.0,
                "ms_per_frame": {k: 1e3 * v / n for k, v in self.seconds.items()},
                "ms_per_face": {k: 1e3 * v / max(self.faces, 1) for k, v in self.seconds.items()}}


def open_writer(cv2, out: str | Path, fps: float, size: tuple[int, int]):
    out = Path(out)
    fourcc = WRITERS.get(out.suffix.lower())
    if fourcc is None:
        raise VideoError(f"{out}: write .mp4, .avi or .mkv")
    out.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not w.isOpened():
        raise VideoError(f"{out}: OpenCV cannot write a {fourcc} video here")
    return w


def run_live(backend, camera: int | None = None, video: str | Path | None = None, out: str | Path | None = None,
             show: bool = False, frames: int = 0, json_lines: bool = False, min_face: int = 30,
             smooth: float = 0.5, fps: float | None = None, log=print) -> dict:
    """Run the demo until the source ends, ``frames`` frames, Ctrl-C or (``show``) the q key.

    ``json_lines``: one JSON object per frame (faces, boxes, labels, scores) through ``log``.
    Returns the summary: frames, faces, frames/s, faces/s and the time per stage.
    """
    from .faces import crop_face, detect_boxes
    cv2 = _cv2()
    if not 0.0 < smooth <= 1.0:
        raise VideoError(f"--smooth must be in (0, 1], got {smooth}")
    cap, source = open_source(camera, video)
    writer, stats, tracker = None, Stats(), Tracker(alpha=smooth)
    note = (lambda m: print(f"note: {m}", file=sys.stderr))
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{source}: no frame could be read (unreadable or empty video, or a camera "
                             "that delivers nothing)")
        if show:
            try:
                cv2.namedWindow("bdnn live", cv2.WINDOW_NORMAL)
            except cv2.error:
                raise VideoError("--show needs an OpenCV with a GUI (opencv-python, not -headless) and a display; "
                                 "use --out FILE to write the annotated video instead") from None
        if out is not None:
            src_fps = cap.get(cv2.CAP_PROP_FPS)
            rate = fps or (src_fps if src_fps and math.isfinite(src_fps) and 0 < src_fps < 240 else 15.0)
            writer = open_writer(cv2, out, rate, (frame.shape[1], frame.shape[0]))
        t_start, last_report, last_faces = time.perf_counter(), time.perf_counter(), None
        while ok and frame is not None:
            t0 = time.perf_counter()
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            boxes = detect_boxes(gray, min_face)
            t1 = time.perf_counter()
            faces = np.stack([crop_face(gray, b) for b in boxes]) if boxes else np.zeros((0, 48, 48), np.uint8)
            crops = five_crops(faces)
            t2 = time.perf_counter()
            s5 = backend.crop_scores(crops)
            t3 = time.perf_counter()
            scores = combine_scores(s5, "mean") if boxes else np.zeros((0, len(CLASS_NAMES)))
            labels = scores.argmax(1) if boxes else []
            tracks = tracker.update(boxes, softmax(scores) if boxes else [])
            for box, label, track in zip(boxes, labels, tracks):
                draw_face(cv2, frame, box, int(label), track)
            stats.frames += 1
            stats.faces += len(boxes)
            stats.frames_without_face += not boxes
            stats.wall = time.perf_counter() - t_start
            draw_stats(cv2, frame, stats.lines())
            if writer is not None:
                writer.write(frame)
            if show:
                cv2.imshow("bdnn live", frame)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            t4 = time.perf_counter()
            for k, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                stats.seconds[k] += dt
            if json_lines:
                log(json.dumps({"frame": stats.frames - 1, "faces": [
                    {"box": list(b), "label": CLASS_NAMES[int(lab)], "track": t.id,
                     "smoothed": CLASS_NAMES[int(t.probs.argmax())],
                     "scores": dict(zip(CLASS_NAMES, np.round(s, 4).tolist()))}
                    for b, lab, t, s in zip(boxes, labels, tracks, scores)]}))
            if not boxes and last_faces != 0:
                note(f"frame {stats.frames - 1}: no face found (the run goes on)")
            last_faces = len(boxes)
            if not json_lines and time.perf_counter() - last_report > 2.0:
                last_report = time.perf_counter()
                log(f"frame {stats.frames}: {len(boxes)} face(s) {', '.join(CLASS_NAMES[int(v)] for v in labels)} | "
                    + stats.lines()[0])
            if frames and stats.frames >= frames:
                break
            ok, frame = cap.read()
        if not ok and camera is not None and not frames:
            note(f"{source} stopped delivering frames after {stats.frames} frames")
        stats.wall = time.perf_counter() - t_start
    except KeyboardInterrupt:
        note("interrupted; finishing the output")
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if show:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
    summary = stats.summary(source, backend.name)
    if out is not None:
        summary["out"] = str(out)
    return summary
