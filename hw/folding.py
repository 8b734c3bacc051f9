"""Folding and memory placement keyed by *layer role*, not by FINN's generated node names.

A role is ``<artifact layer>/<kind>``, e.g. ``block4.conv2/mvau``, ``block4.conv2/swg``,
``block2.pool/pool``, ``fc1/mvau``: it survives re-numbering of nodes when the graph changes.
Per-board configs live in ``hw/folding/<arch>_<board>.json`` (role -> FINN attributes) and are
translated to FINN's node-name keyed config just before ``step_apply_folding_config``.
"""
from __future__ import annotations

import json
from pathlib import Path

FOLDING_DIR = Path(__file__).resolve().parent / "folding"

_KIND = {"MVAU": "mvau", "Thresholding": "thr", "FMPadding": "pad", "ConvolutionInputGenerator": "swg",
         "Pool": "pool", "DuplicateStreams": "fork", "StreamingConcat": "concat"}
# attributes a role-keyed config may set
ATTRS = ("PE", "SIMD", "parallel_window", "ram_style", "ram_style_thresholds", "resType", "mem_mode",
         "runtime_writeable_weights", "depth_trigger_uram", "depth_trigger_bram")


# the project's own per-layer keys (not FINN attributes): "replay": false keeps a DDR layer in FINN's
# external weight mode when the build uses weight-replaying units (hw/rtl/replay_op.py)
PROJECT_ATTRS = ("replay",)


def replay_opt_outs(role_cfg: dict | None) -> set[str]:
    """The roles a config keeps out of the weight-replaying units."""
    out = set()
    for role, attrs in (role_cfg or {}).items():
        if role == "Defaults" or "replay" not in attrs:
            continue
        if not role.endswith("/mvau") or not isinstance(attrs["replay"], bool):
            raise ValueError(f"{role}: 'replay' is a true/false key of a layer's /mvau role")
        if not attrs["replay"]:
            out.add(role)
    return out


def _base(op_type: str) -> str:
    """FINN's generic layer name of an op type: MVAU_hls, MVAU_rtl, MVAU_bdnn_rtl (the project's) -> MVAU;
    the weight-replaying DDR unit (which stands for a layer's SWG, MVAU and thresholds) -> MVAU."""
    if op_type == "MVTU_replay_rtl":
        return "MVAU"
    for suffix in ("_bdnn_rtl", "_hls", "_rtl"):
        if op_type.endswith(suffix):
            return op_type[: -len(suffix)]
    return op_type


def node_roles(model, layer_names: list[str]) -> dict[str, str]:
    """FINN node name -> role, for the HW nodes of a (dense) BDNN graph in topological order."""
    nodes = list(model.graph.node)
    roles: dict[str, str] = {}
    mvau_idx = 0

    def block_of(name: str) -> str:
        return name.split(".")[0]

    def downstream_target(node):
        """Follow pad/swg chains to the MVAU or Pool they feed."""
        cur = node
        while True:
            cons = model.find_consumers(cur.output[0])
            if not cons or len(cons) != 1:
                return None
            cur = cons[0]
            b = _base(cur.op_type)
            if b in ("MVAU", "Pool"):
                return b
            if b not in ("FMPadding", "ConvolutionInputGenerator"):
                return None

    last = None
    pooled = set()  # blocks whose pool is already named: a second pool is the final (global) pool

    def pool_role(kind: str) -> str:
        blk = block_of(last)
        return f"final.pool/{kind}" if blk in pooled else f"{blk}.pool/{kind}"

    for n in nodes:
        b = _base(n.op_type)
        kind = _KIND.get(b)
        if kind is None:
            continue
        if b == "MVAU":
            if mvau_idx >= len(layer_names):
                raise ValueError(f"{n.name}: more MVAUs in the graph than layers in the model")
            last = layer_names[mvau_idx]
            roles[n.name] = f"{last}/mvau"
            mvau_idx += 1
        elif b == "Thresholding":
            roles[n.name] = f"{last}/thr"
        elif b in ("FMPadding", "ConvolutionInputGenerator"):
            target = downstream_target(n)
            if target == "MVAU":
                roles[n.name] = f"{layer_names[mvau_idx]}/{kind}"
            else:
                roles[n.name] = pool_role(kind)
        elif b == "Pool":
            roles[n.name] = pool_role("pool")
            pooled.add(block_of(last))
        else:  # fork and concat of the dense block around conv2
            roles[n.name] = f"{block_of(last)}.{kind}/{kind}"
    if mvau_idx != len(layer_names):
        raise ValueError(f"graph has {mvau_idx} MVAUs, the model {len(layer_names)} layers")
    return roles


def extract_role_config(model, layer_names: list[str]) -> dict[str, dict]:
    """The folding/memory attributes of every HW node, keyed by role."""
    from qonnx.custom_op.registry import getCustomOp
    out = {}
    for name, role in node_roles(model, layer_names).items():
        inst = getCustomOp(model.get_node_from_name(name))
        attrs = {}
        for a in ATTRS:
            try:
                attrs[a] = inst.get_nodeattr(a)
            except (AttributeError, Exception):
                continue
        out[role] = attrs
    return out


def to_finn_config(role_cfg: dict[str, dict], model, layer_names: list[str]) -> dict[str, dict]:
    """Role-keyed config -> FINN's ApplyConfig dict (node name -> attributes)."""
    roles = node_roles(model, layer_names)
    by_role = {r: n for n, r in roles.items()}
    unknown = sorted(set(role_cfg) - set(by_role) - {"Defaults"})
    if unknown:
        raise ValueError(f"folding config names roles that are not in this graph: {unknown[:5]}")
    cfg = {"Defaults": role_cfg.get("Defaults", {})}
    replay_opt_outs(role_cfg)  # validates the project's keys before they are dropped
    for role, attrs in role_cfg.items():
        if role != "Defaults":
            cfg[by_role[role]] = {k: v for k, v in attrs.items() if k not in PROJECT_ATTRS}
    return cfg


def board_config_path(arch: str, board_key: str) -> Path:
    return FOLDING_DIR / f"{arch}_{board_key}.json"


def load_role_config(path: Path) -> dict:
    return json.loads(Path(path).read_text())
