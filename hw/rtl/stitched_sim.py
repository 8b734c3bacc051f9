"""Whole-network Verilator simulation of the stitched all-RTL design (``stitch``): crops streamed
back to back, FIFO depths sized by simulation, throughput and latency measured in cycles.

FIFO sizing (``size_fifos``) searches depths on one compiled design whose FIFOs are deep and whose
depth limits are run-time settings, and requires of every candidate the deep design's outputs, no
deadlock and its steady-state cycles per crop (within ``SIZING_TOLERANCE``); the sized design is
then stitched with fixed depths, as synthesized, and that is what ``evaluate`` measures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..rtlsim.harness import SimError, simulate
from ..rtlsim.units import output_beats, pack_input, unpack_output, weight_stream_golden
from .replay import REPLAY_OPS
from .stitch import MIN_DEPTH, MemoryPolicy, StitchedDesign, graph_edges, prepare_graph, stitch

DEEP_CAP = 1 << 15
SIZING_TOLERANCE = 0.01


@dataclass
class StitchedRun:
    outputs: np.ndarray            # (crops, ...) the graph's integer outputs
    cycles_per_crop: float         # steady state: distance between the last output beats of successive crops
    latency_cycles: int            # reset release -> last output beat of the first crop
    total_cycles: int
    sim_seconds: float
    fifo_max: dict[str, int]
    inputs_taken: tuple[int, ...] = ()   # beats each top-level input delivered (crops, then DDR weight ports)

    @property
    def sim_cycles_per_s(self) -> float:
        return self.total_cycles / self.sim_seconds if self.sim_seconds else float("inf")


def _inputs(model, design: StitchedDesign, crops: np.ndarray, weights: dict | None = None) -> list[np.ndarray]:
    from qonnx.custom_op.registry import getCustomOp
    first = getCustomOp(model.graph.node[0])
    ins = [np.concatenate([pack_input(first, 0, c[None, :, :, None]) for c in crops])]
    for _, node, _ in design.weight_ports:  # the DDR weight stream: the whole matrix once per input vector
        n = model.get_node_from_name(node)
        if n.op_type in REPLAY_OPS:  # ... or, for a replay unit, once per batch of B crops
            from .replay_op import weight_stream
            ins.append(weight_stream(model, n, len(crops), weights))
            continue
        words, per_crop = weight_stream_golden(model, n, getCustomOp(n), weights)
        ins.append(np.tile(words, (len(crops) * per_crop // len(words), 1)))
    return ins


def run(model, design: StitchedDesign, crops: np.ndarray, *, stall: int = 0, seed: int = 0,
        idle_limit: int = 200_000, weights: dict | None = None, depths: dict[str, int] | None = None,
        pace: float = 0.0) -> StitchedRun:
    """Stream ``crops`` back to back; ``weights``: a cache of the packed DDR weight streams, shared
    by the runs of one graph; ``depths``: FIFO depths of a design stitched with run-time limits;
    ``pace``: cycles between input beats (0: as fast as the design accepts them)."""
    from qonnx.custom_op.registry import getCustomOp
    last = getCustomOp(model.graph.node[-1])
    nb = output_beats(last)
    unit = design.unit(design.edges[0].width, design.edges[-1].width)
    idle_limit = max(idle_limit, 2 * longest_silence(model))
    t0 = time.perf_counter()
    r = simulate(unit, _inputs(model, design, crops, weights), [len(crops) * nb], seed=seed, stall_in=0, stall_out=stall,
                 idle_limit=idle_limit, record_beat_cycles=True, timeout=6 * 3600,
                 settings=design.limits(depths) if design.runtime_limits else None, pace_in0=pace)
    secs = time.perf_counter() - t0
    ends = r.stats["beat_cycles"][nb - 1::nb]
    outs = np.stack([unpack_output(last, 0, w) for w in r.outputs[0].reshape(len(crops), nb, -1)])
    b = replay_batch(model)  # replay units emit a batch's crops together: measure batch to batch
    batch_ends = ends[b - 1::b]
    per_crop = float(np.diff(batch_ends).mean()) / b if len(batch_ends) > 1 else float(ends[-1]) / len(ends)
    fifo_max = {k[:-4]: v for k, v in r.stats["probes"].items() if k.endswith("_max")}
    return StitchedRun(outs, per_crop, int(ends[0]), int(r.cycles), secs, fifo_max,
                       tuple(r.stats.get("inputs_taken", ())))


def ddr_weight_bytes_per_crop(model, design: StitchedDesign, r: StitchedRun, crops: int) -> float | None:
    """DDR weight traffic the simulated design actually pulled: the beats each weight port delivered
    times the data bits of a beat (the weight IODMA reads the matrix densely packed; the stream's
    byte padding is added after it), per crop."""
    from qonnx.custom_op.registry import getCustomOp
    if not r.inputs_taken:
        return None
    bits = [getCustomOp(model.get_node_from_name(n)).get_instream_width(1) for _, n, _ in design.weight_ports]
    return sum(r.inputs_taken[1 + i] * b for i, b in enumerate(bits)) / 8 / crops


PASS_THROUGH = ("StreamingDataWidthConverter",)  # nodes that only re-pack a stream (no buffering of note)


def _bypass_edges(model, design: StitchedDesign) -> set[str]:
    """The dense blocks' bypass: every edge on a path from a stream fork into a concat through
    width converters only (Ultra96 foldings put a converter on it). Together they must hold the
    other branch's (conv2's) latency."""
    ops = {n.name: n.op_type for n in model.graph.node}
    out_edges: dict[str, list] = {}
    for e in design.edges:
        if e.src:
            out_edges.setdefault(e.src[0], []).append(e)
    found: set[str] = set()
    for e in design.edges:
        if not (e.src and ops[e.src[0]].startswith("DuplicateStreams")):
            continue
        path, cur = [e], e
        while cur.dst and ops[cur.dst[0]].startswith(PASS_THROUGH) and len(out_edges.get(cur.dst[0], [])) == 1:
            cur = out_edges[cur.dst[0]][0]
            path.append(cur)
        if cur.dst and ops[cur.dst[0]].startswith("StreamingConcat"):
            found |= {p.name for p in path}
    return found


def replay_batch(model) -> int:
    """The crops per batch of the graph's replay units (1 without any)."""
    from qonnx.custom_op.registry import getCustomOp
    bs = {getCustomOp(n).get_nodeattr("batch") for n in model.graph.node if n.op_type in REPLAY_OPS}
    if len(bs) > 1:
        raise ValueError(f"replay units with different batches {sorted(bs)}: the host sends one batch size")
    return bs.pop() if bs else 1


