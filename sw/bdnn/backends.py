"""Accelerator backends behind one interface: uint8 crops in, class scores out.

    backend = get_backend("cpu", model="models/bdnn4")
    scores5 = backend.crop_scores(five_crops(faces))          # (N,5,7)

Backends: ``cpu`` (the fast bit-exact integer engine, numpy + C), ``brevitas`` (reference, torch
fp32; the ``train`` extra), ``finn-sim`` (python execution of the FINN HW-layer graph written by the
board build; the ``finn`` extra) and ``pynq`` (the accelerator on the board through finn-plus-driver;
a clear error anywhere else). Heavy dependencies are imported only when a backend is created, so
the package stays importable without torch or FINN, and ``cpu``/``pynq`` never import them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import contract
from .arch import CROP_SIZE
from .errors import BdnnError, require


class BackendError(BdnnError, RuntimeError):
    """A backend that cannot run here (missing build, wrong model, not on a board, ...)."""


class Backend:
    name = "?"

    def __init__(self, model: str | Path | None):
        from .artifact import load
        self.model_path = Path(model) if model is not None else contract.default_model()
        self.artifact = load(self.model_path)
        self.spec = self.artifact.spec

    def _scores(self, crops: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def crop_scores(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (..., 42, 42) -> float scores (..., classes)."""
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.shape[-2:] != (CROP_SIZE, CROP_SIZE):
            raise BackendError(f"expected uint8 crops (...,{CROP_SIZE},{CROP_SIZE}), got {crops.dtype} {crops.shape}")
        lead = crops.shape[:-2]
        if not crops.size:
            return np.zeros((*lead, self.spec.num_classes))
        out = self._scores(np.ascontiguousarray(crops.reshape(-1, CROP_SIZE, CROP_SIZE)))
        return out.reshape(*lead, out.shape[-1])


class CpuBackend(Backend):
    """The fast bit-exact integer engine (numpy + a small C XOR/popcount kernel)."""
    name = "cpu"

    def __init__(self, model=None, **_):
        super().__init__(model)
        from .engine import Engine
        self.engine = Engine(self.artifact)

    def _scores(self, crops):
        return self.engine.crop_scores(crops)


class BrevitasBackend(Backend):
    name = "brevitas"

    def __init__(self, model=None, batch: int = 256, **_):
        require("torch", "the brevitas backend")
        require("brevitas", "the brevitas backend")
        super().__init__(model)
        from .nn import from_artifact
        self.net = from_artifact(self.artifact)
        self.batch = batch

    def _scores(self, crops):
        from .nn import predict_scores
        return predict_scores(self.net, crops, self.batch)


class FinnSimBackend(Backend):
    """Python execution of FINN's HW-layer graph; the classifier affine is applied on the host."""
    name = "finn-sim"

    def __init__(self, model=None, hw_graph: str | Path | None = None, **_):
        require("qonnx", "the finn-sim backend")
        super().__init__(model)
        path = Path(hw_graph) if hw_graph else contract.hw_graph_path(contract.build_root(self.spec.name))
        if not path.is_file():
            raise BackendError(f"{path}: no FINN HW-layer graph; build it with build_scripts/build_{self.spec.name}.py "
                               f"(or pass --hw-graph)")
        from qonnx.core.modelwrapper import ModelWrapper
        self.graph = ModelWrapper(str(path))
        art_file = contract.model_file(self.model_path)
        if self.graph.get_metadata_prop(contract.MODEL_SHA_KEY) != contract.file_sha256(art_file):
            raise BackendError(f"{path} was built from another model than {art_file}; rebuild it")
        self.scale, self.bias = contract.parse_host_affine(self.graph.get_metadata_prop(contract.HOST_AFFINE_KEY) or "",
                                                           f"{path} metadata {contract.HOST_AFFINE_KEY}")

    def _scores(self, crops):
        import qonnx.core.onnx_exec as oxe
        iname, oname = self.graph.graph.input[0].name, self.graph.graph.output[0].name
        pops = [oxe.execute_onnx(self.graph, {iname: c[None, :, :, None].astype(np.float32)})[oname].reshape(-1)
                for c in crops]  # the HW graph is built for batch 1
        return contract.apply_host_affine(np.stack(pops), self.scale, self.bias)


