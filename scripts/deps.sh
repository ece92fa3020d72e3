#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages sluice needs, only those missing, and only when
# run as root (a non-root user gets the list to install instead).
#   scripts/deps.sh build    compile-time libraries and tools
#   scripts/deps.sh test     + redis-server, redis-sentinel, nginx-light, curl
#   scripts/deps.sh bench    + wrk, redis-tools, h2load (nghttp2-client), valgrind
#   scripts/deps.sh fuzz     + clang and libFuzzer (make fuzz, the fuzz phase of make test)
set -euo pipefail

build=(build-essential cmake pkg-config libhiredis-dev libevent-dev libhttp-parser-dev libyaml-dev libjansson-dev
       libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev)
# gRPC tests: a real client (grpcio + protobuf, stubs from protoc) and raw HTTP/2 frames (h2)
test=(redis-server redis-tools redis-sentinel nginx-light curl python3 python3-yaml
      python3-grpcio python3-protobuf protobuf-compiler python3-h2)
bench=(wrk redis-tools nghttp2-client valgrind)
fuzz=(clang libfuzzer-14-dev libclang-rt-14-dev)

want=("${build[@]}")
case "${1:-build}" in
  build) ;;
  test) want+=("${test[@]}" "${fuzz[@]}") ;;
  fuzz) want+=("${fuzz[@]}") ;;
  bench) want+=("${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 [build|test|bench|fuzz]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "sluice: missing Debian packages: ${missing[*]}" >&2
  echo "sluice: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "sluice: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# Debian's redis-server and nginx packages try to start their services on
# install; policy-rc.d stops that, since tests start their own on free ports.
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy -eq 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ $had_policy -eq 0 ] && rm -f /usr/sbin/policy-rc.d
exit 0
