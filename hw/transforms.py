"""Custom QONNX/FINN graph passes the dense-block BDNN needs.

Each pass is a small ``Transformation``: ``apply(model) -> (model, changed)``, unit-tested in
``tests/test_transforms.py`` on tiny graphs.

Why they exist:
- torch exports -1 padding of +-1 activations as an ONNX ``Pad`` node, which finn-plus's
  ``InferFMPadding`` cannot take; folded into the following ``Im2Col`` it becomes FINN's own
  padding. In FINN's binary encoding (bit 0 = -1) the pad value is 0, which is what FMPadding
  emits in hardware.
- The stock ``ConvertBipolarMatMulToXnorPopcount`` walks up from each MatMul to one bipolar
  MultiThreshold and flips it; at a fork (the dense block feeds conv2 *and* the concat) the
  second consumer then finds no bipolar producer and fails. Converting all bipolar activations
  first, then all bipolar-weight MatMuls on binary inputs, handles any topology.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto
from onnx import helper as oh
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

NCHW_TO_NHWC = [0, 2, 3, 1]


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return oh.get_attribute_value(a)
    return default


def _pad_params(model, pad_node):
    """(pads as list of 8, constant value) of a 4D constant-mode ONNX Pad, or None."""
    mode = _attr(pad_node, "mode", b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        return None
    pads = model.get_initializer(pad_node.input[1]) if len(pad_node.input) > 1 else None
    if pads is None or len(pads) != 8:
        return None
    if len(pad_node.input) > 3 and pad_node.input[3]:
        return None  # explicit axes: not produced by our export
    value = 0.0
    if len(pad_node.input) > 2 and pad_node.input[2]:
        v = model.get_initializer(pad_node.input[2])
        if v is None:
            return None
        value = float(np.asarray(v).reshape(-1)[0])
    return [int(p) for p in pads], value


class AbsorbPadIntoIm2Col(Transformation):
    """Pad(NCHW, constant v) -> Transpose(to NHWC) -> Im2Col(no pad)  ==>  Transpose -> Im2Col(pad, v).

    Also takes a Pad directly on the NHWC Im2Col input. Only spatial padding is absorbed; the Pad
    must have no other consumer and the value must be representable in the input datatype.
    """

    def apply(self, model):
        g = model.graph
        for im2col in [n for n in g.node if n.op_type == "Im2Col"]:
            inst = getCustomOp(im2col)
            if any(inst.get_nodeattr("pad_amount")):
                continue
            prod = model.find_producer(im2col.input[0])
            trans = None
            if prod is not None and prod.op_type == "Transpose" and list(_attr(prod, "perm")) == NCHW_TO_NHWC:
                trans, prod = prod, model.find_producer(prod.input[0])
            if prod is None or prod.op_type != "Pad":
                continue
            params = _pad_params(model, prod)
            if params is None:
                continue
            pads, value = params
            b0, c0, t, l, b1, c1, bo, r = pads  # NCHW begin..., end...
            if trans is None:  # pad on NHWC directly
                b0, t, l, c0, b1, bo, r, c1 = pads
            if b0 or c0 or b1 or c1 or value != int(value) or len(model.find_consumers(prod.output[0])) != 1:
                continue
            idt = model.get_tensor_datatype(prod.input[0])
            if not idt.allowed(int(value)):
                continue
            # bypass the Pad and let the Im2Col pad instead
            first = trans if trans is not None else im2col
            first.input[0] = prod.input[0]
            if trans is not None:  # the transposed tensor is now unpadded
                shp = model.get_tensor_shape(prod.input[0])
                model.set_tensor_shape(trans.output[0], [shp[0], shp[2], shp[3], shp[1]])
            unpadded = model.get_tensor_shape(im2col.input[0])
            inst.set_nodeattr("input_shape", str(tuple(unpadded)))
            inst.set_nodeattr("pad_amount", [t, l, bo, r])
            inst.set_nodeattr("pad_value", int(value))
            g.node.remove(prod)
            model = model.transform(InferShapes())
            return model, True
        return model, False


def _is_bipolar_threshold(node) -> bool:
    dt = _attr(node, "out_dtype", b"")
    return node.op_type == "MultiThreshold" and (dt.decode() if isinstance(dt, bytes) else dt) == "BIPOLAR"


class ConvertBipolarActivationsToBinary(Transformation):
    """Every bipolar MultiThreshold now emits {0,1} (bit 0 encodes -1), everywhere in the graph.

    Downstream Im2Col pad values are re-encoded (-1 -> 0). Run ConvertBinaryInputMatMulToXnorPopcount
    right after: a MatMul with bipolar weights on these tensors must count matches instead.
    """

    def apply(self, model):
        changed = False
        for n in model.graph.node:
            if _is_bipolar_threshold(n):
                inst = getCustomOp(n)
                if inst.get_nodeattr("out_scale") != 2.0 or inst.get_nodeattr("out_bias") != -1.0:
                    raise ValueError(f"{n.name}: bipolar MultiThreshold with unexpected scale/bias")
                inst.set_nodeattr("out_dtype", "BINARY")
                inst.set_nodeattr("out_scale", 1.0)
                inst.set_nodeattr("out_bias", 0.0)
                model.set_tensor_datatype(n.output[0], DataType["BINARY"])
                changed = True
        if not changed:
            return model, False
        model = model.transform(InferDataTypes())
        for n in model.graph.node:
            if n.op_type == "Im2Col" and model.get_tensor_datatype(n.input[0]) == DataType["BINARY"]:
                inst = getCustomOp(n)
                if any(inst.get_nodeattr("pad_amount")):
                    if inst.get_nodeattr("pad_value") != -1:
                        raise ValueError(f"{n.name}: pads a former bipolar stream with "
                                         f"{inst.get_nodeattr('pad_value')}; only -1 has a binary encoding")
                    inst.set_nodeattr("pad_value", 0)
            if n.op_type == "Pad" and model.get_tensor_datatype(n.input[0]) == DataType["BINARY"]:
                raise ValueError(f"{n.name}: a Pad on a binary stream is left; run AbsorbPadIntoIm2Col first")
        return model, True


class ConvertBinaryInputMatMulToXnorPopcount(Transformation):
    """MatMul(BINARY x, BIPOLAR W) -> XnorPopcountMatMul(x, (W+1)/2) * 2 - K.

    x encodes +-1 as {0,1}; matches = popcount(xnor) gives the +-1 dot product as 2*matches - K.
    """

    def apply(self, model):
        g = model.graph
        changed = False
        for idx, n in enumerate(list(g.node)):
            if n.op_type != "MatMul":
                continue
            if model.get_tensor_datatype(n.input[0]) != DataType["BINARY"]:
                continue
            if model.get_tensor_datatype(n.input[1]) != DataType["BIPOLAR"]:
                continue
            w = model.get_initializer(n.input[1])
            if w is None:
                continue
            k = w.shape[0]
            n.op_type, n.domain = "XnorPopcountMatMul", "qonnx.custom_op.general"
            model.set_initializer(n.input[1], ((w + 1) / 2).astype(np.float32))
            model.set_tensor_datatype(n.input[1], DataType["BINARY"])
            out = n.output[0]
            shape = model.get_tensor_shape(out)
            pop = model.make_new_valueinfo_name()
            g.value_info.append(oh.make_tensor_value_info(pop, TensorProto.FLOAT, shape))
            model.set_tensor_datatype(pop, DataType["UINT32"])
            scaled = model.make_new_valueinfo_name()
            g.value_info.append(oh.make_tensor_value_info(scaled, TensorProto.FLOAT, shape))
            two, minus_k = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
            model.set_initializer(two, np.asarray([2.0], dtype=np.float32))
            model.set_initializer(minus_k, np.asarray([-float(k)], dtype=np.float32))
            n.output[0] = pop
            pos = list(g.node).index(n)
            g.node.insert(pos + 1, oh.make_node("Mul", [pop, two], [scaled]))
            g.node.insert(pos + 2, oh.make_node("Add", [scaled, minus_k], [out]))
            changed = True
        if changed:
            model = model.transform(InferShapes())
            model = model.transform(InferDataTypes())
        return model, changed




from bdnn.contract import HOST_AFFINE_KEY  # noqa: E402  (defined once, shared with the host side)


class MoveOutputAffineToHost(Transformation):
    """Strip the trailing per-class Mul/Add (classifier BatchNorm and popcount correction).

    The accelerator then outputs the classifier's integer popcounts; the affine
    ``score = popcount * scale + bias`` is stored as JSON in the model's metadata under
    ``bdnn_host_affine`` and applied on the host (keeps floats out of the fabric).
    """

    def apply(self, model):
        import json
        out_name = model.graph.output[0].name
        scale, bias = None, None
        tail = []
        cur = model.find_producer(out_name)
        while cur is not None and cur.op_type in ("Mul", "Add") and len(cur.input) == 2:
            const = model.get_initializer(cur.input[1])
            if const is None:
                break
            tail.append((cur, np.asarray(const, dtype=np.float64).reshape(-1)))
            cur = model.find_producer(cur.input[0])
        if not tail:
            return model, False
        n_out = model.get_tensor_shape(out_name)[-1]
        scale, bias = np.ones(n_out), np.zeros(n_out)
        for node, c in reversed(tail):  # forward order
            if node.op_type == "Mul":
                scale, bias = scale * c, bias * c
            else:
                bias = bias + c
        new_out = tail[-1][0].input[0]
        vi = model.get_tensor_valueinfo(new_out)
        for node, _ in tail:
            model.graph.node.remove(node)
        old = model.graph.output[0]
        model.graph.output.remove(old)
        model.graph.output.append(vi)
        if vi in model.graph.value_info:
            model.graph.value_info.remove(vi)
        prev = json.loads(model.get_metadata_prop(HOST_AFFINE_KEY) or "null")
        if prev is not None:  # compose with an affine already moved out
            scale, bias = scale * np.asarray(prev["scale"]), bias * np.asarray(prev["scale"]) + np.asarray(prev["bias"])
        model.set_metadata_prop(HOST_AFFINE_KEY, json.dumps({"scale": scale.tolist(), "bias": bias.tolist()}))
        return model, True


class MakeInputNHWC(Transformation):
    """Drop the leading NCHW->NHWC Transpose of a single-channel input: same bytes, NHWC shape."""

    def apply(self, model):
        inp = model.graph.input[0]
        consumers = model.find_consumers(inp.name)
        if len(consumers) != 1 or consumers[0].op_type != "Transpose":
            return model, False
        t = consumers[0]
        if list(_attr(t, "perm")) != NCHW_TO_NHWC:
            return model, False
        n, c, h, w = model.get_tensor_shape(inp.name)
        if c != 1:
            return model, False
        dt = model.get_tensor_datatype(inp.name)
        for node in model.find_consumers(t.output[0]):
            for i, name in enumerate(node.input):
                if name == t.output[0]:
                    node.input[i] = inp.name
        model.graph.node.remove(t)
        model.set_tensor_shape(inp.name, [n, h, w, c])
        model.set_tensor_datatype(inp.name, dt)
        return model, True


class WidenXnorAccumulators(Transformation):
    """Give every XNOR MVAU an accumulator that holds its popcount range [0, MW].

    finn-plus 1.6.1's ``MinimizeAccumulatorWidth`` sizes an XNOR MVAU from the range of
    sum(w*x) with bipolar w and binary x (for a column with p positive and n negative weights:
    [-n, p]), but in XNOR mode the unit outputs the popcount of matches, sum(x == w) = sum(w*x) + n,
    in [0, MW]. BDNN4's block1.conv2 (MW = 576) got INT10 (max 511): popcounts 512..576 would wrap
    to negative values in hardware, and ``RoundAndClipThresholds`` clips the next thresholds to the
    too-narrow range, so the Python model of the folded graph would agree with the broken hardware.
    Run after ``MinimizeAccumulatorWidth`` and before ``RoundAndClipThresholds``; the output type
    becomes UINT(ceil(log2(MW+1))) (kept byte-aligned for a graph output, as FINN does).
    """

    def apply(self, model):
        import math

        from qonnx.core.datatype import DataType
        from qonnx.custom_op.registry import getCustomOp
        changed = False
        for n in model.graph.node:
            if not n.op_type.startswith("MVAU"):
                continue
            inst = getCustomOp(n)
            if not inst.get_nodeattr("binaryXnorMode"):
                continue
            mw = inst.get_nodeattr("MW")
            acc = DataType[inst.get_nodeattr("accDataType")]
            if acc.min() <= 0 and acc.max() >= mw:
                continue
            bits = math.ceil(math.log2(mw + 1))
            if model.find_direct_successors(n) is None:
                bits = -(-bits // 8) * 8
            need = DataType[f"UINT{bits}"]
            inst.set_nodeattr("accDataType", need.name)
            if inst.get_nodeattr("noActivation"):
                inst.set_nodeattr("outputDataType", need.name)
                model.set_tensor_datatype(n.output[0], need)
            changed = True
        return model, changed
