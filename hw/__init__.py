"""Everything FINN/hardware: export, custom FINN passes and build steps, boards, folding.

Import ``bdnn_hw.finn_env`` (done by every module here that touches FINN) before FINN itself:
it makes FINN importable without Vivado and gives it a build directory.
"""
