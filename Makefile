# The two commands of the README. Each does its own set-up on a fresh Debian 12 machine:
# installs missing Debian packages and the pinned LibTorch 2.11 (scripts/setup-libtorch.sh,
# once per machine, outside the checkout), configures (CMake preset), builds, then runs.
# PRESET=debian builds against Debian's LibTorch 1.13.1 (CPU) instead.
PRESET    ?= release
BUILD_DIR := build/$(PRESET)
JOBS      ?= $(shell nproc)

.PHONY: all deps configure build test soak demo clean

all: build

deps:
	@bash scripts/install-deps.sh

# The preset's LibTorch: Debian's for `debian`, else the pinned wheel (its path honours
# WANRT_TORCH_HOME).
$(BUILD_DIR)/build.ninja: CMakeLists.txt CMakePresets.json | deps
	@if [ "$(PRESET)" = debian ]; then \
	  cmake --preset $(PRESET); \
	else \
	  prefix=$$(bash scripts/setup-libtorch.sh) && cmake --preset $(PRESET) -DCMAKE_PREFIX_PATH="$$prefix"; \
	fi

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# 200 generations in one process through the C++ API: RSS band, descriptors, threads
# (docs/development.md); needs the tiny bundles `make test` writes.
soak: test
	$(BUILD_DIR)/test/wanrt_soak $(BUILD_DIR)/tiny-bundles

DEMO_OUT ?= $(BUILD_DIR)/demo.mp4
DEMO_PROMPT ?= a red fox running through fresh snow, cinematic lighting

demo: build
	$(BUILD_DIR)/bin/wanrun generate --prompt "$(DEMO_PROMPT)" --out $(DEMO_OUT)

clean:
	rm -rf build
