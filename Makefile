# Thin driver over CMake (as neovim's is): every target configures into a build directory and
# installs missing Debian packages first. See README.md.
#   make            build into build/ (programs in build/bin/)
#   make test       build and run every test (SANITIZE=1: ASan+UBSan build in build-sanitize/)
#   make demo       active + passive on loopback, a workload, the copy catching up, a verdict
#   make bench      release build in build-release/, then the benchmark (QUICK=1: under a minute)
#   make fuzz       libFuzzer targets built with clang in build-fuzz/, run FUZZ_SECONDS each
#   make powercut   CUTS=N power cuts under load on FUSE (docs/POWERCUT.md; root, /dev/fuse)
#   make format     apply .clang-format;  make format-check  check it
#   make coverage   build with --coverage in build-cov/, run the unit tests matching COVER_TESTS,
#                   report line coverage of COVER_FILTER with gcovr (default: engine/ship)

JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
SANITIZE    ?=
FUZZ_SECONDS ?= 30
CUTS        ?= 100
CMAKE_FLAGS ?=
COVER_TESTS ?= unit_ship
COVER_FILTER ?= engine/ship/

ifeq ($(SANITIZE),1)
BUILD_DIR   ?= build-sanitize
CMAKE_FLAGS += -DLS_SANITIZE=address,undefined
else
BUILD_DIR   ?= build
endif

SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

.PHONY: all build test demo bench fuzz powercut format format-check deps clean coverage

all: build

deps:
	@tools/deps.sh build test

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build format-check
	@cd $(BUILD_DIR) && ctest --output-on-failure -j 1 --timeout 900

powercut: build
	@LS_POWERCUT_CUTS=$(CUTS) $(BUILD_DIR)/tests/integration_powercut_test --timeout=0 --verbose=0

demo: build
	@tools/demo.sh $(BUILD_DIR)/bin $(DEMO_DIR)

bench:
	@tools/deps.sh build bench
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DLS_FAULTS=OFF -DLS_TESTS=OFF >/dev/null
	@echo "logship: building the release programs (log in build-release/build.log)"
	@cmake --build build-release -j $(JOBS) > build-release/build.log 2>&1 || \
	  { tail -40 build-release/build.log; echo "logship: release build failed"; exit 1; }
	@build-release/bin/logship-bench $(if $(QUICK),--quick) --out build/bench

fuzz:
	@tools/deps.sh build fuzz
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLS_FUZZ=ON -DLS_TESTS=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

coverage: deps
	@cmake -S . -B build-cov -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=--coverage >/dev/null
	@cmake --build build-cov -j $(JOBS)
	@find build-cov -name '*.gcda' -delete
	@cd build-cov && ctest -R '$(COVER_TESTS)' --output-on-failure -j 1
	@gcovr -r . --filter '$(COVER_FILTER)' build-cov

format:
	@clang-format -i $(SOURCES)

format-check:
	@if command -v clang-format >/dev/null 2>&1; then \
	  clang-format --dry-run --Werror $(SOURCES) || { echo "logship: formatting differs from .clang-format: run 'make format'"; exit 1; }; \
	else echo "logship: clang-format not installed, formatting not checked"; fi

clean:
	rm -rf build build-sanitize build-release build-fuzz build-cov