def longest_silence(model) -> int:
    """Cycles a healthy design may pass without any stream handshake: a replay unit computes a
    whole batch (its input full, its output not yet started) before it moves a beat."""
    from qonnx.custom_op.registry import getCustomOp
    return max([getCustomOp(n).shape().cycles_per_batch for n in model.graph.node if n.op_type in REPLAY_OPS], default=0)


def crops_in_flight(model) -> int:
    """How many crops a FIFO may have to hold: 1, or with replay units of batch B (which emit
    nothing until B crops are in) 2B + 1, e.g. a dense block's bypass around one."""
    if not any(n.op_type in REPLAY_OPS for n in model.graph.node):
        return 1
    return 2 * replay_batch(model) + 1


UNIFORM_DEPTHS = (2, 8, 32, 128, 512, 2048)
HALVING_ROUNDS = 4
# (6) of size_fifos: the widest FIFOs shrunk one at a time. A FIFO in front of the slowest layer is
# full in every run whatever its depth, and on a wide stream (a 576-bit SWG window) those entries
# cost LUTRAM: bdnn4-hw on the PYNQ-Z2 kept 342 kbit of FIFOs, 74 kbit in one 576 x 128 FIFO.
SHRINK_SIMULATIONS = 24     # at most this many simulations for (6)
SHRINK_MIN_SHARE = 0.01     # FIFOs under this share of the stored bits are left as they are
# A source 3 % faster than the design: upstream FIFOs no longer fill just because the input runs
# ahead of the slowest layer, so high-water marks show what rate mismatches inside the design need.
PACE_MARGIN = 0.97


