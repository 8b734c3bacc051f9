"""Unit tests of the project's custom FINN passes on small hand-made graphs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto
from onnx import helper as oh

from bdnn_hw import finn_env

finn_env.ensure_finn()

import qonnx.core.onnx_exec as oxe  # noqa: E402
from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.custom_op.registry import getCustomOp  # noqa: E402
from qonnx.transformation.infer_datatypes import InferDataTypes  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from qonnx.util.basic import qonnx_make_model  # noqa: E402

from bdnn_hw.transforms import (  # noqa: E402
    HOST_AFFINE_KEY,
    AbsorbPadIntoIm2Col,
    ConvertBinaryInputMatMulToXnorPopcount,
    ConvertBipolarActivationsToBinary,
    MakeInputNHWC,
    MoveOutputAffineToHost,
)

QONNX = "qonnx.custom_op.general"
RNG = np.random.default_rng(0)


def vi(name, shape):
    return oh.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def build(nodes, inputs, outputs, inits: dict, dtypes: dict | None = None, value_info=()):
    g = oh.make_graph(nodes, "g", inputs, outputs, value_info=list(value_info))
    m = ModelWrapper(qonnx_make_model(g, producer_name="test"))
    for k, v in inits.items():
        v = np.asarray(v)
        m.set_initializer(k, v if v.dtype == np.int64 else v.astype(np.float32))
    for k, v in (dtypes or {}).items():
        m.set_tensor_datatype(k, DataType[v])
    m = m.transform(InferShapes())
    return m.transform(InferDataTypes())


def run(m, x):
    return oxe.execute_onnx(m, {m.graph.input[0].name: x.astype(np.float32)})[m.graph.output[0].name]


def bipolar_threshold(name, inp, out, channels):
    """Sign as a bipolar MultiThreshold (one threshold at 0 per channel)."""
    return oh.make_node("MultiThreshold", [inp, f"{name}_thr"], [out], domain=QONNX, out_dtype="BIPOLAR",
                        out_scale=2.0, out_bias=-1.0, name=name), {f"{name}_thr": np.zeros((channels, 1))}


def pad_im2col_graph(pads, value, pad_dtype="BIPOLAR", extra_consumer=False):
    c, h = 2, 5
    hp = h + pads[2] + pads[6]
    nodes = [oh.make_node("Pad", ["x", "pads", "val"], ["xp"], mode="constant"),
             oh.make_node("Transpose", ["xp"], ["xt"], perm=[0, 2, 3, 1]),
             oh.make_node("Im2Col", ["xt"], ["y"], domain=QONNX, stride=[1, 1], kernel_size=[3, 3],
                          input_shape=f"(1, {hp}, {hp}, {c})", pad_amount=[0, 0, 0, 0])]
    outputs = [vi("y", None)]
    if extra_consumer:
        nodes.append(oh.make_node("Identity", ["xp"], ["z"]))
        outputs.append(vi("z", None))
    return build(nodes, [vi("x", [1, c, h, h])], outputs,
                 {"pads": np.array(pads, dtype=np.int64), "val": [value]}, {"x": pad_dtype})


def test_absorb_pad_into_im2col_is_exact():
    m = pad_im2col_graph([0, 0, 1, 1, 0, 0, 1, 1], -1.0)
    x = np.where(RNG.random((1, 2, 5, 5)) < 0.5, -1.0, 1.0)
    before = run(m, x)
    m2, changed = AbsorbPadIntoIm2Col().apply(m)
    assert changed
    assert not m2.get_nodes_by_op_type("Pad")
    inst = getCustomOp(m2.get_nodes_by_op_type("Im2Col")[0])
    assert inst.get_nodeattr("pad_amount") == [1, 1, 1, 1] and inst.get_nodeattr("pad_value") == -1
    np.testing.assert_array_equal(run(m2, x), before)


@pytest.mark.parametrize("pads,value,dtype,extra", [
    ([0, 1, 1, 1, 0, 0, 1, 1], -1.0, "BIPOLAR", False),   # channel padding: not FINN padding
    ([0, 0, 1, 1, 0, 0, 1, 1], 0.0, "BIPOLAR", False),    # 0 is not a bipolar value
    ([0, 0, 1, 1, 0, 0, 1, 1], -1.0, "BIPOLAR", True),    # the padded tensor has another consumer
])
def test_absorb_pad_leaves_what_it_cannot_absorb(pads, value, dtype, extra):
    m = pad_im2col_graph(pads, value, dtype, extra)
    _, changed = AbsorbPadIntoIm2Col().apply(m)
    assert not changed


def dense_fork_graph():
    """The dense block's shape: a = sign(x); b = sign(a @ W1); concat(a, b) @ W2 (a forks)."""
    k = 6
    mt0, i0 = bipolar_threshold("mt0", "x", "a", k)
    mt1, i1 = bipolar_threshold("mt1", "h", "b", k)
    nodes = [mt0, oh.make_node("MatMul", ["a", "w1"], ["h"]), mt1,
             oh.make_node("Concat", ["a", "b"], ["ab"], axis=1), oh.make_node("MatMul", ["ab", "w2"], ["y"])]
    w1 = np.where(RNG.random((k, k)) < 0.5, -1.0, 1.0)
    w2 = np.where(RNG.random((2 * k, 3)) < 0.5, -1.0, 1.0)
    return build(nodes, [vi("x", [1, k])], [vi("y", [1, 3])], {**i0, **i1, "w1": w1, "w2": w2},
                 {"w1": "BIPOLAR", "w2": "BIPOLAR"})


