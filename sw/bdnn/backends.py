"""Accelerator backends behind one interface: uint8 crops in, class scores out.

    backend = get_backend("brevitas", model="models/bdnn4")
    scores5 = backend.crop_scores(five_crops(faces))          # (N,5,7)

Backends: ``cpu`` (the fast bit-exact integer engine, numpy + C), ``brevitas`` (reference, torch
fp32), ``finn-sim`` (python execution of the FINN HW-layer graph written by the board build) and
``pynq`` (the accelerator on the board; import-guarded, a clear error anywhere else). Heavy dependencies are imported only when a backend
is created, so the package stays importable without torch or FINN.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .arch import CROP_SIZE

BACKENDS = ("cpu", "brevitas", "finn-sim", "pynq")
REPO = Path(__file__).resolve().parents[2]


class BackendError(RuntimeError):
    pass


class Backend:
    name = "?"

    def __init__(self, model: str | Path):
        from .artifact import load
        self.model_path = Path(model)
        self.artifact = load(model)
        self.spec = self.artifact.spec

    def _scores(self, crops: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def crop_scores(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (..., 42, 42) -> float scores (..., classes)."""
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.shape[-2:] != (CROP_SIZE, CROP_SIZE):
            raise BackendError(f"expected uint8 crops (...,{CROP_SIZE},{CROP_SIZE}), got {crops.dtype} {crops.shape}")
        lead = crops.shape[:-2]
        out = self._scores(crops.reshape(-1, CROP_SIZE, CROP_SIZE))
        return out.reshape(*lead, out.shape[-1])


class BrevitasBackend(Backend):
    name = "brevitas"

    def __init__(self, model, batch: int = 256, **_):
        super().__init__(model)
        import torch  # noqa: F401
        from .nn import from_artifact
        self.net = from_artifact(self.artifact)
        self.batch = batch

    def _scores(self, crops):
        from .nn import predict_scores
        return predict_scores(self.net, crops, self.batch)


def default_hw_graph(spec_name: str) -> Path:
    return REPO / "build" / spec_name / "frontend" / "dataflow_partition.onnx"


class FinnSimBackend(Backend):
    """Python execution of FINN's HW-layer graph; the classifier affine is applied on the host."""
    name = "finn-sim"

    def __init__(self, model, hw_graph: str | Path | None = None, **_):
        super().__init__(model)
        import hashlib
        path = Path(hw_graph) if hw_graph else default_hw_graph(self.spec.name)
        if not path.is_file():
            raise BackendError(f"{path}: no FINN HW-layer graph; build it with build_scripts/build_{self.spec.name}.py "
                               f"(or pass --hw-graph)")
        try:
            from qonnx.core.modelwrapper import ModelWrapper
        except ImportError as e:
            raise BackendError(f"the finn-sim backend needs qonnx/finn-plus installed ({e})") from None
        self.graph = ModelWrapper(str(path))
        art_file = self.model_path / "model.npz" if self.model_path.is_dir() else self.model_path
        want = hashlib.sha256(art_file.read_bytes()).hexdigest()
        have = self.graph.get_metadata_prop("bdnn_model_sha256")
        if have != want:
            raise BackendError(f"{path} was built from another model than {art_file}; rebuild it")
        aff = json.loads(self.graph.get_metadata_prop("bdnn_host_affine"))
        self.scale, self.bias = np.asarray(aff["scale"]), np.asarray(aff["bias"])

    def _scores(self, crops):
        import qonnx.core.onnx_exec as oxe
        iname, oname = self.graph.graph.input[0].name, self.graph.graph.output[0].name
        out = []
        for c in crops:  # the HW graph is built for batch 1
            pop = oxe.execute_onnx(self.graph, {iname: c[None, :, :, None].astype(np.float32)})[oname]
            out.append(pop.reshape(-1) * self.scale + self.bias)
        return np.stack(out)


class CpuBackend(Backend):
    """The fast bit-exact integer engine (numpy + a small C XOR/popcount kernel)."""
    name = "cpu"

    def __init__(self, model, **_):
        super().__init__(model)
        from .engine import Engine
        self.engine = Engine(self.artifact)

    def _scores(self, crops):
        return self.engine.crop_scores(crops)


class PynqBackend(Backend):
    """The FINN accelerator on a PYNQ board, through finn-plus-driver (DMA), five crops per face.

    ``deploy`` is the board build's deployment folder: the bitfile, ``driver/settings.json`` and
    ``host_affine.json`` (the classifier's norm, applied here to the accelerator's popcounts).
    """
    name = "pynq"

    def __init__(self, model, deploy: str | Path | None = None, batch: int = 50, **_):
        super().__init__(model)
        try:
            import pynq  # noqa: F401  (part of the PYNQ board image, not on a host)
            from finn_plus_driver import get_driver_class
        except ImportError as e:
            raise BackendError(f"the pynq backend runs on a PYNQ board with pynq and finn-plus-driver installed "
                               f"({e}); off the board use --backend cpu, brevitas or finn-sim") from None
        deploy = Path(deploy) if deploy else REPO / "build" / self.spec.name / "pynq-z2" / "deploy"
        bitfiles = sorted(deploy.glob("**/*.bit"))
        settings = deploy / "driver" / "settings.json"
        if not bitfiles or not settings.exists():
            raise BackendError(f"{deploy}: no bitfile and driver/settings.json here (run the board build with Vivado)")
        aff = json.loads((deploy / "host_affine.json").read_text())
        self.scale, self.bias = np.asarray(aff["scale"]), np.asarray(aff["bias"])
        info = json.loads(settings.read_text())["driver_information"]
        info.setdefault("runtime_weight_dir", str(settings.parent / "runtime_weights"))
        self.batch = batch
        self.accel = get_driver_class(info["driver_type"])(str(bitfiles[0]), **{**info, "batch_size": batch})

    def _scores(self, crops):
        out = []
        for i in range(0, len(crops), self.batch):
            chunk = crops[i:i + self.batch]
            if self.accel.batch_size != len(chunk):
                self.accel.batch_size = len(chunk)
            pop = self.accel.execute(chunk[..., None])  # NHWC uint8 in, classifier popcounts out
            out.append(np.asarray(pop, dtype=np.float64).reshape(len(chunk), -1) * self.scale + self.bias)
        return np.concatenate(out)


_REGISTRY = {"cpu": CpuBackend, "brevitas": BrevitasBackend, "finn-sim": FinnSimBackend, "pynq": PynqBackend}


def get_backend(name: str, model: str | Path, **kw) -> Backend:
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(_REGISTRY)}") from None
    return cls(model, **kw)
