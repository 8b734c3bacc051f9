"""Human-readable build reports: a markdown table and a per-layer resources/cycles plot."""
from __future__ import annotations

from pathlib import Path


def layer_table(summary: dict) -> str:
    rows = ["| layer (role) | FINN node | PE | SIMD | memory | cycles | LUT | BRAM18 |",
            "|---|---|---|---|---|---|---|---|"]
    for node, L in summary["layers"].items():
        mem = " ".join(str(L[k]) for k in ("mem_mode", "ram_style") if L.get(k) not in (None, ""))
        rows.append(f"| {L.get('role') or ''} | {node} | {L.get('PE', '')} | {L.get('SIMD', '')} | {mem} | "
                    f"{L.get('cycles') or 0:,} | {int(L.get('LUT', 0)):,} | {L.get('BRAM_18K', 0)} |")
    return "\n".join(rows)


def _search_note(s: dict) -> str:
    """How the folding was chosen, for the report's folding line."""
    if not s.get("folding_searched"):
        return ""
    walk = s.get("folding_search") or {}
    tried = (f", {walk['foldings_fitting']} of {walk['foldings_tried']} foldings tried fit ({walk['file']})"
             if walk else "")
    return (" (searched: the fastest that fits" if s["fits"] else
            " (searched: nothing fits; shown at the lowest target tried") + tried + ")"


def board_report(summary: dict) -> str:
    s = summary
    lint = s.get("rtl_lint") or {}
    lint_line = (f"{lint['units']} RTL units ({lint['files']} files): {lint['errors']} errors, "
                 f"{lint['warnings']} warnings" if lint.get("ran")
                 else f"not run ({lint.get('reason', 'codegen skipped')})")
    return f"""# {s['model'].upper()} on {s['board']} ({s['fpga_part']}, {s['fclk_mhz']:.0f} MHz)

| | estimate | budget | use |
|---|---|---|---|
| LUT | {s['lut']:,}{f" (whole design: x {s['lut_whole_design'] / s['lut']:.2f} = {s['lut_whole_design']:,})" if s.get('lut_whole_design', s['lut']) != s['lut'] else ''} | {s['lut_budget']:,} | {s['lut_util']:.0%} |
| BRAM36 | {s['bram36']:.1f}{f" (whole design: {s['bram36_whole_design']:.1f}, with the ROMs the stitched design moves to block RAM and the board's measured extra)" if s.get('bram36_whole_design', s['bram36']) != s['bram36'] else ''} | {s['bram36_budget']} | {s['bram36_util']:.0%} |
| DSP | {s['dsp']} | {s['dsp_budget']} | |

- fits (LUT <= {s['lut_limit']:.0%}, BRAM <= {s['bram_limit']:.0%}): **{s['fits']}**
- estimated throughput: **{s['est_crops_per_s']:,.0f} crops/s = {s['est_faces_per_s']:,.0f} faces/s** (FINN: {s['finn_est_crops_per_s']:,.0f} crops/s{f", DDR weight bandwidth cap {s['ddr_cap_crops_per_s']:,.0f} crops/s for {s['ddr_weight_bytes_per_crop'] / 1024:,.0f} KiB/crop" if s.get('ddr_cap_crops_per_s') else ''})
- bottleneck: {s['bottleneck_layer']} ({s.get('bottleneck_role') or '-'}); latency {s['est_latency_us']:,.0f} us per crop
- DDR layers: {f"weight-replaying units, each matrix once per batch of {s['replay_batch']} crops (--replay-batch)" if s.get('replay_batch') else "FINN's external mode (the matrix once per input vector)"}
- folding: FINN target {s['target_crops_per_s']} fps{_search_note(s)}; role config: {s.get('role_config') or 'none'}
- project target: {s.get('throughput_target_crops_per_s', 0):,} crops/s, fits: {'met' if s.get('meets_target') else 'NOT met'}
- bit-exact check: {s['bit_exact_crops']} crops, {s['bit_exact_mismatches']} mismatches ({s.get('bit_exact_source')})
- RTL lint (Verilator): {lint_line}
- not produced: {s['missing_outputs']}

FINN's estimates leave out FIFOs, width converters, DMAs and the shell (expect +-30% on LUTs).

{layer_table(s)}

{evidence_section(s)}
"""


