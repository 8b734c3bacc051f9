#!/usr/bin/env python3
"""Run the test suite inside the project environment (bootstrapping it first).

    python3 build_scripts/run_tests.py [pytest args]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bootstrap import REPO, ensure_env  # noqa: E402

ensure_env()
import pytest  # noqa: E402

args = sys.argv[1:]
paths = [a for a in args if not a.startswith("-")]
sys.exit(pytest.main(["-q", *([] if paths else [str(REPO / "tests")]), *args]))
