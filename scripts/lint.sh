#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Bans libc calls that invite overflows or silent misparses (curl checksrc).
set -uo pipefail
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok|rand)[[:space:]]*\('
hits=$(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 2>/dev/null | xargs -r grep -nE "$banned" || true)
if [ -n "$hits" ]; then
  echo "banned calls (use snprintf, strtol/strtoll with checks, strtok_r, ...):"
  echo "$hits"
  exit 1
fi
echo "lint: ok"