def size_fifos(model, work: Path, crops: np.ndarray, progress=print, weight_memory: str = "rom",
               weights: dict | None = None, memory: MemoryPolicy = MemoryPolicy()) -> tuple[StitchedDesign, dict]:
    """FIFO depths by simulation, on one compiled design with run-time depth limits.

    (1) Every FIFO at its capacity (a crop's beats, capped): the reference outputs and cycles/crop.
    (2) The same with the input paced just faster than (1)'s rate; every FIFO at its high-water
    mark there (then twice that). A source as fast as the design accepts fills every FIFO before
    the slowest layer whatever its depth, so the unpaced marks only measure that run-ahead.
    And: (3) the dense blocks' bypasses at capacity, every other FIFO at one uniform depth D
    (2, 8, 32, ...): the smallest D that keeps (1)'s outputs and throughput; (4) every FIFO shrunk
    to its high-water mark in (3); (5) the FIFOs still full, bypasses excepted, halved together
    while that keeps (1)'s throughput; if (3) finds no D, the high-water marks of (1) (FINN's
    conservative rule). Every candidate is checked with the input unpaced, as on the board (the
    DMA streams as fast as accepted), and kept only if it passes; of (2) and (3)-(5) the result
    with fewer FIFO bits wins. (6) On the winner, the FIFOs storing the most bits, one at a time:
    the smallest depth (bisected on a log scale) that still passes with every other FIFO as it is."""
    work = Path(work)
    flight = crops_in_flight(model)  # the cap scales with it: a bypass around a replay unit holds 2B+1 crops
    cap = {e.name: min(DEEP_CAP * flight, e.beats_per_crop * flight + MIN_DEPTH) for e in graph_edges(model)}
    weights = {} if weights is None else weights
    design = stitch(model, work / "sizing", cap, runtime_limits=True, weight_memory=weight_memory, weights=weights,
                    memory=memory)
    progress(f"stitched design: {len(design.edges)} FIFOs, {len(design.files)} source files; sizing FIFOs on {len(crops)} crops")
    r_deep = run(model, design, crops, weights=weights, depths=cap)
    bypass = _bypass_edges(model, design)
    tried: dict[str, object] = {"deep": r_deep.cycles_per_crop}

    def attempt(name, depths):
        try:
            r = run(model, design, crops, weights=weights, depths=depths)
        except SimError as e:
            tried[name] = f"failed: {str(e).splitlines()[0]}"
            return None
        tried[name] = r.cycles_per_crop
        good = (np.array_equal(r_deep.outputs, r.outputs)
                and r.cycles_per_crop <= r_deep.cycles_per_crop * (1 + SIZING_TOLERANCE))
        return r if good else None

    def high_water(r):
        return {e: max(MIN_DEPTH, min(cap[e], r.fifo_max[e])) for e in cap}

    pace = PACE_MARGIN * r_deep.cycles_per_crop / design.edges[0].beats_per_crop
    r_paced = run(model, design, crops, weights=weights, depths=cap, pace=pace)
    tried["deep, input paced"] = r_paced.cycles_per_crop
    if not np.array_equal(r_paced.outputs, r_deep.outputs):
        raise SimError("the paced deep run's outputs differ from the unpaced one's (input handling broken)")
    width = {e.name: e.stored_bits for e in design.edges}  # what a FIFO entry stores

    def bits(d):
        return sum(d[e] * width[e] for e in d)

    found = []  # (bits, depths, strategy) of every search that kept the throughput
    for k in (1, 2):
        cand = {e: max(MIN_DEPTH, min(cap[e], k * r_paced.fifo_max[e])) for e in cap}
        name = "paced high-water marks" + (f" x{k}" if k > 1 else "")
        if attempt(name, cand) is not None:
            found.append((bits(cand), cand, name))
            break
    try:  # neither search dominates (Ultra96 BDNN4: paced 305 vs 630 kbit; PYNQ-Z2: 686 vs 385 kbit)
        uni, _, uni_strategy = _uniform_then_shrink(cap, bypass, r_deep, attempt, high_water, tried)
        found.append((bits(uni), uni, uni_strategy))
    except SimError:
        if not found:
            raise
    _, depths, strategy = min(found, key=lambda f: f[0])
    strategy += f" (fewest bits of: {', '.join(f'{n} {b / 1024:,.0f} kbit' for b, _, n in found)})"
    shrunk, n_shrunk = shrink_widest(depths, width, bypass, lambda name, d: attempt(name, d) is not None)
    if n_shrunk:
        strategy += f", then {n_shrunk} widest FIFOs shrunk one at a time ({bits(depths) / 1024:,.0f} -> {bits(shrunk) / 1024:,.0f} kbit)"
        depths = shrunk
    sized = stitch(model, work / "sized", depths, weight_memory=weight_memory, weights=weights,
                   memory=memory)
    rec = {"crops": int(len(crops)), "strategy": strategy, "attempts_cycles_per_crop": tried,
           "simulations": len(tried), "deep_fifo_bits": int(sum(cap[e.name] * e.stored_bits for e in design.edges)),
           "fifo_bits": int(sum(depths[e.name] * e.stored_bits for e in sized.edges)),
           "fifo_bits_padded": int(sum(depths[e.name] * e.width for e in sized.edges)),
           "fifo_bits_in_block_ram": int(sum(depths[e.name] * e.stored_bits for e in sized.edges
                                             if memory.fifo_in_block(depths[e.name]))),
           "bypass_depths": {e: depths[e] for e in sorted(bypass)},
           "edges": {e.name: {"from": e.src[0] if e.src else "input", "to": e.dst[0] if e.dst else "output",
                              "width": e.width, "data_bits": e.stored_bits, "depth": depths[e.name]}
                      for e in sized.edges}}
    return sized, rec


