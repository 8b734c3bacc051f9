#!/usr/bin/env python3
"""Build BDNN4 for PYNQ-Z2 and Ultra96 (see hw/build.py; --help for options)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bootstrap import ensure_env  # noqa: E402

ensure_env()  # creates .venv on first use and re-executes this script inside it
from bdnn_hw.build import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("bdnn4"))
