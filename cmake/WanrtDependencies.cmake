# Finds every dependency; a missing one stops configuration with the Debian package to install.
include_guard(GLOBAL)
find_package(PkgConfig QUIET)

function(wanrt_missing what package)
  message(FATAL_ERROR
    "wanrt: ${what} not found. Install the Debian package '${package}' "
    "(or run scripts/install-deps.sh, which installs all of them).")
endfunction()

# The LibTorch a preset asks for (CMakePresets.json): 2.11.0 from PyPI's wheel, installed by
# scripts/setup-libtorch.sh (the Makefile runs it), or Debian's 1.13.1 (preset `debian`).
set(WANRT_TORCH_VERSION "" CACHE STRING "The LibTorch version this build must use (empty: any)")
find_package(Torch QUIET)
if(NOT Torch_FOUND)
  if(WANRT_TORCH_VERSION VERSION_GREATER_EQUAL 2)
    message(FATAL_ERROR "wanrt: LibTorch ${WANRT_TORCH_VERSION} not found (CMAKE_PREFIX_PATH="
            "${CMAKE_PREFIX_PATH}). Run scripts/setup-libtorch.sh (make test does) and pass the "
            "path it prints as -DCMAKE_PREFIX_PATH.")
  endif()
  wanrt_missing("LibTorch (TorchConfig.cmake)" "libtorch-dev")
endif()
# TorchConfig finds its libraries with find_library(... PATHS <its prefix>/lib), which searches
# the system directories first: with Debian's libtorch-dev installed, a LibTorch given as
# …/share/cmake would link Debian's libtorch.so. Refuse that mix.
if(NOT TORCH_LIBRARY MATCHES "^${TORCH_INSTALL_PREFIX}/")
  message(FATAL_ERROR "wanrt: LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX} but its "
          "libtorch.so was found at ${TORCH_LIBRARY}. Pass the LibTorch prefix itself "
          "(…/torch, as scripts/setup-libtorch.sh prints) in CMAKE_PREFIX_PATH, and start from "
          "a fresh build directory.")
endif()
# A prefix match: "1.13" accepts Debian's package, whose CMake version file says 1.13.0.
string(REPLACE "." "\\." _wanrt_torch_version_re "${WANRT_TORCH_VERSION}")
if(WANRT_TORCH_VERSION AND NOT "${Torch_VERSION}." MATCHES "^${_wanrt_torch_version_re}\\.")
  message(FATAL_ERROR "wanrt: this preset wants LibTorch ${WANRT_TORCH_VERSION} but found "
          "${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}. For 2.11 run scripts/setup-libtorch.sh "
          "and pass its path as -DCMAKE_PREFIX_PATH; for Debian's 1.13 use --preset debian.")
endif()
find_package(fmt QUIET)
if(NOT fmt_FOUND)
  wanrt_missing("fmt" "libfmt-dev")
endif()
find_package(yaml-cpp QUIET)
if(NOT yaml-cpp_FOUND)
  wanrt_missing("yaml-cpp" "libyaml-cpp-dev")
endif()
find_package(CLI11 QUIET)
if(NOT CLI11_FOUND)
  wanrt_missing("CLI11" "libcli11-dev")
endif()
find_package(nlohmann_json QUIET)
if(NOT nlohmann_json_FOUND)
  wanrt_missing("nlohmann-json" "nlohmann-json3-dev")
endif()
find_package(OpenSSL QUIET COMPONENTS Crypto)
if(NOT OpenSSL_FOUND)
  wanrt_missing("OpenSSL's libcrypto (SHA-256 of bundle files)" "libssl-dev")
endif()
if(NOT PkgConfig_FOUND)
  wanrt_missing("pkg-config" "pkg-config")
endif()
# Gloo's headers: c10d's ProcessGroupGloo.hpp includes them and no LibTorch ships them. Only
# declarations are used (LibTorch carries the Gloo code), so Debian's suit either LibTorch.
find_path(WANRT_GLOO_INCLUDE_DIR gloo/rendezvous/store.h)
if(NOT WANRT_GLOO_INCLUDE_DIR)
  wanrt_missing("Gloo's headers (gloo/rendezvous/store.h)" "libgloo-dev")
endif()
pkg_check_modules(SENTENCEPIECE QUIET IMPORTED_TARGET sentencepiece)
if(NOT SENTENCEPIECE_FOUND)
  wanrt_missing("SentencePiece" "libsentencepiece-dev")
endif()
foreach(lib avformat avcodec swscale avutil)
  pkg_check_modules(FFMPEG_${lib} QUIET IMPORTED_TARGET lib${lib})
  if(NOT FFMPEG_${lib}_FOUND)
    wanrt_missing("FFmpeg's lib${lib}" "lib${lib}-dev")
  endif()