def _uniform_then_shrink(cap, bypass, r_deep, attempt, high_water, tried):
    """Steps (3)-(5) of ``size_fifos``."""
    depths, r, strategy = None, None, None
    for d in UNIFORM_DEPTHS:
        uni = {e: (cap[e] if e in bypass else max(MIN_DEPTH, min(d, cap[e]))) for e in cap}
        r = attempt(f"uniform{d}", uni)
        if r is not None:
            depths, strategy = uni, f"uniform depth {d}, bypasses deep"
            break
    if depths is None:
        depths, r, strategy = high_water(r_deep), r_deep, "high-water marks of the all-deep run"
        if attempt("deep high-water marks", depths) is None:
            raise SimError(f"FIFO sizing failed (cycles/crop per attempt: {tried})")
        return depths, r, strategy
    hw = high_water(r)
    r_hw = attempt("high-water marks", hw)
    if r_hw is not None:
        depths, r, strategy = hw, r_hw, strategy + ", shrunk to high-water marks"
    for k in range(HALVING_ROUNDS):
        # a bypass at its high-water mark is full by definition and holds conv2's latency: keep it
        full = [e for e in depths if e not in bypass and r.fifo_max[e] >= depths[e] and depths[e] > MIN_DEPTH]
        if not full:
            break
        half = {e: (max(MIN_DEPTH, depths[e] // 2) if e in full else depths[e]) for e in depths}
        r_half = attempt(f"halve full FIFOs {k + 1}", half)
        if r_half is None:
            break
        depths, r, strategy = half, r_half, strategy + f", full FIFOs halved x{k + 1}"
    return depths, r, strategy


def shrink_widest(depths: dict[str, int], width: dict[str, int], keep: set[str], passes,
                  budget: int = SHRINK_SIMULATIONS, min_share: float = SHRINK_MIN_SHARE) -> tuple[dict[str, int], int]:
    """Step (6) of ``size_fifos``: FIFOs in order of stored bits (``keep`` excepted: the bypasses hold
    conv2's latency), each bisected on a log scale between MIN_DEPTH and its depth, the others fixed;
    ``passes(name, depths)`` simulates a candidate. Returns the depths and how many FIFOs shrank."""
    depths = dict(depths)
    total = sum(depths[e] * width[e] for e in depths) or 1
    order = sorted((e for e in depths if e not in keep and depths[e] > MIN_DEPTH
                    and depths[e] * width[e] >= min_share * total), key=lambda e: -depths[e] * width[e])
    used, shrunk = 0, 0
    for e in order:
        good, bad = depths[e], MIN_DEPTH - 1     # good passes (as sized); bad: none known yet
        while used < budget and good > max(MIN_DEPTH, 2 * bad):
            d = MIN_DEPTH if bad < MIN_DEPTH else max(bad + 1, int(round((good * bad) ** 0.5)))
            used += 1
            if passes(f"shrink {e} to {d}", {**depths, e: d}):
                good = d
            else:
                bad = d
        shrunk += good < depths[e]
        depths[e] = good
        if used >= budget:
            break
    return depths, shrunk


def finn_fifo_config(model, design: StitchedDesign, clk_ns: float, fpga_part: str) -> dict:
    """The sized depths as finn-plus's ``fifo_config_file`` (its ``auto_fifo_depths=False`` path):
    FINN's own FIFO insertion and naming (``step_set_fifo_depths``) replayed on the stitched graph,
    each StreamingFIFO_rtl given the depth of the stitched edge between the same two nodes; FIFOs
    the stitched design keeps in block RAM become Vivado FIFOs with ``ram_style="block"`` (FINN's
    RTL FIFO is shift-register based)."""
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    from qonnx.transformation.general import GiveReadableTensorNames
    # each FIFO by its (producer, consumer) before FINN renames the nodes
    depth_by_link = {((e.src or ("input",))[0], (e.dst or ("output",))[0]): e.depth for e in design.edges}
    in_block = design.memory.fifo_in_block
    m = model.transform(InsertFIFO(create_shallow_fifos=True))
    m = m.transform(SpecializeLayers(fpga_part))
    fifo_link = {}
    for n in m.graph.node:
        if n.op_type.startswith("StreamingFIFO"):
            prod, cons = m.find_producer(n.input[0]), m.find_consumer(n.output[0])
            fifo_link[n.name] = (prod.name if prod else "input", cons.name if cons else "output")
    order = [n.name for n in m.graph.node]
    m = m.transform(GiveUniqueNodeNamesRecursive())
    m = m.transform(GiveReadableTensorNames())
    renamed = dict(zip(order, (n.name for n in m.graph.node)))
    depths, missing = {}, []
    for old, link in fifo_link.items():
        if link in depth_by_link:
            depths[renamed[old]] = int(depth_by_link[link])
        else:
            missing.append(f"{link[0]} -> {link[1]}")
    if missing:
        raise ValueError(f"FINN inserts FIFOs the stitched design does not have: {missing[:5]}")
    return {"fifo_depths": depths, "impl_style": {k: "vivado" if in_block(d) else "rtl" for k, d in depths.items()},
            "ram_style": {k: "block" if in_block(d) else "auto" for k, d in depths.items()},
            "source": "bdnn stitched Verilator simulation (hw/rtl/stitched_sim.py)"}


def evaluate(codegen_graph, fpga_part: str, clk_ns: float, work: Path, crops: np.ndarray,
             expected: np.ndarray, sizing_crops: int = 2, progress=print, weight_memory: str = "rom",
             memory: MemoryPolicy = MemoryPolicy()) -> dict:
    """The summary's ``stitched_sim`` record: size FIFOs on a few crops, then stream all crops
    back to back and compare every output with ``expected`` (the cpu engine's popcounts)."""
    from qonnx.core.modelwrapper import ModelWrapper
    work = Path(work)
    model = prepare_graph(ModelWrapper(str(codegen_graph)), fpga_part, clk_ns)
    work.mkdir(parents=True, exist_ok=True)
    model.save(str(work / "stitch_graph.onnx"))
    weights: dict = {}
    b = replay_batch(model)
    if len(crops) % b:
        raise ValueError(f"{len(crops)} crops: the replay units need whole batches of {b}")
    sizing_crops = max(sizing_crops, 2 * b)  # at least two batches: one steady-state interval
    design, sizing = size_fifos(model, work, crops[:sizing_crops], progress, weight_memory, weights, memory)
    progress(f"FIFOs sized: {sizing['fifo_bits'] / 1024:,.0f} kbit in all; streaming {len(crops)} crops")
    r = run(model, design, crops, weights=weights)
    got = r.outputs.reshape(len(crops), -1)
    mism = int((got != np.asarray(expected).reshape(len(crops), -1)).any(axis=1).sum())
    fclk = 1000.0 / clk_ns
    return {"crops": int(len(crops)), "mismatches": mism, "cycles_per_crop": r.cycles_per_crop,
            "ddr_weight_bytes_per_crop": ddr_weight_bytes_per_crop(model, design, r, len(crops)),
            "latency_cycles": r.latency_cycles, "measured_crops_per_s": fclk * 1e6 / r.cycles_per_crop,
            "latency_us": r.latency_cycles / fclk, "sim_cycles_per_s": r.sim_cycles_per_s,
            "sim_seconds": r.sim_seconds, "fclk_mhz": fclk, "fifo_sizing": sizing,
            "design": {"top": design.top, "files": len(design.files), "fifos": len(design.edges),
                       "weight_memory": weight_memory, "memory_policy": memory.__dict__,
                       "external_weight_streams": [n for _, n, _ in design.weight_ports]},
            "_design": design, "_finn_fifo_config": finn_fifo_config(model, design, clk_ns, fpga_part)}
