"""Open-tool hardware evidence for FINN's generated RTL: Verilator simulation (``harness``,
``units``, ``execute``), yosys synthesis (``synth``) and the tools themselves (``tools``)."""
