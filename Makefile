# What people type. Each target installs what is missing first.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
BUILD_REL  ?= build-release
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 20
CMAKE_GEN  := -G Ninja

.PHONY: all build release run test asan fuzz bench format install clean setup setup-test

all: build

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

# `make build` needs only what `setup` installs, so a tree it configures has the
# tests off (they need cmocka, which only `setup-test` installs). `make test`
# switches them on in the same tree; a later `make build` keeps that setting
# (the cache decides once the tree exists), as their packages are there by then.
$(BUILD)/build.ninja: | setup
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDN_TESTS=OFF

build: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

release: setup
	cmake -S . -B $(BUILD_REL) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DDN_TESTS=OFF -DDN_WERROR=OFF
	cmake --build $(BUILD_REL) -j $(JOBS)

# Starts a node with defaults (see README: `dmsnet daemon`).
run: release
	$(BUILD_REL)/bin/dmsnet daemon $(ARGS)

test: setup-test
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDN_TESTS=ON
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan: setup-test
	cmake -S . -B $(BUILD_ASAN) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DDN_SANITIZE=ON \
	  -DCMAKE_C_COMPILER=clang
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -LE bench

fuzz: setup-test
	cmake -S . -B $(BUILD_FUZZ) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DDN_FUZZ=ON -DDN_TESTS=OFF \
	  -DCMAKE_C_COMPILER=clang
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	scripts/run-fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

# Release tree plus the bench tools (bench/CMakeLists.txt); nothing of it is a
# CTest test. DN_WERROR=OFF: -O3 raises -Wmaybe-uninitialized false positives
# that -O2 does not, and a benchmark must not fail on them.
bench: setup-test
	cmake -S . -B $(BUILD_REL) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DDN_TESTS=OFF \
	  -DDN_BENCH=ON -DDN_WERROR=OFF
	cmake --build $(BUILD_REL) -j $(JOBS)
	bench/run.sh $(BENCH_ARGS) $(BUILD_REL)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

install: release
	cmake --install $(BUILD_REL)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ) $(BUILD_REL)
