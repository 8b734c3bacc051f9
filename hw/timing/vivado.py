"""The sign-off half of timing, for machines with Vivado: the clock constraint the design is built
against and the routed design's ``report_timing_summary``, whose worst negative slack fails the
build when below zero. The open-tool estimate (``sta``) is the pre-route part; this is place and
route's verdict. Without Vivado nothing here runs (hw.finn_env.vivado_available gates it)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

CONSTRAINT_FILE = "clock.xdc"
REPORT_FILE = "timing_summary.rpt"


class TimingViolation(RuntimeError):
    """The routed design misses its clock (WNS < 0)."""


def clock_constraint(clock_mhz: float, port: str = "ap_clk") -> str:
    """The XDC of the dataflow clock: FINN's Zynq shell sets the PS clock to the same period, so
    the routed design and an out-of-context run of the stitched IP are timed against one figure."""
    return f"create_clock -name {port} -period {1000.0 / clock_mhz:.3f} [get_ports {port}]\n"


def timing_tcl(project: Path, report: Path) -> str:
    return (f"open_project {{{project}}}\nopen_run impl_1\n"
            f"report_timing_summary -delay_type min_max -max_paths 10 -file {{{report}}}\nexit\n")


_HEADER = re.compile(r"^\s*WNS\(ns\)\s+TNS\(ns\).*$", re.M)


def parse_wns(report_text: str) -> float:
    """WNS (ns) from the "Design Timing Summary" table of ``report_timing_summary``."""
    m = _HEADER.search(report_text)
    if not m:
        raise ValueError("no Design Timing Summary table (WNS(ns) ...) in the timing report")
    for line in report_text[m.end():].splitlines():
        nums = re.findall(r"-?\d+\.\d+|-?\d+", line)
        if nums and not set(line.strip()) <= {"-", " "}:
            return float(nums[0])
    raise ValueError("the Design Timing Summary table has no figures")


def check(report_text: str, clock_mhz: float) -> dict:
    """The routed verdict; raises TimingViolation on negative WNS."""
    wns = parse_wns(report_text)
    period = 1000.0 / clock_mhz
    res = {"wns_ns": wns, "clock_mhz": clock_mhz, "fmax_mhz": round(1000.0 / (period - wns), 1), "meets": wns >= 0,
           "evidence": "Vivado place and route (report_timing_summary)"}
    if wns < 0:
        raise TimingViolation(f"the routed design misses {clock_mhz:g} MHz: WNS {wns:.3f} ns "
                              f"(Fmax {res['fmax_mhz']:g} MHz); see {REPORT_FILE}")
    return res


def sign_off(build_dir: Path, clock_mhz: float) -> dict:
    """Write the clock constraint, report the routed design's timing with Vivado and check it."""
    build_dir = Path(build_dir)
    (build_dir / CONSTRAINT_FILE).write_text(clock_constraint(clock_mhz))
    projects = sorted(build_dir.rglob("*.xpr"), key=lambda p: p.stat().st_mtime)
    if not projects:
        raise FileNotFoundError(f"{build_dir}: no Vivado project (.xpr) from the bitfile stage")
    tcl = build_dir / "timing_summary.tcl"
    tcl.write_text(timing_tcl(projects[-1], build_dir / REPORT_FILE))
    vivado = shutil.which("vivado")
    if vivado is None:
        raise FileNotFoundError("vivado is not on PATH")
    subprocess.run([vivado, "-mode", "batch", "-nojournal", "-nolog", "-source", str(tcl)], check=True, cwd=build_dir)
    return check((build_dir / REPORT_FILE).read_text(), clock_mhz)
