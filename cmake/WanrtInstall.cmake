# `cmake --install` layout: libraries, public headers (kept under their layer folders, so
# applications include "models/wan22/pipeline.h" as the project does), the CMake package
# (find_package(wanrt) -> wanrt::wanrt), wanrun and the demo bundle.
include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS wanrt_spm LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/wanrt)
install(TARGETS wanrt_fmt wanrt_runtime wanrt_dist wanrt_io wanrt_optim wanrt_chunking wanrt_models wanrt
        EXPORT wanrtTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
foreach(layer runtime dist io optim chunking models)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${layer}
          FILES_MATCHING PATTERN "*.h" PATTERN "export" EXCLUDE PATTERN "cuda" EXCLUDE
          PATTERN "ffmpeg_util.h" EXCLUDE PATTERN "proc_fields.h" EXCLUDE
          PATTERN "sentencepiece_shim.h" EXCLUDE PATTERN "flow_scheduler_base.h" EXCLUDE
          PATTERN "planner_internal.h" EXCLUDE)
endforeach()
install(EXPORT wanrtTargets NAMESPACE wanrt:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/wanrt)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/wanrtConfig.cmake.in
  ${PROJECT_BINARY_DIR}/wanrtConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/wanrt)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/wanrtConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/wanrtConfig.cmake ${PROJECT_BINARY_DIR}/wanrtConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/wanrt)
install(DIRECTORY ${PROJECT_BINARY_DIR}/share/wanrt/demo-bundle DESTINATION ${CMAKE_INSTALL_DATADIR}/wanrt)
# Planning profiles of the real models, for `wanrun plan --profile NAME` and `wanrun doctor`.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/models/profiles/ DESTINATION ${CMAKE_INSTALL_DATADIR}/wanrt/profiles
        FILES_MATCHING PATTERN "wan*.yaml")