def resolve_deploy(deploy: str | Path | None, model: str | Path | None) -> Path:
    """The board build's deployment folder: ``deploy``, else ``$BDNN_DEPLOY``, else ``model`` when it
    is a deployment folder, else the one deployment folder with a bitfile under ``build/<arch>/``.
    No board is assumed: with several boards built, the choice is the user's."""
    if deploy:
        return Path(deploy)
    if os.environ.get("BDNN_DEPLOY"):
        return Path(os.environ["BDNN_DEPLOY"])
    if model is not None and contract.is_deploy_dir(Path(model)):
        return Path(model)
    arch = contract.DEFAULT_ARCH
    if model is not None:
        from .artifact import load
        arch = load(model).spec.name
    found = contract.find_deploy_dirs(arch)
    if len(found) == 1:
        return found[0]
    where = contract.build_root(arch) / "<board>" / contract.DEPLOY_DIR
    if not found:
        raise BackendError(f"no deployment folder with a bitfile at {where}; pass --deploy DIR (or set BDNN_DEPLOY) "
                           "to the board build's deploy/ folder copied to this board")
    raise BackendError(f"several boards' deployment folders: {', '.join(map(str, found))}; pick one with --deploy")


class PynqBackend(Backend):
    """The FINN accelerator on a PYNQ board, through finn-plus-driver (DMA), in batches of crops.

    ``deploy`` is the board build's deployment folder (see :mod:`bdnn.contract`): the bitfile,
    ``driver/settings.json`` (+ ``runtime_weights/``), ``host_affine.json`` (the classifier's norm,
    applied here to the accelerator's popcounts) and the model it was built from, which is the
    default model. Needs numpy, Pillow, pynq and finn-plus-driver only.
    """
    name = "pynq"

    def __init__(self, model=None, deploy: str | Path | None = None, batch: int = 50, **_):
        try:
            import pynq  # noqa: F401  (part of the PYNQ board image, not on a host)
            from finn_plus_driver import get_driver_class
        except ImportError as e:
            raise BackendError(f"the pynq backend runs on a PYNQ board with pynq and finn-plus-driver installed "
                               f"({e}); off the board use --backend cpu, brevitas or finn-sim") from None
        deploy = resolve_deploy(deploy, model)
        if model is None and (deploy / contract.MODEL_FILE).is_file():
            model = deploy
        super().__init__(model)
        self.deploy = deploy
        self.scale, self.bias, built_from = contract.read_deploy_affine(deploy)
        art_file = contract.model_file(self.model_path)
        if built_from is not None and built_from != contract.file_sha256(art_file):
            raise BackendError(f"{deploy} holds an accelerator built from another model than {art_file}; "
                               f"use its own model ({deploy / contract.MODEL_FILE}) or rebuild")
        if len(self.scale) != self.spec.num_classes:
            raise BackendError(f"{deploy}: host affine has {len(self.scale)} classes, the model {self.spec.num_classes}")
        bitfiles = sorted(deploy.glob(contract.BITFILE_GLOB))
        settings = deploy / contract.DRIVER_DIR / contract.DRIVER_SETTINGS_FILE
        if not bitfiles or not settings.is_file():
            raise BackendError(f"{deploy}: no bitfile and {contract.DRIVER_DIR}/{contract.DRIVER_SETTINGS_FILE} here "
                               "(the board build writes them where Vivado ran)")
        info = dict(json.loads(settings.read_text())["driver_information"])
        # the driver resolves weight folders from the working directory: pass them absolute
        info["runtime_weight_dir"] = str(settings.parent.resolve() / contract.RUNTIME_WEIGHTS_DIR)
        info["mlo_weight_dir"] = str(settings.parent.resolve() / "mlo_weights")
        driver = get_driver_class(info["driver_type"])
        replay = read_replay_weights(settings.parent)
        # weight-replaying units compute whole batches of crops: the accelerator always gets whole batches
        self.replay_batch = replay["batch"] if replay else 1
        self.batch = -(-max(1, batch) // self.replay_batch) * self.replay_batch
        if replay:
            driver = replay_aware_driver(driver, {name: d["batch"] for name, d in replay["dmas"].items()})
        self.accel = driver(str(bitfiles[0]), **{**info, "batch_size": self.batch})

    def _scores(self, crops):
        n, b = len(crops), self.replay_batch
        if n % b:  # pad the last batch with copies of the last crop; their scores are dropped
            crops = np.concatenate([crops, np.repeat(crops[-1:], b - n % b, axis=0)])
        out = []
        for i in range(0, len(crops), self.batch):
            chunk = crops[i:i + self.batch]
            if self.accel.batch_size != len(chunk):  # reallocates the DMA buffers
                self.accel.batch_size = len(chunk)
            pop = self.accel.execute(chunk[..., None])  # NHWC uint8 in, classifier popcounts out
            out.append(contract.apply_host_affine(pop, self.scale, self.bias))
        return np.concatenate(out)[:n]


def read_replay_weights(driver_dir: Path) -> dict | None:
    """The deployment's replay-unit weight DMAs (``contract.REPLAY_WEIGHTS_FILE``), None without any."""
    path = Path(driver_dir) / contract.REPLAY_WEIGHTS_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        batch = int(info["batch"])
        dmas = {str(k): {"batch": int(v["batch"])} for k, v in info["dmas"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BackendError(f"{path}: not a valid replay-unit description ({e})") from None
    if batch < 1 or not dmas or any(d["batch"] != batch for d in dmas.values()):
        raise BackendError(f"{path}: every replay DMA must name the same batch >= 1 (got {batch}, {dmas})")
    return {"batch": batch, "dmas": dmas}


def replay_aware_driver(base: type, batches: dict[str, int]) -> type:
    """finn-plus-driver's overlay class, except that the weight DMAs of replay units (``batches``:
    DMA name -> crops per batch) stream their matrix once per batch instead of FINN's
    ``crops x H x W`` times. The register writes are FINN's IODMA ones (address, count, start)."""

    class ReplayAwareOverlay(base):
        def execute_on_buffers(self, asynch=False, batch_size=None):
            n = self.batch_size if batch_size is None else batch_size
            if self.platform != "zynq-iodma":
                raise BackendError(f"replay units are supported on zynq-iodma platforms, not {self.platform!r}")
            for dma, buf, name, _ in self.external_weights:
                if name in batches:
                    if n % batches[name]:
                        raise BackendError(f"{n} crops is not a whole number of the replay batch {batches[name]}")
                    dma.write(0x10, buf.device_address & 0xFFFFFFFF)
                    dma.write(0x14, (buf.device_address >> 32) & 0xFFFFFFFF)
                    dma.write(0x1C, n // batches[name])
                    dma.write(0x00, 1)
            every = self.external_weights
            self.external_weights = [w for w in every if w[2] not in batches]  # FINN's driver starts the rest
            try:
                return super().execute_on_buffers(asynch=asynch, batch_size=batch_size)
            finally:
                self.external_weights = every

    ReplayAwareOverlay.__name__ = f"ReplayAware{base.__name__}"
    return ReplayAwareOverlay


_REGISTRY = {"cpu": CpuBackend, "brevitas": BrevitasBackend, "finn-sim": FinnSimBackend, "pynq": PynqBackend}
BACKENDS = tuple(_REGISTRY)   # the names, in the CLI's order


def get_backend(name: str, model: str | Path | None = None, **kw) -> Backend:
    """A backend by name; ``model`` None means the default model (for ``pynq``: the deployment
    folder's own model)."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(_REGISTRY)}") from None
    return cls(model, **kw)