def evidence_section(s: dict) -> str:
    """Which evidence each node kind has, rtlsim per node, yosys per RTL unit."""
    sim, syn = s.get("sim") or {}, s.get("rtl_synth") or {}
    out = ["## Hardware evidence", ""]
    if sim.get("ran"):
        out += [f"Verilator ({sim['tool']}) simulated every RTL node of this build on {sim['crops']} real crop(s), "
                f"node by node, each run free-running and with random back-pressure: **{sim['mismatches']} mismatches** "
                f"against FINN's Python models (output of the whole graph: {sim['output_mismatches']} mismatches); "
                f"{sim['seconds_per_crop']:.0f} s per crop, {sim['sim_cycles_per_s'] or 0:,.0f} simulated cycles/s.", "",
                "| node kind | nodes | evidence | mismatches |", "|---|---|---|---|"]
        for k, v in sorted(sim["nodes_by_kind"].items()):
            ev = {"verilator": ("Verilator rtlsim of the project's RTL (replaces FINN's HLS)" if k.endswith("/bdnn_rtl")
                                else "Verilator rtlsim (+ yosys)" if syn.get("ran") else "Verilator rtlsim"),
                  "python": "FINN Python model only (HLS C++: no open compiler; no Vivado here)"}[v["evidence"]]
            out.append(f"| {k} | {v['nodes']} | {ev} | {v['mismatches']} |")
        out += ["", "| RTL unit | kind | cycles measured | FINN estimate | ratio | with back-pressure |",
                "|---|---|---|---|---|---|"]
        for n, r in sim["per_node"].items():
            ratio = f"{r['cycles_vs_estimate']:.3f}" if r.get("cycles_vs_estimate") else "-"
            out.append(f"| {n} | {r['kind']} | {r['cycles'] or 0:,} | {r['est_cycles'] or 0:,} | {ratio} | "
                       f"{r['cycles_backpressure'] or 0:,} |")
    else:
        out.append(f"RTL simulation: not run ({sim.get('reason', 'codegen skipped')}).")
    out.append("")
    if syn.get("ran"):
        t = syn["totals"]
        out += [f"yosys ({syn['tool'].split('(')[0].strip()}, `synth_xilinx -family {syn.get('family', 'xc7')}`) per RTL unit; totals for FINN's RTL "
                f"part: **{t['lut']:,} LUT** ({t['lutram']:,} as LUTRAM/SRL), {t['ff']:,} FF, {t['bram36']:g} BRAM36 "
                f"(FINN: {syn['rtl_node_finn_lut']:,} LUT for the same RTL layers, yosys {syn['rtl_node_lut']:,}; "
                f"FINN BRAM36 {syn['finn_bram36_total']:g}). Errors: {len(syn['errors'])}.", "",
                "| RTL unit | kind | yosys LUT | LUTRAM | FF | BRAM36 | FINN LUT | FINN BRAM36 | worst path: levels (LUT), ns | est. Fmax |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for n, r in syn["units"].items():
            fl = "-" if r["finn_lut"] is None else f"{r['finn_lut']:,}"
            t = r.get("timing")
            tcols = (f"{t['levels']} ({t['lut_levels']}), {t['ns']:.2f} | {t['est_fmax_mhz']:g} MHz{'' if t['meets'] else ' (misses)'}"
                     if t else "- | -")
            out.append(f"| {n} | {r['kind']} | {r['lut']:,} | {r['lutram']:,} | {r['ff']:,} | {r['bram36']:g} | {fl} | "
                       f"{r['finn_bram36']:g} | {tcols} |")
        out.append("\nMemstream rows: FINN estimates the MVAU as a whole, so only its weight-memory BRAM compares with "
                   "the streamer. `/bdnn_rtl` rows: the project's RTL for an HLS layer beside FINN's estimate for that "
                   "HLS layer.")
        pr = syn.get("project_rtl") or {}
        if pr.get("units"):
            ratio = f"{pr['mvau_lut_ratio']:.2f}" if pr.get("mvau_lut_ratio") else "-"
            out.append(f"\nThe project's RTL for FINN's HLS layers: {pr['lut']:,} LUT by yosys vs FINN's {pr['finn_hls_lut']:,} "
                       f"for its HLS layers; binary matrix units alone {pr['mvau_lut']:,} vs {pr['mvau_finn_hls_lut']:,} "
                       f"(ratio **{ratio}**).")
            mv = pr.get("model_vs_yosys") or {}
            if mv:
                out.append("The project ops' analytical LUT model (what `--rtl-only` folds with) against yosys: " + "; ".join(
                    f"{k} {v['model_lut']:,} vs {v['yosys_lut']:,}" + (f" ({v['model_over_yosys']:.2f})" if v["model_over_yosys"] else "")
                    for k, v in mv.items()) + ".")
    else:
        out.append(f"yosys synthesis: not run ({syn.get('reason', 'codegen skipped')}).")
    st, wh = s.get("stitched_sim") or {}, s.get("synth") or {}
    out += ["", "### The whole network as one all-RTL design", ""]
    if st.get("ran") and st.get("mismatches") is not None:
        fs = st["fifo_sizing"]
        wmem = {"rom": "on-chip weights in the project's read-only weight memories",
                "memstream": "on-chip weights in FINN's memstreams"}[st.get("design", {}).get("weight_memory", "memstream")]
        out += [f"Every node in RTL (FINN's RTL layers, the project's RTL for FINN's HLS layers, {wmem}, "
                f"external weights streamed as from DDR), stitched with FIFOs sized by simulation ({fs['strategy']}; "
                f"{fs.get('simulations', '?')} simulations of one compiled design; "
                f"{fs['fifo_bits'] / 1024:,.0f} kbit of FIFO, from {fs['deep_fifo_bits'] / 1024:,.0f} kbit deep; "
                f"the depths go to Vivado builds as `{fs.get('finn_fifo_config', 'fifo_depths.json')}`), "
                f"{st['crops']} {st['source']} crops streamed back to back in Verilator: **{st['mismatches']} mismatches** "
                f"against the cpu engine.", "",
                "| | measured (Verilator) | FINN estimate |", "|---|---|---|",
                f"| cycles per crop (steady state) | {st['cycles_per_crop']:,.0f} | {s.get('max_cycles') or 0:,} |",
                f"| crops/s at {st['fclk_mhz']:.0f} MHz | **{st['measured_crops_per_s']:,.0f}** | {s['finn_est_crops_per_s']:,.0f} "
                f"(with the DDR cap: {s['est_crops_per_s']:,.0f}) |",
                f"| latency | {st['latency_cycles']:,} cycles = {st['latency_us']:,.0f} us | {s['est_latency_us']:,.0f} us |",
                *([f"| DDR weight traffic per crop | {st['ddr_weight_bytes_per_crop'] / 1e3:,.1f} kB (beats the weight "
                   f"ports delivered) | {s['ddr_weight_bytes_per_crop'] / 1e3:,.1f} kB |"]
                  if st.get("ddr_weight_bytes_per_crop") is not None and s.get("ddr_weight_bytes_per_crop") else []),
                "", f"Simulation speed: {st['sim_cycles_per_s']:,.0f} cycles/s ({st['sim_seconds']:.0f} s for {st['crops']} crops). "
                "The testbench delivers external weights at full rate: DDR bandwidth is not modelled here (the estimate's cap is)."]
        if fs.get("bypass_depths"):
            out.append("Dense-block bypass FIFO depths (fork -> concat): " +
                       ", ".join(f"{e}: {d:,}" for e, d in fs["bypass_depths"].items()) + ".")
    elif st.get("ran"):
        out.append(f"Stitched simulation FAILED: {st.get('error')}")
    else:
        out.append(f"Stitched simulation: not run ({st.get('reason', 'codegen skipped')}).")
    out.append("")
    if wh.get("ran") and "error" not in wh:
        out += [f"yosys `synth_xilinx -family {wh.get('family', 'xc7')}` of the whole stitched design: **{wh['lut']:,} LUT** ({wh['lutram']:,} LUTRAM/SRL), "
                f"{wh['ff']:,} FF, **{wh['bram36']:g} BRAM36**, {wh['dsp']} DSP; budget {wh['lut_budget']:,} LUT / "
                f"{wh['bram36_budget']} BRAM36 -> fits: **{wh['fits']}** (FINN's estimate: {s['lut']:,} LUT, {s['bram36']:g} BRAM36). "
                f"{wh['seconds']:.0f} s." + (f" Note: {wh['family_note']}." if wh.get("family_note") else "")]
    elif wh.get("ran"):
        out.append(f"yosys of the whole design FAILED: {wh['error']}")
    else:
        out.append(f"yosys of the whole design: not run ({wh.get('reason', 'codegen skipped')}).")
    out += ["", timing_section(s)]
    out += ["", "Not available here: FINN's HLS C++ itself (cppsim needs finn-hlslib and Vitis headers; the project's RTL "
            "replaces it in simulation and synthesis), Vivado synthesis / place and route, stitched-IP rtlsim, bitfile."]
    return "\n".join(out)


def timing_section(s: dict) -> str:
    """The whole design's pre-route timing estimate and its ten worst paths (bdnn_hw.timing)."""
    from .timing.sta import TimingReport, markdown
    full = (s.get("synth") or {}).get("timing")
    t = s.get("timing") or {}
    if not full:
        return f"### Timing\n\nTiming estimate: not run ({t.get('reason', 'no whole-design synthesis')})."
    text = markdown(TimingReport(**full), "Timing (the whole stitched design)").replace("## Timing", "### Timing", 1)
    if t.get("crops_per_s_at_clock"):
        text += (f"\nThroughput at the board's {t['clock_mhz']:g} MHz: {t['crops_per_s_at_clock']:,.0f} crops/s (simulated cycles); "
                 + ("the estimate meets that clock." if t["meets"] else
                    f"the estimate misses it: at the estimated Fmax {t['est_fmax_mhz']:g} MHz, "
                    f"{t['crops_per_s_at_est_fmax']:,.0f} crops/s.") + "\n")
    return text


def plot_layers(summary: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layers = [(L.get("role") or n, L) for n, L in summary["layers"].items()
              if (L.get("LUT", 0) or L.get("BRAM_18K", 0) or (L.get("cycles") or 0))]
    names = [r for r, _ in layers]
    fig, axes = plt.subplots(3, 1, figsize=(max(10, 0.32 * len(names)), 9), sharex=True)
    for ax, key, label in zip(axes, ("LUT", "BRAM_18K", "cycles"), ("LUT", "BRAM18", "cycles / crop")):
        vals = [L.get(key) or 0 for _, L in layers]
        colors = ["tab:red" if n == summary.get("bottleneck_role") else "tab:blue" for n in names]
        ax.bar(range(len(vals)), vals, color=colors)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=.3)
    axes[-1].set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    fig.suptitle(f"{summary['model']} on {summary['board']}: per-layer estimates "
                 f"({summary['est_crops_per_s']:,.0f} crops/s; bottleneck in red)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_folding_search(tries: list[dict], summary: dict, path: Path) -> None:
    """The folding walk of a searched build: whole-design LUT and block RAM (share of the board) against
    the estimated rate of every folding tried; filled where it fits, the chosen one ringed. Shows why
    a bisection fails: block RAM is not monotonic in the rate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rate = [t["est_crops_per_s"] for t in tries]
    fits = [t["fits"] for t in tries]
    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for ax, key, budget, limit, label in (
            (axes[0], "lut_whole_design", summary["lut_budget"], summary["lut_limit"], "LUT"),
            (axes[1], "bram36_whole_design", summary["bram36_budget"], summary["bram_limit"], "BRAM36")):
        use = [100 * t[key] / budget for t in tries]
        ax.plot(rate, use, color="0.7", lw=1, zorder=1)
        ax.scatter([r for r, f in zip(rate, fits) if f], [u for u, f in zip(use, fits) if f], color="tab:green",
                   label="fits", zorder=3)
        ax.scatter([r for r, f in zip(rate, fits) if not f], [u for u, f in zip(use, fits) if not f],
                   facecolors="none", edgecolors="tab:red", label="does not fit", zorder=3)
        ax.axhline(100 * limit, color="k", ls="--", lw=1)
        chosen = [(r, u) for r, u, t in zip(rate, use, tries) if t["target"] == summary["target_crops_per_s"]]
        if chosen and summary["fits"]:
            ax.scatter(*zip(*chosen), s=160, facecolors="none", edgecolors="k", lw=1.5, zorder=4, label="chosen")
        ax.set_ylabel(f"{label} (% of {budget:,})")
        ax.grid(alpha=.3)
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("estimated crops/s of the folding")
    fig.suptitle(f"{summary['model']} on {summary['board']}: {len(tries)} foldings walked"
                 f"{' (--rtl-only, whole-design estimate)' if summary.get('rtl_only') else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
