# wanrt_library(<name> SOURCES ... DEPS ...): one layer's library with our warnings and the
# shared precompiled torch header.
include_guard(GLOBAL)

# WANRT_WERROR=OFF: for a first build with another compiler or LibTorch (scripts/gpu-check.sh),
# where a new warning should not stop the run.
option(WANRT_WERROR "Treat warnings in wanrt's own code as errors" ON)
set(WANRT_WARNINGS -Wall -Wextra)
if(WANRT_WERROR)
  list(APPEND WANRT_WARNINGS -Werror)
endif()

function(wanrt_apply_common target)
  target_compile_features(${target} PUBLIC cxx_std_17)
  target_compile_options(${target} PRIVATE ${WANRT_WARNINGS})
  if(WANRT_USE_PCH AND TARGET wanrt_pch)
    target_precompile_headers(${target} REUSE_FROM wanrt_pch)
  endif()
endfunction()

function(wanrt_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(wanrt_${name} ${ARG_SOURCES})
  add_library(wanrt::${name} ALIAS wanrt_${name})
  target_include_directories(wanrt_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<INSTALL_INTERFACE:include>)
  target_link_libraries(wanrt_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  wanrt_apply_common(wanrt_${name})
endfunction()