def test_stock_xnor_conversion_fails_on_the_dense_fork():
    from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
    with pytest.raises(Exception, match="upstream bipolar"):
        dense_fork_graph().transform(ConvertBipolarMatMulToXnorPopcount())


def test_bipolar_to_binary_then_xnor_handles_fork_and_concat():
    m = dense_fork_graph()
    xs = [RNG.normal(size=(1, 6)) for _ in range(20)]
    before = [run(m, x) for x in xs]
    m = m.transform(ConvertBipolarActivationsToBinary())
    assert all(getCustomOp(n).get_nodeattr("out_dtype") == "BINARY" for n in m.get_nodes_by_op_type("MultiThreshold"))
    assert m.get_tensor_datatype("ab") == DataType["BINARY"]
    m = m.transform(ConvertBinaryInputMatMulToXnorPopcount())
    assert not m.get_nodes_by_op_type("MatMul")
    assert len(m.get_nodes_by_op_type("XnorPopcountMatMul")) == 2
    for x, b in zip(xs, before):
        np.testing.assert_array_equal(run(m, x), b)


def test_binary_conversion_reencodes_im2col_padding():
    c = 2
    mt, init = bipolar_threshold("mt", "x", "a", c)
    nodes = [mt, oh.make_node("Im2Col", ["a"], ["col"], domain=QONNX, stride=[1, 1], kernel_size=[3, 3],
                              input_shape=f"(1, 4, 4, {c})", pad_amount=[1, 1, 1, 1], pad_value=-1),
             oh.make_node("MatMul", ["col", "w"], ["y"])]
    w = np.where(RNG.random((9 * c, 3)) < 0.5, -1.0, 1.0)
    m = build(nodes, [vi("x", [1, 4, 4, c])], [vi("y", None)], {**init, "w": w}, {"w": "BIPOLAR"})
    # MultiThreshold needs to know the layout of a 4D NHWC input
    getCustomOp(m.get_nodes_by_op_type("MultiThreshold")[0]).set_nodeattr("data_layout", "NHWC")
    x = RNG.normal(size=(1, 4, 4, c))
    before = run(m, x)
    m = m.transform(ConvertBipolarActivationsToBinary()).transform(ConvertBinaryInputMatMulToXnorPopcount())
    assert getCustomOp(m.get_nodes_by_op_type("Im2Col")[0]).get_nodeattr("pad_value") == 0
    np.testing.assert_array_equal(run(m, x), before)


def test_move_output_affine_to_host():
    nodes = [oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Mul", ["h", "s"], ["hs"]),
             oh.make_node("Add", ["hs", "b"], ["y"])]
    m = build(nodes, [vi("x", [1, 4])], [vi("y", [1, 3])],
              {"w": RNG.normal(size=(4, 3)), "s": [-0.5, 2.0, 0.25], "b": [1.0, -2.0, 0.5]})
    x = RNG.normal(size=(1, 4))
    before = run(m, x)
    m, changed = MoveOutputAffineToHost().apply(m)
    assert changed and not m.get_nodes_by_op_type("Mul") and not m.get_nodes_by_op_type("Add")
    aff = json.loads(m.get_metadata_prop(HOST_AFFINE_KEY))
    np.testing.assert_allclose(run(m, x) * np.array(aff["scale"]) + np.array(aff["bias"]), before, rtol=1e-6)


def test_make_input_nhwc_for_one_channel():
    nodes = [oh.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 3, 1]), oh.make_node("Relu", ["xt"], ["y"])]
    m = build(nodes, [vi("x", [1, 1, 4, 4])], [vi("y", None)], {}, {"x": "UINT8"})
    x = RNG.integers(0, 256, (1, 1, 4, 4))
    before = run(m, x)
    m, changed = MakeInputNHWC().apply(m)
    assert changed and not m.get_nodes_by_op_type("Transpose")
    assert m.get_tensor_shape("x") == [1, 4, 4, 1] and m.get_tensor_datatype("x") == DataType["UINT8"]
    np.testing.assert_array_equal(run(m, x.reshape(1, 4, 4, 1)), before)
