"""Shared entry of the per-network build scripts: bootstrap the environment, run hw/build.py."""
import sys


def run(arch: str) -> None:
    from bootstrap import ensure_env
    ensure_env()  # creates .venv on first use and re-executes the calling script inside it
    from bdnn_hw.build import main
    sys.exit(main(arch))
