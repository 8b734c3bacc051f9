"""Execute a code-generated FINN HW graph with every RTL unit simulated in Verilator.

The contract is FINN's per-node execution: node by node in graph order, each node's inputs from
the context, its outputs into the context. RTL nodes run in Verilator (twice: once free-running,
which measures cycles, once with random back-pressure on every stream, which must give the same
beats) and their simulated outputs feed the rest of the graph; HLS nodes run in FINN's Python
model (no open tool compiles HLS C++). Every simulated node is also executed in Python and the two
are compared element by element; so is each decoupled MVAU's weight stream, against the words
the graph's weight initializer implies.
"""
from __future__ import annotations

import time
from pathlib import Path
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from ..rtl.replay import REPLAY_OPS
from .harness import SimError, simulate
from .units import NodeUnit, output_beats, pack_input, rtl_units, unpack_output, weight_stream_golden

EVIDENCE_VERILATOR = "verilator"
EVIDENCE_PYTHON = "python"


@dataclass
class NodeRecord:
    node: str
    kind: str
    evidence: str                       # verilator | python
    mismatches: int = 0                 # elements that differ from FINN's Python execution
    elements: int = 0
    cycles: int | None = None           # measured, free-running (no back-pressure)
    cycles_backpressure: int | None = None
    est_cycles: int | None = None       # FINN's estimate (get_exp_cycles)
    sim_seconds: float = 0.0
    error: str | None = None


@dataclass
class GraphSimReport:
    records: list[NodeRecord] = field(default_factory=list)
    output_mismatches: int = 0          # final output vs FINN's Python execution of the whole graph
    seconds: float = 0.0

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for r in self.records) + self.output_mismatches

    @property
    def errors(self) -> list[str]:
        return [f"{r.node}: {r.error}" for r in self.records if r.error]

    def by_kind(self) -> dict:
        kinds = {}
        for r in self.records:
            k = kinds.setdefault(r.kind, {"nodes": 0, "evidence": r.evidence, "mismatches": 0})
            k["nodes"] += 1
            k["mismatches"] += r.mismatches
        return kinds

    def to_dict(self) -> dict:
        return {"mismatches": self.mismatches, "output_mismatches": self.output_mismatches,
                "errors": self.errors, "seconds": self.seconds, "by_kind": self.by_kind(),
                "nodes": [asdict(r) for r in self.records]}


# the project's ops whose Python model takes the producer's stream layout (see to_python_layout)
STREAM_LAYOUT_OPS = ("Pool_bdnn_rtl",)


def python_exec_node(node, inst, context: dict, graph, hw_layout: dict | None = None) -> dict:
    """FINN's Python model of one node on a private copy of its inputs: {output name: array}.

    After specialization an HLS node only executes in cppsim/rtlsim, so its generic base class's
    Python ``execute_node`` is called; RTL nodes' ``cppsim`` mode is their Python model (for the
    SWG this includes the RTL's depthwise channel interleave)."""
    if node.op_type in STREAM_LAYOUT_OPS and hw_layout:
        context = {**context, **{k: v for k, v in hw_layout.items() if k in node.input}}
    ctx = {k: context[k] for k in node.input if k in context}
    for i, o in enumerate(node.output):
        ctx[o] = np.zeros(inst.get_normal_output_shape(i), dtype=np.float32)
    if node.op_type.endswith("_rtl"):
        old = inst.get_nodeattr("exec_mode")
        inst.set_nodeattr("exec_mode", "cppsim")
        try:
            inst.execute_node(ctx, graph)
        finally:
            inst.set_nodeattr("exec_mode", old)
    else:
        base = next(c for c in type(inst).__mro__[1:]
                    if "execute_node" in c.__dict__ and not c.__module__.split(".")[-2] in ("hls", "rtl")
                    and c.__name__ not in ("HLSBackend", "RTLBackend"))
        base.execute_node(inst, ctx, graph)
    return {o: ctx[o] for o in node.output}


