#!/usr/bin/env bash
# A local stand-in for the python:3.11-slim-bookworm base image where Docker Hub cannot be reached:
# Debian bookworm (debootstrap minbase) with Debian's Python 3.11, venv, pip and headers, imported
# into Docker. Needs root, debootstrap and a Debian mirror (about a minute).
#   docker/make_base_image.sh [TAG]        # default bdnn-local/python:3.11-bookworm
#   docker build --build-arg BASE_IMAGE=bdnn-local/python:3.11-bookworm -f docker/Dockerfile .
# DEBIAN_MIRROR: the mirror (default: the host's first deb.debian.org-style URI, else deb.debian.org).
set -euo pipefail
tag="${1:-bdnn-local/python:3.11-bookworm}"
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
            | head -1 | grep -oE 'https?://[^ ]+' || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi
command -v debootstrap >/dev/null || { echo "make_base_image.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
root="$(mktemp -d /tmp/bdnn-base.XXXXXX)"
trap 'rm -rf "$root" "$root.log"' EXIT
echo "make_base_image.sh: debootstrap bookworm from $mirror into $root" >&2
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python3-dev,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "make_base_image.sh: $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
