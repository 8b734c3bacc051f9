"""The host side of the weight-replaying units: their weight DMAs and what the driver must know.

A replay unit (``MVTU_replay_rtl``) takes its weight matrix as a stream once per batch of B crops, in
FINN's MVAU weight-stream order. On the board that stream comes from DDR through an IODMA in
"wrap" mode, exactly like a FINN external-weight MVAU's, so the buffer layout is FINN's own
(``InsertIODMA.get_mem_init``) and finn-plus's ``MakePYNQDriver`` writes it to
``driver/runtime_weights/<idma>.npy`` unchanged. What differs is the repeat count: FINN's driver
restarts a weight DMA ``crops x H x W`` times per run, a replay unit's must run ``crops / B`` times.
``write_replay_info`` records, per weight DMA that feeds a replay unit, its batch B in
``driver/replay_weights.json`` (``bdnn.contract.REPLAY_WEIGHTS_FILE``); the pynq backend reads it,
sends whole batches and sets those DMAs' counts (``bdnn.backends``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from onnx import TensorProto
from onnx import helper as oh
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph

from .replay import OP_TYPE


class InsertReplayWeightDMA(Transformation):
    """Give every replay unit whose weights are a plain initializer an IODMA (burstMode "wrap")
    that streams them from DDR, laid out as FINN lays out an external MVAU's weights. Run before
    FINN's ``InsertIODMA`` (inside ``ZynqBuild``), which only looks at MVAU/VVAU nodes."""

    def __init__(self, max_intfwidth: int = 64):
        super().__init__()
        self.max_intfwidth = max_intfwidth

    def apply(self, model):
        from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
        changed = False
        for node in list(model.graph.node):
            if node.op_type != OP_TYPE or model.find_producer(node.input[1]) is not None:
                continue
            inst = getCustomOp(node)
            s = inst.shape()
            w_name = node.input[1]
            w = model.get_initializer(w_name)
            w_dtype = model.get_tensor_datatype(w_name)
            transfer_bits = int(np.prod(w.shape)) * w_dtype.bitwidth()
            intfwidth = math.gcd(transfer_bits, self.max_intfwidth)
            if intfwidth % 8:
                raise ValueError(f"{node.name}: no IODMA interface width for {transfer_bits} weight bits")
            mem = InsertIODMA(self.max_intfwidth).get_mem_init(w, s.pe, s.simd)
            model.set_initializer(w_name, mem)
            stream = oh.make_tensor_value_info(model.make_new_valueinfo_name(), TensorProto.FLOAT, mem.shape)
            model.graph.value_info.append(stream)
            model.set_tensor_datatype(stream.name, w_dtype)
            model.set_initializer(stream.name, w)
            dma = oh.make_node("IODMA_hls", [w_name], [stream.name], numInputVectors=[mem.shape[0]],
                               NumChannels=s.pe * s.simd, dataType=str(w_dtype.name), intfWidth=intfwidth,
                               streamWidth=inst.get_instream_width_padded(1), direction="in", burstMode="wrap",
                               domain="finn.custom_op.fpgadataflow.hls", backend="fpgadataflow")
            node.input[1] = stream.name
            model.graph.node.insert(0, dma)
            changed = True
        if changed:
            model = model.transform(SortGraph())
        return model, False


def replay_weight_dmas(parent: ModelWrapper) -> dict[str, dict]:
    """{weight DMA instance name: {"batch", "layer", "words"}} for the replay units of a partitioned
    model (every node a StreamingDataflowPartition, DMA instance names set), found the way
    ``MakePYNQDriver`` finds external-weight DMAs."""
    out = {}
    for sdp in parent.graph.node:
        if sdp.op_type != "StreamingDataflowPartition":
            continue
        if sdp.input and parent.find_producer(sdp.input[0]) is not None:
            continue  # fed by another partition: not a DMA
        inst = getCustomOp(sdp)
        df = ModelWrapper(inst.get_nodeattr("model"))
        first = df.graph.node[0]
        if first.op_type != "IODMA_hls" or getCustomOp(first).get_nodeattr("burstMode") != "wrap":
            continue
        target = ModelWrapper(getCustomOp(parent.find_consumer(sdp.output[0])).get_nodeattr("model"))
        consumer = target.find_consumer(first.output[0])
        if consumer is None or consumer.op_type != OP_TYPE:
            continue
        out[inst.get_nodeattr("instance_name")] = {
            "batch": int(getCustomOp(consumer).get_nodeattr("batch")), "layer": consumer.name,
            "words": int(getCustomOp(first).get_nodeattr("numInputVectors")[0])}
    return out


def write_replay_info(parent: ModelWrapper, driver_dir: Path) -> dict:
    """``driver_dir/replay_weights.json`` for the pynq backend (nothing when there are no replay units)."""
    from bdnn import contract
    dmas = replay_weight_dmas(parent)
    path = Path(driver_dir) / contract.REPLAY_WEIGHTS_FILE
    if dmas:
        batches = {d["batch"] for d in dmas.values()}
        if len(batches) > 1:
            raise ValueError(f"replay units with different batches {sorted(batches)}: the host sends one batch size")
        path.write_text(json.dumps({"batch": batches.pop(), "dmas": dmas}, indent=1) + "\n")
    else:
        path.unlink(missing_ok=True)
    return dmas


def step_insert_replay_weight_dmas(model, cfg):
    """Build step (before ``step_synthesize_bitfile``): the replay units' weight DMAs."""
    from .. import boards
    width = next((b.axi_port_width for b in boards.BOARDS.values() if b.finn_board == cfg.board), 64)
    return model.transform(InsertReplayWeightDMA(width))


def step_write_replay_info(model, cfg):
    """Build step (after ``step_make_driver``): ``driver/replay_weights.json`` next to settings.json."""
    driver = model.get_metadata_prop("pynq_driver_dir")
    if driver:
        write_replay_info(model, Path(driver))
    return model
