"""The BDNN family, defined once.

Every consumer (the Brevitas module, the compact artifact, the QONNX export, the FINN flow and the
fast integer engine) builds the network from an :class:`ArchSpec`. This module is numpy-free and
torch-free so the on-board path can import it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

CROP_SIZE = 42
NUM_CLASSES = 7


@dataclass(frozen=True)
class ArchSpec:
    """A binarized (dense) CNN of the paper's family.

    Each block is two 3x3 binary convs (conv -> BN -> sign), both with ``channels`` outputs.
    A dense block outputs the channel concat of both convs (2*channels); a plain block outputs
    conv2 only. Every block ends in a 2x2 max-pool. Padding is -1 on +-1 activations (and 0 on raw
    pixels, which equals -1 after normalization), so the hardware computes exactly what is trained.
    """

    name: str
    block_channels: tuple[int, ...]
    dense: bool = True
    fc_hidden: tuple[int, ...] = (1024, 1024)
    num_classes: int = NUM_CLASSES
    in_size: int = CROP_SIZE
    in_channels: int = 1
    kernel: int = 3
    pad: int = 1
    pool: int = 2
    # hardware-aware variants: an extra max-pool after the last block (e.g. 2 turns BDNN4's 2x2 map
    # into a global max-pool, shrinking FC1 by 4x); 1 = none, as in the paper
    final_pool: int = 1

    def __post_init__(self):
        if not self.block_channels:
            raise ValueError("an architecture needs at least one block")
        if any(c <= 0 for c in self.block_channels) or any(f <= 0 for f in self.fc_hidden):
            raise ValueError(f"{self.name}: channel and FC sizes must be positive")
        if self.feature_size() < 1:
            raise ValueError(f"{self.name}: {len(self.block_channels)} pools shrink a {self.in_size}px input to nothing")

    # -- derived geometry -------------------------------------------------------------------
    def block_out_channels(self, i: int) -> int:
        c = self.block_channels[i]
        return 2 * c if self.dense else c

    def block_in_channels(self, i: int) -> int:
        return self.in_channels if i == 0 else self.block_out_channels(i - 1)

    def block_in_size(self, i: int) -> int:
        size = self.in_size
        for _ in range(i):
            size //= self.pool
        return size

    def feature_size(self) -> int:
        """Spatial size after the last pool (and the optional final pool)."""
        return self.block_in_size(len(self.block_channels)) // self.final_pool

    def flat_features(self) -> int:
        return self.block_out_channels(len(self.block_channels) - 1) * self.feature_size() ** 2

    def conv_layers(self) -> list[tuple[str, int, int, int]]:
        """(name, in_channels, out_channels, input size) of every conv, in order."""
        out = []
        for i, c in enumerate(self.block_channels):
            size = self.block_in_size(i)
            out.append((f"block{i + 1}.conv1", self.block_in_channels(i), c, size))
            out.append((f"block{i + 1}.conv2", c, c, size))
        return out

    def fc_layers(self) -> list[tuple[str, int, int]]:
        """(name, in_features, out_features) of every FC, the classifier last."""
        sizes = [self.flat_features(), *self.fc_hidden, self.num_classes]
        return [(f"fc{j + 1}", sizes[j], sizes[j + 1]) for j in range(len(sizes) - 1)]

    def layer_names(self) -> list[str]:
        """Every weight layer's name in network order: the convs, then the FCs (the classifier
        last). The artifact, the Brevitas module, the engine and the FINN roles all use these."""
        return [n for n, *_ in self.conv_layers()] + [n for n, *_ in self.fc_layers()]

    def sign_layer_names(self) -> list[str]:
        """The layers followed by BatchNorm + sign (all but the classifier)."""
        return self.layer_names()[:-1]

    def weight_bits(self) -> int:
        conv = sum(ci * co * self.kernel ** 2 for _, ci, co, _ in self.conv_layers())
        return conv + sum(i * o for _, i, o in self.fc_layers())

    def macs_per_crop(self) -> int:
        conv = sum(ci * co * self.kernel ** 2 * s * s for _, ci, co, s in self.conv_layers())
        return conv + sum(i * o for _, i, o in self.fc_layers())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["block_channels"] = list(self.block_channels)
        d["fc_hidden"] = list(self.fc_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArchSpec":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["block_channels"] = tuple(known["block_channels"])
        known["fc_hidden"] = tuple(known.get("fc_hidden", (1024, 1024)))
        return cls(**known)


ARCHS: dict[str, ArchSpec] = {
    "bdnn2": ArchSpec("bdnn2", (64, 128)),
    "bdnn3": ArchSpec("bdnn3", (64, 128, 256)),
    "bdnn4": ArchSpec("bdnn4", (64, 128, 256, 512)),
    "bcnn4": ArchSpec("bcnn4", (64, 128, 256, 512), dense=False),
    # hardware-aware variant for PYNQ-Z2 (4.9 Mbit of BRAM): block 4 at 256 channels, so the convs
    # (3.3 Mbit) stay on chip and FC1 (2048 -> 1024) streams from DDR at 256 KiB per crop
    "bdnn4-hw": ArchSpec("bdnn4-hw", (64, 128, 256, 256)),
    # the first variant tried: also a global max-pool before FC1 (2048 -> 512 inputs). Same FINN
    # estimates, but the max of 2x2 +-1 values is mostly +1 and it trained much worse (31% PublicTest
    # after 3 of 6 epochs vs 44% without the pool, same recipe), so it is kept only for the record
    "bdnn4-hw-gp": ArchSpec("bdnn4-hw-gp", (64, 128, 256, 256), final_pool=2),
}


# full-precision teachers for knowledge distillation (bdnn.teacher): VGG-style, never on the hardware
# path; "widths": the channels of the stages of two 3x3 convs, "fc": the hidden FC width
TEACHER_ARCHS: dict[str, dict] = {
    "teacher-vgg": {"widths": (64, 128, 256), "fc": 256},
    "teacher-vgg-small": {"widths": (16, 32, 64), "fc": 64},  # a cheap proxy (and the tests' teacher)
    # four stages, as the VGG-style FER2013 networks that reach 72-73 % (a stronger teacher)
    "teacher-vgg-wide": {"widths": (64, 128, 256, 512), "fc": 1024},
}


def is_teacher(name: str) -> bool:
    return name.lower() in TEACHER_ARCHS


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHS)}") from None
