"""Training checkpoints (latent weights, optimizer, schedule, RNG state, history): the format tag,
the error type, atomic save and a checked load. Used by training, teachers and shipping."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import BdnnError

CHECKPOINT_FORMAT = "bdnn-checkpoint-v1"


class CheckpointError(BdnnError, RuntimeError):
    """A missing, corrupt or mismatched training checkpoint."""


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: write a temp file, then rename over the target."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, pickle garbage, ...
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {e}") from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a BDNN training checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return state
