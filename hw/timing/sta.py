"""Static path analysis of a yosys-mapped Xilinx netlist (``write_json`` after ``synth_xilinx``).

Why not yosys' own passes: ``sta`` knows only LUT / CARRY / MUXF arcs (no flip-flop or RAM timing),
and ``ltp`` counts cells, not delays, and reports false loops through carry chains and LUT RAMs.
This analysis works on bits:

- start points: outputs of flip-flops, block RAM and LUT RAM / SRL (their clock-to-out from the cell
  library), and the design's input ports;
- end points: data, clock-enable and reset inputs of those cells (their setup time), and the
  design's output ports;
- in between: LUT, MUXF, CARRY and LUT-RAM read arcs, each net adding the family's routing allowance
  for its fanout (``delays.Family``).

A port is taken to be registered on its other side: an input arrives a flip-flop's clock-to-out after
the edge, an output must arrive a flip-flop's setup before it. That holds in the stitched design,
where every edge between units is a ``stream_fifo`` and the top level's ports are AXI streams to a
DMA; a unit synthesized alone thus shows its half of each path through a port, and the stitched
design the whole one.

The hierarchy is flattened here, so each cell keeps its instance path: a path is named by its
start and end cells and by the unit (the top-level instance) it ends in.
"""
from __future__ import annotations

import heapq
import json
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .delays import DELAY_MODEL, FAMILIES, Family, cell_timing

LOGIC_CELLS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV", "MUXF7", "MUXF8", "MUXF9", "CARRY4", "CARRY8")
LUT_CELLS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV")
PORT_CLK_TO_OUT_PS = 303       # an FDRE's clock-to-out: what a registered input port costs
PORT_SETUP_PS = 109            # an FDRE's clock-enable setup: what a registered output port needs
UNKNOWN_CLK_TO_OUT_PS = 1000   # a cell without figures: a boundary, listed in ``unmodelled``
UNKNOWN_SETUP_PS = 500
TOOL = "bdnn_hw.timing (pre-route static path analysis over yosys synth_xilinx netlists)"


class TimingError(RuntimeError):
    pass


@dataclass
class Path_:
    start: str            # "<instance path>/<pin>" or "port <name>[bit]"
    end: str
    unit: str             # the top-level instance the path ends in ("" for a top port)
    levels: int           # logic cells on the path (LUT, MUXF, CARRY), as Vivado counts logic levels
    lut_levels: int
    ns: float             # estimated arrival at the end point, setup included
    logic_ns: float       # of which cells (clock-to-out, arcs, setup)
    cells: list[str] = field(default_factory=list)


@dataclass
class TimingReport:
    tool: str
    delay_model: str
    routing: str
    family: str
    clock_mhz: float
    worst: dict
    est_fmax_mhz: float
    meets: bool
    margin: float                     # 1 - worst / period (negative: misses)
    levels_distribution: dict[str, int]   # logic levels of each end point's worst path -> end points
    paths: list[dict]                 # the worst paths, at most one per end-point cell, worst first
    per_unit: dict[str, dict]         # unit -> its worst path's levels / ns / est. Fmax
    endpoints: int
    unmodelled: list[str]
    note: str = "pre-route estimate: logic levels and cell delays are from the mapped netlist, routing is an allowance; sign-off needs place and route"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """The figures a build summary keeps (no path list)."""
        d = self.to_dict()
        d.pop("paths")
        return d


def _int_param(v) -> int:
    if isinstance(v, int):
        return v
    s = str(v).strip()
    if s and set(s) <= {"0", "1", "x", "z"}:
        return int(s.replace("x", "0").replace("z", "0"), 2)
    try:
        return int(s)
    except ValueError:
        return 0


# write_json keeps the cell library's (white)box modules beside the design: those are leaf cells
_LIBRARY_ATTRS = ("blackbox", "whitebox", "lib_whitebox", "abc9_box", "abc9_flop")