def to_python_layout(inst, value: np.ndarray) -> np.ndarray:
    """A depthwise RTL SWG streams channels interleaved by SIMD (what its own Python model and the
    downstream HLS hardware expect); the generic Python models downstream (Pool) expect the
    plain im2col order: undo the interleave."""
    from finn.custom_op.fpgadataflow.rtl.convolutioninputgenerator_rtl import ConvolutionInputGenerator_rtl
    # FINN's RTL SWG and the project's (a subclass with the same streams)
    if not isinstance(inst, ConvolutionInputGenerator_rtl) or not inst.get_nodeattr("depthwise"):
        return value
    simd, ch = inst.get_nodeattr("SIMD"), inst.get_nodeattr("IFMChannels")
    (oh, ow), (kh, kw) = inst.get_nodeattr("OFMDim"), inst.get_nodeattr("ConvKernelDim")
    v = value.reshape(1, oh, ow, ch // simd, kh * kw, simd).transpose(0, 1, 2, 4, 3, 5)
    return v.reshape(value.shape)


def _sim_twice(u: NodeUnit, inputs, beats, seed, stall, idle_limit, extra):
    free = simulate(u.unit, inputs, beats, seed=seed, idle_limit=idle_limit, extra_cycles=extra)
    bp = simulate(u.unit, inputs, beats, seed=seed + 1, stall_in=stall, stall_out=stall,
                  idle_limit=idle_limit, extra_cycles=extra)
    return free, bp


def unit_inputs(model, node, inst, u: NodeUnit, context: dict, hw_layout: dict | None = None,
                weights: dict | None = None) -> list[np.ndarray]:
    """The beats of every input stream of a unit: activations from the context (in the producer's
    stream layout where it differs from Python's, see ``to_python_layout``); for the project's
    MVAU also the weight stream (what FINN's memstream or the DDR weight stream delivers)."""
    hw_layout = hw_layout or {}
    if u.kind in REPLAY_OPS:  # a replay unit computes whole batches: the crop B times, the matrix once
        from ..rtl.replay_op import weight_stream
        b = inst.get_nodeattr("batch")
        return [np.tile(pack_input(inst, 0, context[node.input[0]]), (b, 1)), weight_stream(model, node, b, weights)]
    ins = [pack_input(inst, i, hw_layout.get(node.input[i], context[node.input[i]])) for i in range(len(u.unit.inputs))
           if not (u.kind.startswith("MVAU") and i == 1)]
    if u.kind.startswith("MVAU"):
        words, n = weight_stream_golden(model, node, inst, weights)
        ins.append(np.tile(words, (n // len(words), 1)))
    return ins


def simulate_graph(model, x: np.ndarray, *, stall: int = 30, seed: int = 0, idle_limit: int = 200_000,
                   progress: bool = True, only: set[str] | None = None,
                   project_rtl: Path | None = None) -> tuple[np.ndarray, GraphSimReport]:
    """Run a code-generated HW graph on one input with every RTL unit in Verilator.

    ``stall``: percent of cycles with back-pressure in the second run of each unit. ``only``: node
    names to simulate (default all RTL units); the others run in Python. ``project_rtl``: a work
    folder; when given, the HLS nodes the project has RTL for (``bdnn_hw.rtl``) are simulated too.
    Returns the graph output and the per-node report."""
    from qonnx.custom_op.registry import getCustomOp
    t_start = time.perf_counter()
    graph = model.graph
    context = {i.name: model.get_initializer(i.name) for i in graph.initializer}
    context[graph.input[0].name] = np.asarray(x, dtype=np.float32)
    units = {}
    all_units = rtl_units(model)
    if project_rtl is not None:
        from ..rtl.wrappers import project_rtl_units
        all_units += project_rtl_units(model, Path(project_rtl))
    for u in all_units:
        units.setdefault(u.node.split("/")[0], []).append(u)
    report = GraphSimReport()
    hw_layout = {}  # tensors whose stream order differs from FINN's Python layout (depthwise SWG)
    weights = {}    # each MVAU's weight-stream words, packed once (its memstream and its core use them)
    bar = tqdm(graph.node, desc="rtlsim (Verilator) node by node", unit="node", disable=not progress)
    for node in bar:
        bar.set_postfix_str(node.name)
        inst = getCustomOp(node)
        golden = python_exec_node(node, inst, context, graph, hw_layout)
        result = {k: to_python_layout(inst, v) for k, v in golden.items()}
        hw_layout.update({k: v for k, v in golden.items() if v is not result[k]})
        sim_units = [u for u in units.get(node.name, []) if only is None or node.name in only]
        if not sim_units:
            report.records.append(NodeRecord(node.name, node.op_type, EVIDENCE_PYTHON))
        for u in sim_units:
            rec = NodeRecord(u.node, u.kind, EVIDENCE_VERILATOR)
            est = inst.get_exp_cycles()
            rec.est_cycles = int(est) if est else None
            t0 = time.perf_counter()
            reps = 1
            try:
                if u.kind.endswith("/memstream"):
                    words, n = weight_stream_golden(model, node, inst, weights)
                    free, bp = _sim_twice(u, [], [n], seed, stall, idle_limit, 0)
                    expect = np.tile(words, (n // len(words), 1))
                    for got in (free.outputs[0], bp.outputs[0]):
                        rec.mismatches += int((got != expect).any(axis=1).sum())
                    rec.elements = 2 * n
                else:
                    ins = unit_inputs(model, node, inst, u, context, hw_layout, weights)
                    reps = inst.get_nodeattr("batch") if u.kind in REPLAY_OPS else 1  # copies of the crop
                    beats = [reps * output_beats(inst, o) for o, _ in enumerate(u.unit.outputs)]
                    # run on after the last output beat until the unit has drained its input (an SWG
                    # reads the rows no window covers only after its last window)
                    free, bp = _sim_twice(u, ins, beats, seed, stall, idle_limit, 1000 + 2 * sum(len(i) for i in ins))
                    for o, name in enumerate(node.output):
                        sims = [unpack_output(inst, o, w) for r in (free, bp) for w in np.split(r.outputs[o], reps)]
                        for s in sims:
                            rec.mismatches += int((s != golden[name]).sum())
                            rec.elements += s.size
                        sims = sims[::reps]
                    # a unit must consume its whole input (beats it may emit ahead for the next
                    # image, like FMPadding's top border, are not errors)
                    left = free.stats["inputs_left"] + bp.stats["inputs_left"]
                    if left:
                        rec.error = f"{left} input beats never consumed"
                        rec.mismatches += left
                        # the back-pressured run feeds the rest of the graph, in Python's layout
                        result[name] = to_python_layout(inst, sims[1])
                        if result[name] is not sims[1]:
                            hw_layout[name] = sims[1]
                rec.cycles, rec.cycles_backpressure = free.cycles // reps, bp.cycles // reps
            except SimError as e:
                rec.error = str(e)
                rec.mismatches += 1
            rec.sim_seconds = time.perf_counter() - t0
            report.records.append(rec)
        context.update(result)
    out = context[graph.output[0].name]
    report.seconds = time.perf_counter() - t_start
    return out, report
