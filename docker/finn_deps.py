#!/usr/bin/env python3
"""Fetch FINN+'s external dependencies (finn-hlslib, board files, ...) into $FINN_DEPS.

`finn deps update` cannot run in the image build: it first checks Vivado's simulator (XSI) and
stops without Vivado, which is mounted only at run time. This runs FINN+'s own dependency
updater (the same definitions, non-interactive) without that check.

    python3 docker/finn_deps.py [auto|yes|no]

auto: fetch when github.com is reachable, else say so and exit 0; yes: any failure is an error
(exit 1); no: skip. The open-tool stages (FINN estimates, code generation, Verilator, yosys) need
none of these; the HLS and Vivado stages do.
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

NEEDED_BY = "the HLS and Vivado stages (finn-hlslib, board files); the open-tool stages do not need them"


def github_unreachable() -> str | None:
    try:
        socket.create_connection(("github.com", 443), timeout=10).close()
        return None
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def fetch() -> None:
    from finn.interface.manage_deps import DependencyUpdater
    from finn.interface.settings import FINNSettings
    settings = FINNSettings.init(auto_set_environment_vars=True, automatic_dependency_updates=True, flow_config=Path())
    print(f"finn_deps: fetching into {settings.finn_deps} ({settings.finn_deps_definitions.name})", flush=True)
    DependencyUpdater(dependency_location=settings.finn_deps, dependency_definition_file=settings.finn_deps_definitions,
                      git_timeout_s=settings.deps_git_timeout, non_interactive=True).update()


def main(mode: str) -> int:
    if mode not in ("auto", "yes", "no"):
        print(f"finn_deps: unknown mode {mode!r} (auto | yes | no)", file=sys.stderr)
        return 2
    if mode == "no":
        print(f"finn_deps: skipped (FETCH_FINN_DEPS=no); needed by {NEEDED_BY}")
        return 0
    why = github_unreachable()
    if why and mode == "auto":
        print(f"finn_deps: NOT fetched: github.com:443 is unreachable from this build ({why}).\n"
              f"  Needed by {NEEDED_BY}.\n"
              "  Rebuild where GitHub is reachable (docker build ... --build-arg FETCH_FINN_DEPS=yes), "
              f"or run `python3 docker/finn_deps.py yes` in the container (into {os.environ.get('FINN_DEPS', 'FINN_DEPS')}).")
        return 0
    try:
        fetch()
    except SystemExit as e:   # FINN+'s updater exits 1 after printing which dependency failed
        if e.code:
            print(f"finn_deps: FAILED (exit status {e.code}, see above); needed by {NEEDED_BY}"
                  + (f"; github.com:443 was unreachable ({why})" if why else ""), file=sys.stderr)
            return 1
    print("finn_deps: done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "auto"))