def flatten(netlist: dict, top: str | None = None) -> tuple[list[dict], dict[str, list], dict[str, list], dict]:
    """Leaf cells of the design with their instance paths and global bit ids, the top's input and
    output ports (name -> bits), and the public names of the top's nets (bit -> (name, index)): in a
    netlist flattened by yosys they keep the hierarchy ("MVAU_0_i.core.acc")."""
    mods = {k.lstrip("\\"): v for k, v in netlist["modules"].items()
            if not any(_int_param(v.get("attributes", {}).get(a, 0)) for a in _LIBRARY_ATTRS)}
    if top is None:
        tops = [k for k, v in mods.items() if _int_param(v.get("attributes", {}).get("top", 0))]
        if len(tops) != 1:
            raise TimingError(f"no single top module among {sorted(mods)[:8]}...; name it")
        top = tops[0]
    top = top.lstrip("\\")
    if top not in mods:
        raise TimingError(f"{top} is not a module of the netlist")
    def _all_bits(m):
        for c in m.get("cells", {}).values():
            for bits in c.get("connections", {}).values():
                yield from (b for b in bits if isinstance(b, int))
        for info in m.get("ports", {}).values():
            yield from (b for b in info["bits"] if isinstance(b, int))
    counter = [max((b for m in mods.values() for b in _all_bits(m)), default=0) + 1]   # fresh ids for submodule bits
    leaves: list[dict] = []

    def walk(mname: str, prefix: str, bitmap: dict | None):
        m = mods[mname]
        local: dict = dict(bitmap or {})

        def g(b):
            if not isinstance(b, int):
                return b          # constant "0" / "1" / "x"
            if bitmap is None:
                return b          # the top keeps its own bit ids
            if b not in local:
                local[b] = counter[0]
                counter[0] += 1
            return local[b]
        for cname, c in m.get("cells", {}).items():
            ctype = c["type"].lstrip("\\")
            path = f"{prefix}{cname.lstrip(chr(92))}"
            conns = {p: [g(b) for b in bits] for p, bits in c.get("connections", {}).items()}
            if ctype in mods:
                sub = mods[ctype]
                sub_map = {}
                for p, info in sub.get("ports", {}).items():
                    outer = conns.get(p, [])
                    for i, b in enumerate(info["bits"]):
                        if isinstance(b, int) and i < len(outer):
                            sub_map[b] = outer[i]
                walk(ctype, path + "/", sub_map)
            else:
                leaves.append({"path": path, "type": ctype, "params": c.get("parameters", {}),
                               "dirs": c.get("port_directions", {}), "conns": conns})
    names: dict = {}
    for n, info in mods[top].get("netnames", {}).items():
        if n.startswith("$") or info.get("hide_name"):
            continue
        for i, b in enumerate(info["bits"]):
            if isinstance(b, int) and (b not in names or len(n) < len(names[b][0])):
                names[b] = (n, i if len(info["bits"]) > 1 else None)
    ins, outs = {}, {}
    for p, info in mods[top].get("ports", {}).items():
        (ins if info["direction"] == "input" else outs)[p] = info["bits"]
    walk(top, "", None)
    return leaves, ins, outs, names


def _dedicated(leaves: list, drv, sink_type: str, sink_pin: str) -> bool:
    """Connections inside a slice that use dedicated wires, not the routing fabric: a carry chain's
    cascade (CO -> CI of the next CARRY) and the wide multiplexers' inputs (LUT / MUXF7 -> MUXF7 / MUXF8)."""
    if drv is None:
        return False
    dtype = leaves[drv[0]]["type"]
    if sink_type in ("CARRY4", "CARRY8") and sink_pin == "CI":
        return dtype in ("CARRY4", "CARRY8") and drv[1] == "CO"
    if sink_type in ("MUXF7", "MUXF8", "MUXF9") and sink_pin in ("I0", "I1"):
        return dtype.startswith(("LUT", "MUXF"))
    return False


def _pin(port: str, i: int, width: int) -> list[str]:
    return [f"{port}[{i}]", port] if width > 1 else [port, f"{port}[0]"]


def _lookup(table: dict, keys: list[str]):
    for k in keys:
        if k in table:
            return table[k]
    return None


