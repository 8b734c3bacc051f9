#!/usr/bin/env bash
# Run a command in the FINN build image: this repository at /workspace, FER2013 read-only, and the
# host's Vivado where there is one. Without Vivado the build runs every open-tool stage and skips
# the Vivado ones, exactly as on the host.
#   docker/run.sh python build_scripts/build_bdnn4.py --board pynq-z2
#   XILINX_ROOT=/tools/Xilinx docker/run.sh python build_scripts/build_bdnn4.py --board pynq-z2
# BDNN_IMAGE       image (default bdnn-finn:latest; built from docker/Dockerfile when missing)
# FER2013_DIR      folder with fer2013.npz or fer2013.csv, or an image-folder root (default ../shared/data/fer2013)
# XILINX_ROOT      Xilinx installation (default /tools/Xilinx); XILINX_VERSION (default 2024.2)
# BDNN_DOCKER_ARGS more `docker run` options, e.g. "--network none -v /scratch:/out"
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
image="${BDNN_IMAGE:-bdnn-finn:latest}"
say() { echo "run.sh: $*" >&2; }
# no root-owned bytecode in the mounted sources
args=(--rm -i -v "$here:/workspace" -w /workspace -e PYTHONDONTWRITEBYTECODE=1)
if [ -t 0 ] && [ -t 1 ]; then args+=(-t); fi

data="${FER2013_DIR:-$here/../shared/data/fer2013}"
if [ -d "$data" ]; then
  data="$(cd "$data" && pwd)"
  inside=/data/fer2013
  for f in fer2013.npz fer2013.csv; do
    if [ -f "$data/$f" ]; then inside="/data/fer2013/$f"; break; fi
  done
  args+=(-v "$data:/data/fer2013:ro" -e "FER2013_PATH=$inside")
  say "FER2013: $data, read-only (FER2013_PATH=$inside)"
else
  say "FER2013: none at $data (set FER2013_DIR); builds verify on random crops"
fi

xilinx="${XILINX_ROOT:-/tools/Xilinx}"
version="${XILINX_VERSION:-2024.2}"
if [ -d "$xilinx/Vivado/$version" ]; then
  xilinx="$(cd "$xilinx" && pwd)"
  args+=(-v "$xilinx:$xilinx:ro" -e "XILINX_ROOT=$xilinx" -e "XILINX_VIVADO=$xilinx/Vivado/$version")
  found="Vivado $version ($xilinx/Vivado/$version)"
  if [ -d "$xilinx/Vitis/$version" ]; then
    args+=(-e "XILINX_VITIS=$xilinx/Vitis/$version"); found="$found, Vitis"
  fi
  if [ -d "$xilinx/Vitis_HLS/$version" ]; then
    args+=(-e "XILINX_HLS=$xilinx/Vitis_HLS/$version"); found="$found, Vitis HLS"
  elif [ -d "$xilinx/Vitis/$version" ]; then
    args+=(-e "XILINX_HLS=$xilinx/Vitis/$version")
  fi
  for v in XILINXD_LICENSE_FILE LM_LICENSE_FILE; do
    if [ -n "${!v:-}" ]; then args+=(-e "$v=${!v}"); fi
  done
  say "Xilinx: $found: the Vivado stages run"
else
  others=""
  for v in "$xilinx"/Vivado/*/; do
    if [ -d "$v" ]; then others="${others:+$others }$(basename "$v")"; fi
  done
  say "Xilinx: no Vivado $version under $xilinx${others:+ (it has Vivado $others)} (set XILINX_ROOT / XILINX_VERSION): the Vivado stages are skipped"
fi

# files written into the repository belong to the caller, not root
if [ "$(id -u)" != 0 ]; then args+=(--user "$(id -u):$(id -g)" -e HOME=/tmp); fi
docker info >/dev/null 2>&1 || { say "no Docker daemon answers (docker info failed)"; exit 1; }
if ! docker image inspect "$image" >/dev/null 2>&1; then
  say "building $image from docker/Dockerfile (docs/usage.md#docker)"
  docker build -t "$image" -f "$here/docker/Dockerfile" "$here"
fi
read -r -a extra <<<"${BDNN_DOCKER_ARGS:-}"
exec docker run "${args[@]}" "${extra[@]}" "$image" "$@"
