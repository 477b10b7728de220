# `cmake --install build [--prefix P]`: the plugin SDK (included from core/CMakeLists.txt).
#   P/bin/clpdd                      the driver (RPATH $ORIGIN/../lib: the prefix is relocatable)
#   P/lib/libclpdd.so*               the runtime library
#   P/lib/libclpdd_cuda.so           the CUDA backend, dlopened beside libclpdd.so (CUDA builds)
#   P/lib/clpdd/plugins/*.so         the plugins (installed by plugins/CMakeLists.txt)
#   P/include/clpdd/{plugin,ops}.h   the public headers: all a plugin needs
#   P/lib/pkgconfig/clpdd.pc         pkg-config --cflags clpdd (plugins), --libs clpdd (programs)
#   P/lib/cmake/clpdd/               find_package(clpdd): clpdd::headers, clpdd::clpdd,
#                                    clpdd_add_plugin(name sources...)
include(CMakePackageConfigHelpers)

# headers only: what a plugin links against (plugins need no library of ours)
add_library(clpdd_headers INTERFACE)
target_include_directories(clpdd_headers INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/core/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(clpdd_headers PROPERTIES EXPORT_NAME headers)
set_target_properties(clpdd PROPERTIES EXPORT_NAME clpdd)

file(RELATIVE_PATH _clpdd_bin_to_lib
  ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR} ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR})
set_target_properties(clpdd_driver PROPERTIES INSTALL_RPATH "$ORIGIN/${_clpdd_bin_to_lib}")

install(TARGETS clpdd clpdd_headers EXPORT clpddTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS clpdd_driver RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET clpdd_cuda)
  install(TARGETS clpdd_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/include/clpdd DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(CLPDD_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/clpdd)
install(EXPORT clpddTargets NAMESPACE clpdd:: DESTINATION ${CLPDD_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/clpddConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/clpddConfig.cmake
  INSTALL_DESTINATION ${CLPDD_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/clpddConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/clpddConfig.cmake ${CMAKE_BINARY_DIR}/cmake/clpddConfigVersion.cmake
  DESTINATION ${CLPDD_CMAKE_DIR})

file(READ ${PROJECT_SOURCE_DIR}/core/include/clpdd/plugin.h _clpdd_plugin_h)
string(REGEX MATCH "#define CLPDD_ABI_MAJOR ([0-9]+)" _ ${_clpdd_plugin_h})
set(CLPDD_ABI_MAJOR ${CMAKE_MATCH_1})
string(REGEX MATCH "#define CLPDD_ABI_MINOR ([0-9]+)" _ ${_clpdd_plugin_h})
set(CLPDD_ABI_MINOR ${CMAKE_MATCH_1})
configure_file(${PROJECT_SOURCE_DIR}/cmake/clpdd.pc.in ${CMAKE_BINARY_DIR}/cmake/clpdd.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cmake/clpdd.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