def analyze(netlist: dict, clock_mhz: float, family: str = "xc7", top: str | None = None,
            n_paths: int = 10, ignore_ports: str | None = None) -> TimingReport:
    """The timing estimate of a mapped netlist at ``clock_mhz`` on ``family``'s fabric.
    ``ignore_ports``: a regular expression of top-level ports that are not part of the hardware
    (the stitched design's simulation probes) and start or end no path."""
    fam: Family = FAMILIES[family]
    leaves, in_ports, out_ports, netname = flatten(netlist, top)
    if ignore_ports:
        import re
        skip = re.compile(ignore_ports)
        in_ports = {p: b for p, b in in_ports.items() if not skip.fullmatch(p)}
        out_ports = {p: b for p, b in out_ports.items() if not skip.fullmatch(p)}

    def label(ci: int, pin: str) -> str:
        """A register is named by the net it drives where that has a public name (as Vivado names a
        register by its signal), else by its cell; a path's unit is the first part of that name."""
        c = leaves[ci]
        for p_, bits in c["conns"].items():
            if c["dirs"].get(p_) == "output":
                for b in bits:
                    if b in netname:
                        n, i = netname[b]
                        return f"{n}[{i}]" if i is not None else n
        return f"{c['path']}/{pin}"

    def unit_of(name: str) -> str:
        head = name.split("/", 1)[0]
        return head.split(".", 1)[0] if ("." in head or "/" in name) else ""
    period_ps = 1e6 / clock_mhz

    # nets: driver (cell index, pin, bit) and sink pins; arrival is kept per net at its driver
    driver: dict = {}
    sinks: dict = defaultdict(list)
    unmodelled: Counter = Counter()
    timing = []
    for ci, c in enumerate(leaves):
        ct = cell_timing(c["type"])
        timing.append(ct)
        if ct is None:
            unmodelled[c["type"]] += 1
        for p, bits in c["conns"].items():
            d = c["dirs"].get(p, "input")
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                if d == "output":
                    driver[b] = (ci, p, i, len(bits))
                else:
                    sinks[b].append((ci, p, i, len(bits)))
    for p, bits in out_ports.items():
        for i, b in enumerate(bits):
            if isinstance(b, int):
                sinks[b].append((-1, p, i, len(bits)))
    fanout = {b: len(s) for b, s in sinks.items()}

    def net_ps(b) -> float:
        return 1000.0 * fam.net_ns(fanout.get(b, 1))

    # start points
    arr: dict = {}      # net -> (arrival ps, logic ps, levels, lut levels, from net or None, start label, cell)
    for p, bits in in_ports.items():
        for i, b in enumerate(bits):
            if isinstance(b, int) and b not in driver:
                arr[b] = (PORT_CLK_TO_OUT_PS, PORT_CLK_TO_OUT_PS, 0, 0, None, f"port {p}[{i}]", None)
    comb_out: dict[int, list] = defaultdict(list)   # cell -> its output bits driven through arcs
    for b, (ci, p, i, w) in driver.items():
        c, ct = leaves[ci], timing[ci]
        if ct is None:
            arr[b] = (UNKNOWN_CLK_TO_OUT_PS, UNKNOWN_CLK_TO_OUT_PS, 0, 0, None, label(ci, p), ci)
            continue
        table = ct.clk_to_out
        if ct.clk_to_out_reg:
            reg = "DOA_REG" if p.startswith(("DOA", "DOPA", "DOUTA", "DOUTPA")) else "DOB_REG"
            if _int_param(c["params"].get(reg, 0)):
                table = ct.clk_to_out_reg
        d = _lookup(table, _pin(p, i, w))
        if d is not None:
            arr[b] = (d, d, 0, 0, None, label(ci, f"{p}[{i}]" if w > 1 else p), ci)
        has_arc = any(z in _pin(p, i, w) for (_, z) in ct.comb)
        if has_arc:
            comb_out[ci].append(b)

    # combinational arcs: out bit -> [(in bit, ps)]
    arcs: dict = {}
    for ci, outs in comb_out.items():
        c, ct = leaves[ci], timing[ci]
        ins = [(p, i, len(bits), b) for p, bits in c["conns"].items() if c["dirs"].get(p, "input") != "output"
               for i, b in enumerate(bits) if isinstance(b, int)]
        for ob in outs:
            _, op, oi, ow = driver[ob]
            okeys = _pin(op, oi, ow)
            lst = []
            for p, i, w, b in ins:
                for ik in _pin(p, i, w):
                    d = next((ct.comb[(ik, ok)] for ok in okeys if (ik, ok) in ct.comb), None)
                    if d is not None:
                        lst.append((b, d, _dedicated(leaves, driver.get(b), c["type"], p)))
                        break
            arcs[ob] = lst

    # longest paths in topological order over the arcs (Kahn); what is left over is a loop
    deps = {ob: [b for b, _, _ in lst if b in arcs] for ob, lst in arcs.items()}
    users: dict = defaultdict(list)
    indeg = {}
    for ob, ds in deps.items():
        indeg[ob] = len(ds)
        for b in ds:
            users[b].append(ob)
    ready = [ob for ob, k in indeg.items() if k == 0]
    order = []
    while ready:
        ob = ready.pop()
        order.append(ob)
        for u in users[ob]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    loops = len(arcs) - len(order)
    for ob in order:
        ci = driver[ob][0]
        ctype = leaves[ci]["type"]
        is_logic = ctype in LOGIC_CELLS
        is_lut = ctype in LUT_CELLS
        best = arr.get(ob)          # a LUT RAM output may be a start point too (write clock -> out)
        for b, d, dedicated in arcs[ob]:
            a = arr.get(b)
            if a is None:
                continue            # driven by a constant or undriven
            t = a[0] + (0.0 if dedicated else net_ps(b)) + d
            if best is None or t > best[0]:
                best = (t, a[1] + d, a[2] + is_logic, a[3] + is_lut, b, a[5], ci)
        if best is not None:
            arr[ob] = best

    # end points
    ends = []   # (ps, logic ps, levels, lut levels, from net, end label, unit)
    for b, lst in sinks.items():
        a = arr.get(b)
        if a is None:
            continue
        for ci, p, i, w in lst:
            if ci == -1:
                ends.append((a[0] + net_ps(b) + PORT_SETUP_PS, a[1] + PORT_SETUP_PS, a[2], a[3], b, f"port {p}[{i}]", ""))
                continue
            c, ct = leaves[ci], timing[ci]
            if ct is None:
                su = UNKNOWN_SETUP_PS
            elif ct.setup:
                su = _lookup(ct.setup, _pin(p, i, w))
                if su is None:
                    continue        # e.g. a clock pin, or an input that only feeds an arc
            else:
                continue            # a combinational cell's input
            end = label(ci, f"{p}[{i}]" if w > 1 else p) + f" ({p})"
            ends.append((a[0] + net_ps(b) + su, a[1] + su, a[2], a[3], b, end, unit_of(end)))
    if not ends:
        raise TimingError("no timed path: the netlist has no end point reached from a start point")

    def trace(b) -> list[str]:
        cells = []
        while b is not None:
            a = arr[b]
            if a[6] is not None:
                cells.append(f"{leaves[a[6]]['type']} {leaves[a[6]]['path']} @ {a[0] / 1000:.2f} ns, fanout {fanout.get(b, 0)}")
            b = a[4]
        return cells[::-1]

    def as_path(e) -> Path_:
        ps, logic, lv, lut, b, label, unit = e
        start = b
        while arr[start][4] is not None:
            start = arr[start][4]
        return Path_(start=arr[start][5], end=label, unit=unit, levels=lv, lut_levels=lut, ns=round(ps / 1000, 3),
                     logic_ns=round(logic / 1000, 3), cells=trace(b))

    # worst per end-point cell (a 32-bit register is one end point in a report, as in Vivado's by-cell view)
    by_cell: dict[str, tuple] = {}
    for e in ends:
        key = e[5]
        if key not in by_cell or e[0] > by_cell[key][0]:
            by_cell[key] = e
    worst_ends = heapq.nlargest(n_paths, by_cell.values(), key=lambda e: e[0])
    paths = [as_path(e) for e in worst_ends]
    per_unit: dict[str, dict] = {}
    for e in ends:
        u = e[6] or "(top ports)"
        if u not in per_unit or e[0] > per_unit[u]["_ps"]:
            per_unit[u] = {"_ps": e[0], "levels": e[2], "lut_levels": e[3]}
    per_unit = {u: {"levels": v["levels"], "lut_levels": v["lut_levels"], "ns": round(v["_ps"] / 1000, 3),
                    "est_fmax_mhz": round(1e6 / v["_ps"], 1), "meets": v["_ps"] <= period_ps}
                for u, v in sorted(per_unit.items(), key=lambda kv: -kv[1]["_ps"])}
    dist = Counter(e[2] for e in by_cell.values())
    worst = paths[0]
    wp = max(e[0] for e in ends)
    notes = [f"{n} x {t}" for t, n in sorted(unmodelled.items())]
    if loops:
        notes.append(f"{loops} combinational loop bits left untimed")
    return TimingReport(
        tool=TOOL, delay_model=DELAY_MODEL, routing=fam.description, family=family, clock_mhz=clock_mhz,
        worst={"start": worst.start, "end": worst.end, "unit": worst.unit, "levels": worst.levels,
               "lut_levels": worst.lut_levels, "ns": worst.ns, "logic_ns": worst.logic_ns},
        est_fmax_mhz=round(1e6 / wp, 1), meets=wp <= period_ps, margin=round(1 - wp / period_ps, 4),
        levels_distribution={str(k): v for k, v in sorted(dist.items())},
        paths=[asdict(p) for p in paths], per_unit=per_unit, endpoints=len(by_cell), unmodelled=notes)


