"""A stand-in for PYNQ on a board, for tests off the board: only the DMA transfers are simulated.

finn-plus-driver's ``FINNDMAOverlay`` runs unchanged on top of it: its buffer allocation, input
folding and packing, register writes that start the DMAs, output unpacking and the loading of
external (DDR) weights. What the accelerator would compute is taken from the HW graph's
execution: ``$BDNN_STANDIN_GOLDEN`` is an ``.npz`` with ``crops`` (N,42,42) uint8 and ``outputs``
(N,classes), the FINN HW-layer graph's integer outputs for those crops. A crop the test did not
prepare (a packing or layout error upstream) is an error, not a guess; the one exception is the
all-zero input the driver sends once after loading weights (a flush whose outputs it discards).

The deployment folder is found from the bitfile's path (``<deploy>/bitfile/<name>.bit``, FINN's
deployment package layout), its ``driver/settings.json`` gives the I/O shapes and datatypes.
Each accelerator run is logged to ``$BDNN_STANDIN_LOG`` (JSON lines) when set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__version__ = "standin"

_MEMORY: dict[int, "PynqBuffer"] = {}
_NEXT_ADDRESS = [0x1000_0000]


class PynqBuffer(np.ndarray):
    """A numpy array with a device address (pynq.buffer.PynqBuffer's interface)."""

    def flush(self):
        pass

    def invalidate(self):
        pass

    def sync_to_device(self):
        pass

    def sync_from_device(self):
        pass

    def freebuffer(self):
        _MEMORY.pop(getattr(self, "device_address", None), None)


def allocate(shape, dtype=np.uint8, cacheable=False, target=None, **_):
    buf = np.zeros(shape, dtype=dtype).view(PynqBuffer)
    buf.device_address = _NEXT_ADDRESS[0]
    _NEXT_ADDRESS[0] += (buf.nbytes // 4096 + 2) * 4096
    _MEMORY[buf.device_address] = buf
    return buf


class Bitstream:
    def __init__(self, bitfile_name, *_, **__):
        self.bitfile_name = bitfile_name

    def download(self, *_, **__):
        pass


class _DMA:
    """An AXI-lite register file of one FINN IODMA: 0x10/0x14 address, 0x1C count, 0x00 start/status."""

    def __init__(self, overlay: "Overlay", name: str):
        self.overlay, self.name, self.regs = overlay, name, {0x00: 0x4}

    def write(self, offset: int, value: int) -> None:
        self.regs[offset] = int(value)
        if offset == 0x00 and value & 1:
            self.regs[0x00] = 0x4  # back to idle ...
            self.overlay._started(self)
            self.regs[0x00] = 0x6  # ... and done

    def read(self, offset: int) -> int:
        return self.regs.get(offset, 0)

    @property
    def address(self) -> int:
        return self.regs.get(0x10, 0) | (self.regs.get(0x14, 0) << 32)

    @property
    def count(self) -> int:
        return self.regs.get(0x1C, 0)


class Overlay:
    """The loaded bitfile: one simulated IODMA per DMA name of the build's driver settings."""

    def __init__(self, bitfile_name, download=True, device=None, **_):
        from finn_plus_driver.packing import finnpy_to_packed_bytearray, packed_bytearray_to_finnpy
        from qonnx.core.datatype import DataType
        self._pack, self._unpack, self._dt = finnpy_to_packed_bytearray, packed_bytearray_to_finnpy, DataType
        self.bitfile_name = str(bitfile_name)
        self.device = device
        deploy = Path(bitfile_name).resolve().parent.parent
        info = json.loads((deploy / "driver" / "settings.json").read_text())["driver_information"]
        self._io = info["io_shape_dict"]
        self._weights_dir = deploy / "driver" / "runtime_weights"
        replay = deploy / "driver" / "replay_weights.json"  # weight DMAs of replay units: once per batch
        self._replay = {k: v["batch"] for k, v in json.loads(replay.read_text())["dmas"].items()} \
            if replay.is_file() else {}
        golden = np.load(os.environ["BDNN_STANDIN_GOLDEN"])
        self._golden = {c.tobytes(): o for c, o in zip(golden["crops"], golden["outputs"])}
        names = list(self._io["idma_names"]) + list(self._io["odma_names"]) + list(self._io.get("external_weights_input_shapes", {}))
        self._dmas = {n: _DMA(self, n) for n in names}
        self.ip_dict = {n: {"type": "xilinx.com:hls:idma:1.0"} for n in names}
        self._weight_runs: dict[str, int] = {}
        self._out_dma = None

    def __getattr__(self, name):
        dmas = self.__dict__.get("_dmas", {})
        if name in dmas:
            return dmas[name]
        raise AttributeError(name)

    def _dtype(self, s: str):
        return self._dt[s[s.index("[") + 1:s.index("]")].strip("'")] if isinstance(s, str) else s

    def _started(self, dma: _DMA) -> None:
        io = self._io
        if dma.name in io.get("external_weights_input_shapes", {}):
            want = np.load(self._weights_dir / f"{dma.name}.npy")
            got = _MEMORY[dma.address]
            assert got.shape == want.shape and np.array_equal(got, want), f"{dma.name}: DDR weights differ from the build's"
            self._weight_runs[dma.name] = dma.count
        elif dma.name in io["odma_names"]:
            self._out_dma = dma
        elif dma.name in io["idma_names"]:
            self._run(dma)

    def _run(self, idma: _DMA) -> None:
        """The accelerator: unpack the input stream, look up the HW graph's outputs, pack them."""
        io, n = self._io, idma.count
        assert self._out_dma is not None and self._out_dma.count == n, "output DMA not started for this batch"
        for name, shape in io.get("external_weights_input_shapes", {}).items():
            if name in self._replay:
                assert n % self._replay[name] == 0, f"{name}: {n} crops is not a whole number of replay batches"
                want = n // self._replay[name]
            else:
                want = n * (shape[1] * shape[2] if len(shape) == 4 else 1)
            assert self._weight_runs.pop(name, None) == want, f"{name}: weights not streamed for this batch"
        ishape_folded = [n, *io["ishape_folded"][0][1:]]
        packed = np.asarray(_MEMORY[idma.address])[:n]
        x = self._unpack(np.ascontiguousarray(packed), self._dtype(io["idt"][0]), ishape_folded,
                         reverse_inner=True, reverse_endian=True)
        crops = x.reshape([n, *io["ishape_normal"][0][1:]]).reshape(n, 42, 42)
        assert crops.min() >= 0 and crops.max() <= 255
        crops = crops.astype(np.uint8)
        # the driver runs the accelerator once on its fresh (all-zero) buffers after loading weights,
        # to flush stale weights; it discards the outputs
        flush = not crops.any()
        try:
            outs = np.zeros((n, len(next(iter(self._golden.values())))), np.float32) if flush else \
                np.stack([self._golden[c.tobytes()] for c in crops])
        except KeyError:
            raise AssertionError("the accelerator got a crop the test did not prepare: input packing or layout "
                                 "differs from the build's") from None
        folded = outs.astype(np.float32).reshape([n, *io["oshape_folded"][0][1:]])
        obuf = _MEMORY[self._out_dma.address]
        obuf[:n] = self._pack(folded, self._dtype(io["odt"][0]), reverse_inner=True, reverse_endian=True)
        self._out_dma = None
        log = os.environ.get("BDNN_STANDIN_LOG")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"crops": n, "batch_buffer": int(obuf.shape[0]), "flush": bool(flush),
                                    "external_weights": sorted(io.get("external_weights_input_shapes", {})),
                                    "replay_weight_runs": {k: n // b for k, b in self._replay.items()}}) + "\n")
