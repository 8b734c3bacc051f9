"""Custom FINN build steps, each a plain ``(model, cfg) -> model`` function."""
from __future__ import annotations

from . import finn_env

finn_env.ensure_finn()

from finn.transformation.streamline import Streamline  # noqa: E402
from finn.transformation.streamline import absorb, reorder  # noqa: E402
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds  # noqa: E402
from qonnx.transformation.general import RemoveUnusedTensors  # noqa: E402
from qonnx.transformation.infer_data_layouts import InferDataLayouts  # noqa: E402
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul  # noqa: E402

from .transforms import (  # noqa: E402
    AbsorbPadIntoIm2Col,
    ConvertBinaryInputMatMulToXnorPopcount,
    ConvertBipolarActivationsToBinary,
)


def streamline_dense_bnn(model):
    """Streamlining for (dense) BNNs: -1 padding, forks and concats included; bit-exact."""
    model = model.transform(absorb.AbsorbScalarBiasIntoMultiThreshold())
    model = model.transform(Streamline())
    model = model.transform(LowerConvsToMatMul())
    model = model.transform(AbsorbPadIntoIm2Col())
    model = make_nhwc(model)
    model = model.transform(ConvertBipolarActivationsToBinary())
    model = model.transform(ConvertBinaryInputMatMulToXnorPopcount())
    model = model.transform(Streamline())
    # finn-plus's Streamline no longer rounds thresholds; bit-width minimization needs it.
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(InferDataLayouts())
    model = model.transform(RemoveUnusedTensors())
    return model


def make_nhwc(model):
    """Push the NCHW<->NHWC transposes of lowered convs through pools, forks and concats."""
    for _ in range(8):  # to a fixed point: each round may expose new consecutive transposes
        before = model.model.SerializeToString()
        model = model.transform(reorder.MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbTransposeIntoMultiThreshold())
        model = model.transform(reorder.MoveTransposePastFork())
        model = model.transform(reorder.MoveTransposePastJoinConcat())
        model = model.transform(absorb.AbsorbConsecutiveTransposes())
        if model.model.SerializeToString() == before:
            break
    return model


def step_bdnn_streamline(model, cfg):
    from finn.builder.build_dataflow_config import VerificationStepType
    from finn.builder.build_dataflow_steps import verify_step
    model = streamline_dense_bnn(model)
    # the stock step_streamline runs this check itself; a replacement must too
    if VerificationStepType.STREAMLINED_PYTHON in cfg._resolve_verification_steps():
        verify_step(model, cfg, "streamlined_python", need_parent=False)
    return model


def step_bdnn_host_io(model, cfg):
    """Accelerator I/O: raw UINT8 NHWC pixels in, classifier popcounts out (affine on host)."""
    from .transforms import MakeInputNHWC, MoveOutputAffineToHost
    model = model.transform(MakeInputNHWC())
    model = model.transform(MoveOutputAffineToHost())
    return model


def step_bdnn_hls_simd_floor(model, cfg):
    """HLS MVAUs need SIMD >= MW/1024 (the synthesis assertion FINN's SetFolding does not
    respect at low targets): raise SIMD to the smallest divisor of MW that satisfies it."""
    from qonnx.custom_op.registry import getCustomOp
    for n in model.graph.node:
        if n.op_type != "MVAU_hls":
            continue
        inst = getCustomOp(n)
        mw, simd = inst.get_nodeattr("MW"), inst.get_nodeattr("SIMD")
        if simd * 1024 < mw:
            inst.set_nodeattr("SIMD", next(d for d in range(-(-mw // 1024), mw + 1) if mw % d == 0))
    return model


def step_bdnn_minimize_bit_width(model, cfg):
    """FINN's step_minimize_bit_width with the XNOR accumulator range fixed (``WidenXnorAccumulators``)
    between accumulator minimization and threshold rounding/clipping."""
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
    from qonnx.transformation.infer_datatypes import InferDataTypes

    from .transforms import WidenXnorAccumulators
    model = model.transform(MinimizeWeightBitWidth())
    model = model.transform(MinimizeAccumulatorWidth())
    model = model.transform(WidenXnorAccumulators())
    model = model.transform(InferDataTypes())
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(InferDataTypes())
    model = model.transform(MinimizeWeightBitWidth())
    model = model.transform(InferDataTypes())
    return model
