# The two commands of the README. Each does its own set-up on a fresh Debian 12 machine:
# installs missing Debian packages, configures (CMake preset), builds, then runs.
PRESET    ?= release
BUILD_DIR := build/$(PRESET)
JOBS      ?= $(shell nproc)

.PHONY: all deps configure build test demo clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt CMakePresets.json | deps
	cmake --preset $(PRESET)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

DEMO_OUT ?= $(BUILD_DIR)/demo.mp4
DEMO_PROMPT ?= a red fox running through fresh snow, cinematic lighting

demo: build
	$(BUILD_DIR)/bin/wanrun generate --prompt "$(DEMO_PROMPT)" --out $(DEMO_OUT)

clean:
	rm -rf build
