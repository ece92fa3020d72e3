# SPDX-License-Identifier: MIT
# Thin front end over CMake/CTest: the commands of SPEC section 0.
BUILD ?= build
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG ?= examples/sluice.yaml

.PHONY: all deps run test test-unit test-asan test-tsan bench install clean format

all: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh build

run: all
	$(BUILD)/bin/sluiced --config $(CONFIG) --store memory:// --listen 127.0.0.1:8080

# Every test: unit + integration on the default build, unit under
# ASan+UBSan, threaded tests under TSan, and the style/lint checks.
test:
	@scripts/deps.sh test
	@scripts/test.sh

test-unit: all
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

bench:
	@scripts/deps.sh bench
	@scripts/bench.sh

# Every libFuzzer target (tests/fuzz) for FUZZ_SECONDS (default 600) each,
# in build-fuzz/ with clang: executions, coverage and crashes per target.
.PHONY: fuzz
fuzz:
	@scripts/deps.sh fuzz
	@scripts/fuzz.sh

# sluiced on Redis under wrk load and faults for SOAK_SECONDS (default 600).
.PHONY: soak
soak:
	@scripts/deps.sh bench
	@scripts/soak.sh

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-asan build-tsan build-fuzz

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
