# Compile-checks CUDA-only sources when LibTorch has no CUDA: they are compiled (never linked)
# against /usr/local/cuda's headers, LibTorch's c10/cuda headers and a stand-in for the one
# generated header Debian's package lacks. Part of ALL, so a broken CUDA source fails the build.
include_guard(GLOBAL)

set(WANRT_CUDA_HOME "/usr/local/cuda" CACHE PATH "CUDA toolkit used for the syntax check")

function(wanrt_cuda_syntax_check layer_target)
  if(NOT EXISTS "${WANRT_CUDA_HOME}/include/cuda_runtime_api.h")
    message(WARNING "wanrt: ${WANRT_CUDA_HOME}/include/cuda_runtime_api.h not found; "
                    "the CUDA sources are NOT checked (set WANRT_CUDA_HOME)")
    return()
  endif()
  set(check ${layer_target}_cuda_check)
  add_library(${check} OBJECT ${ARGN})
  target_link_libraries(${check} PRIVATE ${layer_target})
  target_include_directories(${check} SYSTEM PRIVATE
    "${PROJECT_SOURCE_DIR}/cmake/cuda_stub" "${WANRT_CUDA_HOME}/include")
  target_compile_definitions(${check} PRIVATE WANRT_WITH_CUDA=1)
  target_compile_options(${check} PRIVATE ${WANRT_WARNINGS})
  message(STATUS "wanrt: CUDA sources of ${layer_target} are compile-checked only")
endfunction()
