#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make install into a temporary prefix, then build the README's program
# against the installed header, library and sluice.pc exactly as the README
# says, and run it: 5 logins allowed, the 6th denied.
set -euo pipefail
src=${SLUICE_SRC:?}
bin=${SLUICE_BIN:?}
build=$(dirname "$bin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in include/sluice.h bin/sluice bin/sluiced; do
  [ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
pc=$(find "$tmp/prefix" -name sluice.pc | head -n1)
[ -n "$pc" ] || { echo "FAIL: sluice.pc not installed"; exit 1; }
ls "$tmp/prefix"/lib*/libsluice.a "$tmp/prefix"/lib*/libsluice.so >/dev/null
ls "$tmp/prefix"/share/man/man1/sluice.1 >/dev/null 2>&1 || { echo "FAIL: man page sluice.1 not installed"; exit 1; }

export PKG_CONFIG_PATH=$(dirname "$pc")
cd "$tmp"
# The README shows the program without its file header: the two must not drift.
awk '/^```c$/{f=1;next} /^```$/{if(f)exit} f' "$src/README.md" > readme.c
sed '1,/^ \*\/$/d' "$src/examples/quickstart.c" | diff readme.c - \
  || { echo "FAIL: the README's C program differs from examples/quickstart.c"; exit 1; }
cc "$src/examples/quickstart.c" $(pkg-config --cflags --libs --static sluice) -o quickstart
# The library is in a private prefix, so tell the loader where it is.
LD_LIBRARY_PATH="$(pkg-config --variable=libdir sluice)" ./quickstart > out.txt
cat out.txt
allowed=$(grep -c 'allowed=1' out.txt)
denied=$(grep -c 'allowed=0' out.txt)
if [ "$allowed" -ne 5 ] || [ "$denied" -ne 1 ]; then
  echo "FAIL: expected 5 allowed and 1 denied, got $allowed and $denied"
  exit 1
fi
grep -q 'remaining=0 ' out.txt || { echo "FAIL: the fifth login should leave remaining=0"; exit 1; }
echo "1 passed, 0 failed"
