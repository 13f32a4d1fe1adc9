#!/usr/bin/env bash
# Install every Debian package the build, tests, demo and benchmarks need.
# Idempotent and non-interactive; does nothing when all are present.
set -euo pipefail
pkgs=(build-essential pkg-config clang libclang-rt-14-dev protobuf-c-compiler libprotobuf-c-dev liblz4-dev
	libxxhash-dev libcap-dev libnl-3-dev libnl-route-3-dev liburing-dev libsodium-dev
	nftables iproute2 procps util-linux xxhash clang-tidy cppcheck clang-format)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
echo "deps: installing ${missing[*]}"
if [[ $(id -u) != 0 ]]; then
	echo "deps: need root to install packages (run as root or install: ${missing[*]})" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