def analyze_file(path: str | Path, clock_mhz: float, family: str = "xc7", top: str | None = None,
                 n_paths: int = 10, ignore_ports: str | None = None) -> TimingReport:
    return analyze(json.loads(Path(path).read_text()), clock_mhz, family, top, n_paths, ignore_ports)


def markdown(rep: TimingReport, title: str = "Timing estimate") -> str:
    """The report's section: the clock, the verdict, the ten worst paths, the level distribution."""
    period = 1000 / rep.clock_mhz
    lines = [f"## {title}", "",
             f"Pre-route estimate ({rep.tool}): **{'meets' if rep.meets else 'misses'} {rep.clock_mhz:g} MHz** "
             f"({period:.2f} ns) on {rep.family}: worst path {rep.worst['ns']:.2f} ns, {rep.worst['levels']} logic levels "
             f"({rep.worst['lut_levels']} LUT), estimated Fmax {rep.est_fmax_mhz:g} MHz, margin {100 * rep.margin:.1f} %.",
             "", f"Delay model: {rep.delay_model}. Routing: {rep.routing}. {rep.note}.", "",
             "| # | ns | levels (LUT) | unit | start | end |", "|---|---|---|---|---|---|"]
    for k, p in enumerate(rep.paths, 1):
        lines.append(f"| {k} | {p['ns']:.2f} | {p['levels']} ({p['lut_levels']}) | {p['unit'] or '-'} | `{p['start']}` | `{p['end']}` |")
    lines += ["", "Logic levels of each end point's worst path: " +
              ", ".join(f"{k}: {v}" for k, v in rep.levels_distribution.items()) + f" ({rep.endpoints} end points)."]
    if rep.unmodelled:
        lines.append(f"Not modelled (treated as registers): {', '.join(rep.unmodelled)}.")
    return "\n".join(lines) + "\n"


