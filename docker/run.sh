#!/usr/bin/env bash
# Run the BDNN build inside the FINN build container with the host's Vivado mounted.
#   XILINX_ROOT=/tools/Xilinx docker/run.sh python build_scripts/build_bdnn4.py --board pynq-z2
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
image="${BDNN_IMAGE:-bdnn-finn:latest}"
xilinx="${XILINX_ROOT:-/tools/Xilinx}"
version="${XILINX_VERSION:-2024.2}"
[ -d "$xilinx/Vivado/$version" ] || { echo "no Vivado $version under $xilinx (set XILINX_ROOT/XILINX_VERSION)" >&2; exit 2; }
docker image inspect "$image" >/dev/null 2>&1 || docker build -t "$image" -f "$here/docker/Dockerfile" "$here"
exec docker run --rm -it \
  -v "$here:/workspace" -v "$xilinx:$xilinx:ro" \
  -v "${FER2013_DIR:-$here/../shared/data/fer2013}:/data/fer2013:ro" \
  -e FER2013_PATH=/data/fer2013/fer2013.npz \
  -e XILINX_VIVADO="$xilinx/Vivado/$version" -e XILINX_VITIS="$xilinx/Vitis/$version" \
  -e XILINX_HLS="$xilinx/Vitis_HLS/$version" \
  -e PATH="/opt/venv/bin:$xilinx/Vivado/$version/bin:$xilinx/Vitis_HLS/$version/bin:/usr/local/bin:/usr/bin:/bin" \
  -e BDNN_VENV=/opt/venv \
  "$image" "$@"
