"""Plots people would rather look at than read (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_learning_curve(history: list[dict], path: Path, title: str = "", restarts: list[int] = ()) -> None:
    """``restarts``: epochs after which a warm restart began (drawn as dashed lines)."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [h["train_loss"] for h in history], "o-")
    a1.set_xlabel("epoch"); a1.set_ylabel("train loss"); a1.grid(alpha=.3)
    a2.plot(ep, [h["train_acc"] for h in history], "o-", label="train (bf16, aug.)")
    for k, lab in (("val_acc_center", "PublicTest centre"), ("val_acc_fivecrop_mean", "PublicTest 5-crop mean")):
        a2.plot(ep, [h[k] for h in history], "o-", label=lab)
    for ax in (a1, a2):
        for r in restarts:
            ax.axvline(r + 0.5, color="grey", ls="--", lw=1)
    a2.set_xlabel("epoch"); a2.set_ylabel("accuracy"); a2.grid(alpha=.3); a2.legend()
    fig.suptitle(title)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, int), np.asarray(preds, int)), 1)
    return cm


def plot_confusion(cm: np.ndarray, class_names, path: Path, title: str = "") -> None:
    plt = _plt()
    rec = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(rec, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, f"{cm[i, j]}\n{rec[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if rec[i, j] > .5 else "black")
    ax.set_xticks(range(len(cm)), class_names, rotation=45); ax.set_yticks(range(len(cm)), class_names)
    ax.set_xlabel("predicted"); ax.set_ylabel("true"); ax.set_title(title)
    fig.colorbar(im, fraction=.046); fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def plot_pareto(points: list[dict], path: Path, boards: dict, paper: dict | None = None, title: str = "",
                verified: list[dict] = ()) -> None:
    """Accuracy vs estimated crops/s, one panel per board: every shipped model, the Pareto front
    (nothing both faster and more accurate), the board's target rate, and ``paper`` = {"model",
    "accuracy", "label"}: the paper's figure drawn at the speed of the same network here.
    ``verified``: designs simulated whole in Verilator (their measured crops/s) and synthesized by
    yosys, as squares (hollow where yosys says they do not fit)."""
    plt = _plt()
    from matplotlib.ticker import FuncFormatter
    names = list(boards)
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 5.2), sharey=True, squeeze=False)
    for ax, board in zip(axes[0], names):
        pts = sorted((p for p in points if p["board"] == board), key=lambda p: p["crops_per_s"])
        for p in pts:
            ax.scatter(p["crops_per_s"], p["accuracy"], s=55, zorder=3,
                       c="tab:blue" if p["pareto"] else "tab:grey", marker="o" if p["fits"] else "x")
            ax.annotate(p["model"], (p["crops_per_s"], p["accuracy"]), textcoords="offset points", xytext=(6, -3), fontsize=8)
        ver = [v for v in verified if v["board"] == board]
        for i, v in enumerate(ver):
            # green: the timing estimate meets the clock the rate assumes; orange: it misses; grey: not estimated
            col = {True: "tab:green", False: "tab:orange", None: "tab:grey"}[v.get("timing_meets")]
            ax.scatter(v["crops_per_s"], v["accuracy"], marker="s", s=70, zorder=2, linewidths=1.5,
                       facecolors=col if v["fits"] else "none", edgecolors=col,
                       label=("simulated whole design (hollow: yosys says it does not fit)" if i == 0 else None))
            note = {True: "", False: " (timing misses)", None: " (timing not estimated)"}[v.get("timing_meets")]
            ax.annotate(f"{v['crops_per_s']:,} @ {v.get('clock_mhz') or '?':g} MHz{note}" if v.get("clock_mhz")
                        else f"{v['crops_per_s']:,}{note}", (v["crops_per_s"], v["accuracy"]), textcoords="offset points",
                        xytext=(-4, 7), fontsize=6, color=col, ha="center")
        front = sorted((p for p in pts if p["pareto"]), key=lambda p: p["crops_per_s"])
        if len(front) > 1:
            ax.plot([p["crops_per_s"] for p in front], [p["accuracy"] for p in front], "-", c="tab:blue", lw=1,
                    label="Pareto front")
        if paper:
            same = [p for p in pts if p["model"] == paper["model"]]
            for p in same:
                ax.scatter(p["crops_per_s"], paper["accuracy"], marker="*", s=180, c="tab:red", zorder=4,
                           label=paper["label"])
        target = boards[board].get("target_crops_per_s")
        if target:
            ax.axvline(target, ls="--", c="tab:green", lw=1, label=f"target {target:,} crops/s")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}" if str(int(round(x)))[0] in "25" else ""))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("crops/s (log scale)" if verified else "FINN-estimated crops/s (log scale)")
        ax.set_title(f"{board} ({boards[board].get('clock_mhz', '?')} MHz)")
        ax.grid(alpha=.3, which="both")
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    axes[0][0].set_ylabel("FER2013 PrivateTest accuracy, five-crop mean (%)")
    fig.suptitle(title + ("\ncircles: FINN's estimate of each model's default build; squares: designs simulated whole "
                          "in Verilator on real crops (measured rate at the stated clock) and synthesized by yosys; "
                          "square colour: pre-route timing estimate meets (green) / misses (orange) / not estimated (grey)"
                          if verified else ""),
                 fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=110, bbox_inches="tight"); plt.close(fig)
