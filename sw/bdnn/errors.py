"""The project's errors: one base class, so callers (the CLI) catch by type.

Every error a user can cause or fix -- bad data, a bad model artifact, an unreadable image, a
backend that cannot run here, a bad checkpoint, a missing optional dependency -- is a
:class:`BdnnError`. Each subclass also keeps the builtin base it always had (``ValueError`` or
``RuntimeError``), so existing ``except ValueError`` code keeps working. Standard library only.
"""
from __future__ import annotations

import importlib


class BdnnError(Exception):
    """Base of every error this project raises on purpose; the message says what to do."""


class MissingExtraError(BdnnError, RuntimeError):
    """An optional dependency (torch, FINN, OpenCV, ...) is not installed."""


# which pip extra of bdnn-fer provides each optional top-level module
EXTRAS = {
    "torch": "train", "brevitas": "train", "tqdm": "train", "matplotlib": "train",
    "qonnx": "finn", "finn": "finn", "onnx": "finn",
    "cv2": "demo",
}


def require(module: str, what: str):
    """Import ``module`` or raise :class:`MissingExtraError` naming the pip extra to install.

    ``what`` is the feature that needs it, e.g. ``"bdnn train"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = EXTRAS.get(module.split(".")[0])
        how = f"pip install 'bdnn-fer[{extra}]'" if extra else f"pip install {module}"
        raise MissingExtraError(f"{what} needs {module.split('.')[0]}, which is not installed here ({e}); "
                                f"install it with: {how}") from None
