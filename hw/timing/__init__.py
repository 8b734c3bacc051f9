"""Pre-route timing estimate of the mapped netlists: ``sta`` (the path analysis), ``delays`` (the
cell library figures and the routing allowance it uses), and the pipeline depths chosen from a clock (``pipeline``)."""
from .sta import TOOL, TimingError, TimingReport, analyze, analyze_file, markdown  # noqa: F401
