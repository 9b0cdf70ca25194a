# Thin driver over CMake (as neovim's is): every target configures into a build directory and
# installs missing Debian packages first. See README.md.
#   make            build into build/ (programs in build/bin/)
#   make test       build (debug, and release in build-release/ as a check) and run every test
#                   (SANITIZE=1: ASan+UBSan build in build-sanitize/)
#   make demo       active + passive on loopback, a workload, the copy catching up, a verdict
#   make bench      release build in build-release/, then the benchmark (QUICK=1: about 80 s;
#                   COMPARE=OLD.json: each figure's change against an earlier results.json)
#   make fuzz       libFuzzer targets built with clang in build-fuzz/, run FUZZ_SECONDS each
#   make powercut   CUTS=N power cuts under load on FUSE (docs/POWERCUT.md; root, /dev/fuse)
#   make hostkill   KILLS=N kill -9 of the active host then activation, per commit level
#                   (RATE=TPS of the load, 0 unpaced; docs/BLOCKMODE.md "Host kills")
#   make install    release build in build-release/, installed under PREFIX (default /usr/local):
#                   liblogship.so/.a, include/logship/, logship.pc, logship, logshipd, man pages
#   make coverage   gcov build in build-coverage/, the unit tests, line coverage per engine module
#   make fresh-check  make demo and make test on a fresh minimal Debian 12 (root, debootstrap)
#   make format     apply .clang-format;  make format-check  check it

JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
SANITIZE    ?=
FUZZ_SECONDS ?= 30
CUTS        ?= 100
KILLS       ?= 100
RATE        ?= 500
CMAKE_FLAGS ?=
PREFIX      ?= /usr/local
COVERAGE_LABEL ?= unit

ifeq ($(SANITIZE),1)
BUILD_DIR   ?= build-sanitize
CMAKE_FLAGS += -DLS_SANITIZE=address,undefined
else
BUILD_DIR   ?= build
endif

SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

.PHONY: all build release-build test demo bench fuzz powercut hostkill format format-check deps clean fresh-check install coverage

all: build

deps:
	@tools/deps.sh build test

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build format-check release-build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j 1 --timeout 900

# The optimised build that make bench and make install use, with the same -Werror: gcc's -O2
# analyses (format truncation, unused variables of assertions compiled out) differ from -O0's.
release-build:
	@tools/deps.sh build
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DLS_FAULTS=OFF -DLS_TESTS=OFF >/dev/null
	@echo "logship: building the release configuration (log in build-release/build.log)"
	@cmake --build build-release -j $(JOBS) > build-release/build.log 2>&1 || \
	  { tail -40 build-release/build.log; echo "logship: release build failed"; exit 1; }

powercut: build
	@LS_POWERCUT_CUTS=$(CUTS) $(BUILD_DIR)/tests/integration_powercut_test --timeout=0 --verbose=0

hostkill: build
	@LS_HOSTKILL_KILLS=$(KILLS) LS_HOSTKILL_RATE=$(RATE) $(BUILD_DIR)/tests/integration_hostkill_test \
	  --jobs=1 --timeout=0 --verbose=0

demo: build
	@tools/demo.sh $(BUILD_DIR)/bin $(DEMO_DIR)

bench: release-build
	@tools/deps.sh build bench
	@build-release/bin/logship-bench $(if $(QUICK),--quick) $(if $(COMPARE),--compare $(COMPARE)) --out build/bench

fuzz:
	@tools/deps.sh build fuzz
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLS_FUZZ=ON -DLS_TESTS=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

install:
	@tools/deps.sh build
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DLS_FAULTS=OFF -DLS_TESTS=OFF >/dev/null
	@cmake --build build-release -j $(JOBS)
	@cmake --install build-release --prefix $(PREFIX)

# Tests of COVERAGE_LABEL (ctest label: unit, integration, build; empty: every test). A failing
# test is reported and makes the target fail, after the report. Built at -O0 (lines map to code),
# where gcc's -Wformat-truncation analysis differs: warnings are not errors there (make build is
# the warnings gate).
coverage:
	@tools/deps.sh build test coverage
	@cmake -S . -B build-coverage -DCMAKE_BUILD_TYPE=Debug -DLS_COVERAGE=ON -DLS_WERROR=OFF >/dev/null
	@cmake --build build-coverage -j $(JOBS)
	@find build-coverage -name '*.gcda' -delete
	@cd build-coverage && ctest $(if $(COVERAGE_LABEL),-L $(COVERAGE_LABEL)) -j 1 --timeout 900 \
	  --output-on-failure > ctest.log 2>&1; rc=$$?; sed -n '/tests passed/,$$p' ctest.log; \
	  cd .. && tools/coverage.sh build-coverage && exit $$rc

fresh-check:
	@tools/fresh-check.sh

format:
	@clang-format -i $(SOURCES)

format-check:
	@if command -v clang-format >/dev/null 2>&1; then \
	  clang-format --dry-run --Werror $(SOURCES) || { echo "logship: formatting differs from .clang-format: run 'make format'"; exit 1; }; \
	else echo "logship: clang-format not installed, formatting not checked"; fi

clean:
	rm -rf build build-sanitize build-release build-fuzz build-coverage
