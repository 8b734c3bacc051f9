#!/usr/bin/env python3
"""Build BDNN4-HW (the hardware-aware variant: block 4 at 256 channels, so the convs fit the PYNQ-Z2's BRAM) for PYNQ-Z2 and Ultra96 (options: --help; the flow lives in hw/build.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _entry import run  # noqa: E402

if __name__ == "__main__":
    run("bdnn4-hw")
