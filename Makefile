# The two commands of the README. Each does its own set-up on a fresh Debian 12 machine:
# installs missing Debian packages and the pinned LibTorch 2.11 (scripts/setup-libtorch.sh,
# once per machine, outside the checkout), configures (CMake preset), builds, then runs.
# PRESET=debian builds against Debian's LibTorch 1.13.1 (CPU) instead.
PRESET    ?= release
BUILD_DIR := build/$(PRESET)
JOBS      ?= $(shell nproc)

.PHONY: all deps configure build test test-sanitize soak demo clean

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

# Every test of our C++ code under AddressSanitizer + UBSan (preset `sanitize`, build/sanitize):
# the C++ and C tests and the bindings tests that drive wanrun and the C library. Leak reports
# are on; test/sanitize/lsan.supp may hold LibTorch's own leaks only (it says why). Left out:
# bindings.test_host_memory (ASan replaces the malloc it tunes and measures), the examples
# and the Python module (uninstrumented programs cannot link or load instrumented code).
# allocator_may_return_null: one test asks for an impossible allocation and expects LibTorch's
# error, not ASan's abort. SANITIZE_TESTS narrows the selection (CI: the C++ and C tests).
SANITIZE_DIR   := build/sanitize
SANITIZE_TESTS ?= -L "cpp|c|bindings" -E "bindings[.]test_host_memory"
SANITIZE_ENV   := ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:strict_string_checks=1:detect_stack_use_after_return=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/test/sanitize/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
test-sanitize: deps
	prefix=$$(bash scripts/setup-libtorch.sh) && cmake --preset sanitize -DCMAKE_PREFIX_PATH="$$prefix"
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	$(SANITIZE_ENV) ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j $(JOBS) $(SANITIZE_TESTS)

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
