"""The BDNN family as a Brevitas module, built from an :class:`~bdnn.arch.ArchSpec`.

Input: raw pixels (N,1,42,42) as floats 0..255. The module pads the raw pixels with 0 (equal to
-1 after normalization), normalizes with (2x-255)/255 and runs a binary-weight conv on it; every
later activation is sign(BN(.)) in {-1,+1} and padded with -1 -- the value FINN's hardware pads
binary streams with. The classifier is a binary FC followed by BatchNorm (no sign): its output
is the class score.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from torch import nn

from .arch import CROP_SIZE, ArchSpec
from .preprocess import normalize


class BinaryWeight(SignedBinaryWeightPerTensorConst):
    """Weights exactly +-1 (Brevitas' default binary weight scale is 0.1). The quantizer clamps
    the latent weights to [-1, 1] in place, as BinaryConnect does."""
    scaling_const = 1.0


def binary_conv(cin: int, cout: int, k: int, binary: bool = True) -> QuantConv2d:
    """``binary=False``: real weights (the latent-weight stage of two-stage training); same state dict."""
    return QuantConv2d(cin, cout, k, padding=0, bias=False, weight_quant=BinaryWeight if binary else None)


def binary_linear(fin: int, fout: int, binary: bool = True) -> QuantLinear:
    return QuantLinear(fin, fout, bias=False, weight_quant=BinaryWeight if binary else None)


def sign_act() -> QuantIdentity:
    # Clamped sign: forward sign (+1 for x >= 0), backward straight-through inside [-1, 1].
    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


class BinaryBlock(nn.Module):
    """Two conv -> BN -> sign layers, optional dense concat, 2x2 max-pool."""

    def __init__(self, cin: int, channels: int, dense: bool, kernel: int, pad: int, pool: int, binary: bool = True):
        super().__init__()
        self.dense, self.pad = dense, pad
        self.conv1, self.bn1, self.act1 = binary_conv(cin, channels, kernel, binary), nn.BatchNorm2d(channels), sign_act()
        self.conv2, self.bn2, self.act2 = binary_conv(channels, channels, kernel, binary), nn.BatchNorm2d(channels), sign_act()
        self.pool = nn.MaxPool2d(pool)

    def forward(self, x: torch.Tensor, already_padded: bool = False) -> torch.Tensor:
        if not already_padded:
            x = F.pad(x, [self.pad] * 4, value=-1.0)
        a1 = self.act1(self.bn1(self.conv1(x)))
        a2 = self.act2(self.bn2(self.conv2(F.pad(a1, [self.pad] * 4, value=-1.0))))
        y = torch.cat([a1, a2], dim=1) if self.dense else a2
        return self.pool(y)


class BDNN(nn.Module):
    """``binary_weights=False``: every weight real-valued, activations still binary (stage 1 of
    two-stage training; not a hardware model until a binary stage 2 has run)."""

    def __init__(self, spec: ArchSpec, binary_weights: bool = True):
        super().__init__()
        self.spec = spec
        self.binary_weights = binary_weights
        self.blocks = nn.ModuleList(
            BinaryBlock(spec.block_in_channels(i), c, spec.dense, spec.kernel, spec.pad, spec.pool, binary_weights)
            for i, c in enumerate(spec.block_channels)
        )
        fcs = spec.fc_layers()
        self.fcs = nn.ModuleList(binary_linear(fin, fout, binary_weights) for _, fin, fout in fcs)
        self.fc_bns = nn.ModuleList(nn.BatchNorm1d(fout) for _, _, fout in fcs)
        self.fc_acts = nn.ModuleList(sign_act() for _ in fcs[:-1])
        self.final_pool = nn.MaxPool2d(spec.final_pool) if spec.final_pool > 1 else nn.Identity()
        for m in self.modules():  # small latent weights: signs can flip early in training
            if isinstance(m, (QuantConv2d, QuantLinear)):
                nn.init.uniform_(m.weight, -0.1, 0.1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # Pad raw pixels with 0 before normalizing: equals -1 padding of the normalized input.
        x = normalize(F.pad(pixels, [self.spec.pad] * 4, value=0.0))
        for i, block in enumerate(self.blocks):
            x = block(x, already_padded=(i == 0))
        x = torch.flatten(self.final_pool(x), 1)
        for j, (fc, bn) in enumerate(zip(self.fcs, self.fc_bns)):
            x = bn(fc(x))
            if j < len(self.fc_acts):
                x = self.fc_acts[j](x)
        return x

    @torch.no_grad()
    def clip_latent_weights(self) -> None:
        """Keep latent real weights in [-1, 1] (BinaryConnect): beyond it the STE gives no gradient."""
        for m in self.modules():
            if isinstance(m, (QuantConv2d, QuantLinear)):
                m.weight.clamp_(-1.0, 1.0)


@torch.no_grad()
def predict_scores(model: BDNN, crops: np.ndarray, batch: int = 256, desc: str | None = None,
                   device: str | None = None) -> np.ndarray:
    """fp32 eval scores for uint8 crops (..., 42, 42) -> (..., classes), on ``device`` (default:
    where the model is)."""
    model.eval()
    lead = crops.shape[:-2]
    flat = crops.reshape(-1, 1, CROP_SIZE, CROP_SIZE)
    out = []
    from tqdm import tqdm
    # fp32 means fp32: on a GPU cuDNN convolutions default to TF32 (10-bit mantissas), enough to move a
    # pre-sign sum across its BN threshold; the exact engine equals true fp32
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            for i in tqdm(range(0, len(flat), batch), desc=desc, disable=desc is None, leave=False):
                x = torch.from_numpy(flat[i:i + batch].astype(np.float32))
                out.append(model(x if device is None else x.to(device)).float().cpu().numpy())
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return np.concatenate(out).reshape(*lead, -1)


# -- compact artifact <-> module ------------------------------------------------------------
def named_layers(model: BDNN):
    """(artifact name, linear/conv module, its BatchNorm) in network order; the names are the
    spec's (:meth:`ArchSpec.layer_names`)."""
    modules = [m for b in model.blocks for m in ((b.conv1, b.bn1), (b.conv2, b.bn2))] + list(zip(model.fcs, model.fc_bns))
    names = model.spec.layer_names()
    assert len(names) == len(modules), (names, len(modules))
    for name, (lin, bn) in zip(names, modules):
        yield name, lin, bn


def to_artifact_layers(model: BDNN) -> dict:
    """Binary weights + BN parameters, with every sign threshold centred in its integer gap
    (:func:`bdnn.engine.centre_thresholds`): same integer decisions, no fp32 near-ties."""
    from .artifact import BatchNorm, Layer
    from .thresholds import centre_thresholds
    out = {}
    for name, lin, bn in named_layers(model):
        w = lin.weight.detach().float().cpu().numpy()
        out[name] = Layer(name, np.where(w >= 0, 1, -1).astype(np.int8), BatchNorm(
            bn.weight.detach().float().cpu().numpy(), bn.bias.detach().float().cpu().numpy(),
            bn.running_mean.detach().float().cpu().numpy(), bn.running_var.detach().float().cpu().numpy(), bn.eps))
    return centre_thresholds(model.spec, out)


def save_artifact(model: BDNN, path, meta: dict | None = None):
    from . import artifact
    return artifact.save(path, model.spec, to_artifact_layers(model), meta)


def from_artifact(art) -> BDNN:
    """Rebuild the Brevitas module (weights exactly +-1) from a loaded artifact."""
    model = BDNN(art.spec)
    with torch.no_grad():
        for name, lin, bn in named_layers(model):
            layer = art.layers[name]
            lin.weight.copy_(torch.from_numpy(layer.weight.astype(np.float32)))
            bn.weight.copy_(torch.from_numpy(layer.bn.weight))
            bn.bias.copy_(torch.from_numpy(layer.bn.bias))
            bn.running_mean.copy_(torch.from_numpy(layer.bn.mean))
            bn.running_var.copy_(torch.from_numpy(layer.bn.var))
            bn.eps = layer.bn.eps
    return model.eval()