def crops_per_s_at(cycles_per_crop: float, mhz: float) -> float:
    return mhz * 1e6 / cycles_per_crop if cycles_per_crop else math.nan


EVIDENCE = "pre-route estimate (yosys-mapped netlist, cell-library delays, a stated routing allowance); sign-off needs place and route"


def build_timing(report: dict | None, cycles_per_crop: float | None, reason: str | None = None) -> dict:
    """The build summary's ``timing``: the whole design's estimate without its path list, with the
    crops/s each clock gives (the board's clock; the estimated Fmax where the design misses it)."""
    if not report:
        return {"ran": False, "reason": reason or "the whole design was not synthesized"}
    t = {k: v for k, v in report.items() if k not in ("paths", "per_unit")}
    t["ran"] = True
    t["evidence"] = EVIDENCE
    t["units_missing_clock"] = [u for u, v in report.get("per_unit", {}).items() if not v["meets"]]
    if cycles_per_crop:
        t["crops_per_s_at_clock"] = round(crops_per_s_at(cycles_per_crop, report["clock_mhz"]), 1)
        t["crops_per_s_at_est_fmax"] = round(crops_per_s_at(cycles_per_crop, min(report["clock_mhz"], report["est_fmax_mhz"])), 1)
    return t


def port_cone(netlist: dict, port: str, top: str | None = None) -> set[tuple[str, str]]:
    """The (cell type, pin) end points an input port reaches through combinational logic: e.g. that
    a stream's ready reaches no block RAM address or enable."""
    leaves, ins, _, _ = flatten(netlist, top)
    sinks: dict = defaultdict(list)
    for ci, c in enumerate(leaves):
        for p, bits in c["conns"].items():
            if c["dirs"].get(p, "input") != "output":
                for b in bits:
                    if isinstance(b, int):
                        sinks[b].append((ci, p))
    seen, todo, ends = set(), [b for b in ins.get(port, []) if isinstance(b, int)], set()
    while todo:
        b = todo.pop()
        if b in seen:
            continue
        seen.add(b)
        for ci, p in sinks.get(b, []):
            c = leaves[ci]
            ct = cell_timing(c["type"])
            if ct is None or ct.setup and not any(a == p or a.startswith(p + "[") for a, _ in ct.comb):
                ends.add((c["type"], p))
                if ct is None or not ct.comb:
                    continue
            for op, bits in c["conns"].items():
                if c["dirs"].get(op) == "output" and ct is not None and any(
                        (a == p or a.startswith(p + "[")) and (z == op or z.startswith(op + "[")) for a, z in ct.comb):
                    todo += [x for x in bits if isinstance(x, int)]
    return ends
