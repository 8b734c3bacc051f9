#!/bin/sh
# Vivado / Vitis mounted from the host (docker/run.sh sets XILINX_*): their tools on PATH, after the image's.
for d in "${XILINX_VIVADO:-}" "${XILINX_HLS:-}" "${XILINX_VITIS:-}"; do
    if [ -n "$d" ] && [ -d "$d/bin" ]; then
        case ":$PATH:" in *":$d/bin:"*) ;; *) PATH="$PATH:$d/bin" ;; esac
    fi
done
export PATH
if [ -n "${XILINX_VIVADO:-}" ] && [ ! -d "${FINN_DEPS:-/opt/finn_deps}/finn-hlslib" ]; then
    echo "entrypoint: FINN+'s dependencies (finn-hlslib, board files) are not in this image (not fetched when it was built);" \
         "the HLS and Vivado stages need them: rebuild with GitHub reachable (--build-arg FETCH_FINN_DEPS=yes)" >&2
fi
exec "$@"
