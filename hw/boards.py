"""Board facts, defined once: part, clock, resource budgets, shell.

Budgets are the devices' totals (BRAM counted as BRAM36; FINN's estimator reports BRAM_18K,
two of which make one BRAM36).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Board:
    key: str            # CLI name
    finn_board: str     # FINN's board name
    fpga_part: str
    fclk_mhz: float
    lut: int
    ff: int
    bram36: int
    dsp: int
    axi_port_width: int  # bits, the PS-PL HP port FINN's ZYNQ shell uses
    default_target_crops_per_s: int = 1000
    lut_limit: float = 0.90   # fit criterion: leave room for FIFOs, DMAs and the shell
    bram_limit: float = 1.00
    synth_family: str = "xc7"  # yosys synth_xilinx -family: the fabric's cell library
    # the all-RTL stitched design's own memory placement (hw/rtl/stitch.py MemoryPolicy): FIFOs this
    # deep and weight ROMs this large go to block RAM. Where LUTs bind (Ultra96, measured by yosys:
    # 66.4k LUT = 94 %, 180 of 216 BRAM36) a 1152 x 128 weight ROM in LUTs is ~2.3k LUTs or 16 BRAM36
    rtl_fifo_block_min_depth: int | None = None
    rtl_rom_block_min_bits: int | None = None
    # weight-replaying units for the layers whose weights stream from DDR (hw/rtl/replay_op.py), B
    # crops per batch: where DDR binds (PYNQ-Z2 BDNN4: 70 crops/s with FINN's external mode) a face's
    # five crops share each weight fetch; 0 = FINN's external weight mode
    replay_batch: int = 0
    # --rtl-only folds with the project ops' per-unit LUT model; the whole stitched design adds what no
    # unit owns (the FIFOs on every edge, width converters, LUT-held weight ROMs): yosys of whole
    # designs over the model's sum, measured (tests/test_hw_evidence.py keeps it true of every record)
    rtl_whole_design_lut_factor: float = 1.0
    # ... and block RAM beyond the units' and the ROMs the memory policy moves: the FIFO memories yosys
    # maps to block RAM itself (measured the same way)
    rtl_whole_design_bram36_extra: float = 0.0

    @property
    def clk_period_ns(self) -> float:
        return 1000.0 / self.fclk_mhz

    def to_dict(self) -> dict:
        return asdict(self)


BOARDS: dict[str, Board] = {
    # PYNQ-Z2: weight ROMs of >= 100 kbit in block RAM, as FINN's estimate counts them ("auto"): left to
    # yosys, bdnn4-hw's two 1152 x 128 block-2 ROMs became 6.3-6.6k LUTs each (hierarchical synthesis)
    "pynq-z2": Board("pynq-z2", "Pynq-Z2", "xc7z020clg400-1", 100.0, 53_200, 106_400, 140, 220, 64, 1000,
                     replay_batch=5, rtl_rom_block_min_bits=100_000,
                     # BDNN4 --rtl-only: 52,734 / 38,014 = 1.387 (1,765 crops/s), 41,913 / 30,622 = 1.369 (1,300)
                     # BRAM36: 155 - 143 = 12 (1,765), 113 - 101.5 = 11.5 (1,300)
                     rtl_whole_design_lut_factor=1.40, rtl_whole_design_bram36_extra=12.0),
    # Ultra96: replay units too: with FINN's external mode BDNN2 and BDNN3 were DDR-bound at
    # 684 and 1,367 crops/s; with B = 5 they reach 3,418 and 3,543 (estimates). Models that keep every
    # weight on chip (BDNN4, bdnn4-hw, BCNN4 by default) have no replay unit and are unchanged
    "ultra96": Board("ultra96", "Ultra96", "xczu3eg-sbva484-1-e", 200.0, 70_560, 141_120, 216, 360, 128, 3000,
                     replay_batch=5,
                     synth_family="xcup", rtl_fifo_block_min_depth=1024, rtl_rom_block_min_bits=100_000,
                     # BDNN4 --rtl-only, block 4's conv2 replayed: 53,184 / 38,014 = 1.399 (3,371 crops/s),
                     # 52,831 / 38,014 = 1.390 (3,530); BRAM36 153.5 - 143 = 10.5, 155 - 143 = 12
                     rtl_whole_design_lut_factor=1.40, rtl_whole_design_bram36_extra=12.0),
}


def get_board(key: str) -> Board:
    try:
        return BOARDS[key.lower()]
    except KeyError:
        raise ValueError(f"unknown board {key!r}; choose one of {', '.join(BOARDS)} or 'all'") from None