endforeach()
# Python for the tooling: the exporter (the demo bundle at build time, the test bundles), the
# Python reference and the Python tests. It imports the same PyTorch the build links: when the
# LibTorch is a Python wheel's torch package (scripts/setup-libtorch.sh), its parent directory
# goes first on PYTHONPATH; with Debian's LibTorch it is Debian's python3-torch.
# WANRT_PYTHON_RUN is the command to run it with (a list: `cmake -E env ...` then the interpreter).
set(WANRT_PYTHON "/usr/bin/python3" CACHE FILEPATH "Python 3 for the exporter and the Python tests")
if(NOT EXISTS "${WANRT_PYTHON}")
  wanrt_missing("${WANRT_PYTHON}" "python3")
endif()
set(WANRT_PYTHON_PATH "")
if(EXISTS "${TORCH_INSTALL_PREFIX}/__init__.py")
  get_filename_component(WANRT_PYTHON_PATH "${TORCH_INSTALL_PREFIX}" DIRECTORY)
  set(WANRT_PYTHON_RUN ${CMAKE_COMMAND} -E env "PYTHONPATH=${WANRT_PYTHON_PATH}" ${WANRT_PYTHON})
  set(_wanrt_py_modules "import numpy, yaml, sentencepiece")
  set(_wanrt_py_packages "python3-numpy python3-yaml python3-sentencepiece")
else()
  set(WANRT_PYTHON_RUN ${WANRT_PYTHON})
  set(_wanrt_py_modules "import torch, numpy, yaml, sentencepiece")
  set(_wanrt_py_packages "python3-torch python3-numpy python3-yaml python3-sentencepiece")
endif()
if(WANRT_BUILD_TESTS)
  find_package(Catch2 2 QUIET)
  if(NOT Catch2_FOUND)
    wanrt_missing("Catch2 v2" "catch2")
  endif()
  string(APPEND _wanrt_py_modules ", pytest")
  string(APPEND _wanrt_py_packages " python3-pytest")
endif()
execute_process(COMMAND ${WANRT_PYTHON_RUN} -c "${_wanrt_py_modules}"
                RESULT_VARIABLE _py_rc OUTPUT_QUIET ERROR_VARIABLE _py_err)
if(NOT _py_rc EQUAL 0)
  wanrt_missing("Python modules (${_py_err})" "${_wanrt_py_packages}")
endif()
execute_process(COMMAND ${WANRT_PYTHON_RUN} -c "import torch; print(torch.__version__)"
                RESULT_VARIABLE _py_rc OUTPUT_VARIABLE _py_torch ERROR_VARIABLE _py_err
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _py_rc EQUAL 0)
  wanrt_missing("PyTorch for ${WANRT_PYTHON} (${_py_err})" "python3-torch")
endif()
message(STATUS "wanrt: Python tooling runs ${WANRT_PYTHON} with torch ${_py_torch}")

# fmt: LibTorch 2.x wheels ship their own fmt headers (fmt 12 in torch 2.11) in an include
# directory that comes before Debian's. Mixing those headers with Debian's libfmt.so (fmt 9)
# would not link, so when the two versions differ wanrt uses LibTorch's copy header-only.
# wanrt_fmt is the one target every library links for fmt.
set(_wanrt_torch_fmt "")
foreach(_h base.h core.h)
  if(NOT _wanrt_torch_fmt AND EXISTS "${TORCH_INSTALL_PREFIX}/include/fmt/${_h}")
    file(STRINGS "${TORCH_INSTALL_PREFIX}/include/fmt/${_h}" _v REGEX "^#define FMT_VERSION [0-9]+")
    if(_v)
      string(REGEX REPLACE "^#define FMT_VERSION ([0-9]+).*" "\\1" _wanrt_torch_fmt "${_v}")
    endif()
  endif()
endforeach()
math(EXPR _wanrt_debian_fmt "${fmt_VERSION_MAJOR} * 10000 + ${fmt_VERSION_MINOR} * 100 + ${fmt_VERSION_PATCH}")
add_library(wanrt_fmt INTERFACE)
if(_wanrt_torch_fmt AND NOT _wanrt_torch_fmt EQUAL _wanrt_debian_fmt)
  target_compile_definitions(wanrt_fmt INTERFACE FMT_HEADER_ONLY=1)
  target_link_libraries(wanrt_fmt INTERFACE torch)
  message(STATUS "wanrt: fmt ${_wanrt_torch_fmt} header-only from LibTorch (system fmt ${fmt_VERSION})")
else()
  target_link_libraries(wanrt_fmt INTERFACE fmt::fmt)
endif()

# PyPI's LibTorch (2.x) exports its own copies of some libstdc++ symbols (std::filesystem,
# from the newer toolchain it was built with); a binary that lists libtorch before libstdc++
# binds its std::filesystem calls to those and crashes. wanrt_runtime puts libstdc++ first in
# every link that uses it (also in applications, through the installed package); with
# Debian's LibTorch it changes nothing.
set(WANRT_LINK_ORDER_OPTIONS "LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")

# LibTorch built with CUDA (e.g. a pip wheel's bundled LibTorch) enables the CUDA backend.
if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda)
  set(WANRT_HAVE_CUDA ON)
else()
  set(WANRT_HAVE_CUDA OFF)
endif()
message(STATUS "wanrt: LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}, CUDA: ${WANRT_HAVE_CUDA}")
