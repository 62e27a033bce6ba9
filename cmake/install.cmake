# Installation: libraries, header, CLI, man page, a CMake package
# (find_package(clxent CONFIG) -> clxent::clxent, clxent::clxent_static)
# and a pkg-config file. Included from the top-level CMakeLists.txt.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CLXENT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/clxent)

install(TARGETS clxent clxent_static
  EXPORT clxentTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
          NAMELINK_COMPONENT development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
if(CLXENT_HAVE_MPI)
  install(TARGETS clxent_mpi EXPORT clxentTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
            NAMELINK_COMPONENT development)
  install(FILES ${PROJECT_SOURCE_DIR}/host/include/clxent/clxent_mpi.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/clxent
          COMPONENT development)
endif()
install(TARGETS clxent_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/host/include/clxent/clxent.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/clxent COMPONENT development)
install(FILES ${PROJECT_SOURCE_DIR}/docs/clxent.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)

install(EXPORT clxentTargets NAMESPACE clxent::
        DESTINATION ${CLXENT_CMAKE_DIR} COMPONENT development)
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/clxentConfig.cmake.in
  ${PROJECT_BINARY_DIR}/clxentConfig.cmake
  INSTALL_DESTINATION ${CLXENT_CMAKE_DIR})
# 0.x releases may break the API between minors; SameMajorVersion is the
# contract the SONAME (libclxent.so.MAJOR) states as well.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/clxentConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/clxentConfig.cmake
              ${PROJECT_BINARY_DIR}/clxentConfigVersion.cmake
        DESTINATION ${CLXENT_CMAKE_DIR} COMPONENT development)

# pkg-config file, written at install time: the prefix is known only then
# (cmake --install --prefix DIR). Paths relative to ${prefix} when possible.
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(CLXENT_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(CLXENT_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
install(CODE "
  set(CLXENT_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CLXENT_PC_LIBDIR [[${CLXENT_PC_LIBDIR}]])
  set(CLXENT_PC_INCLUDEDIR [[${CLXENT_PC_INCLUDEDIR}]])
  set(PROJECT_VERSION ${PROJECT_VERSION})
  configure_file([[${PROJECT_SOURCE_DIR}/cmake/clxent.pc.in]]
                 [[${PROJECT_BINARY_DIR}/clxent.pc]] @ONLY)
" COMPONENT development)
install(FILES ${PROJECT_BINARY_DIR}/clxent.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT development)
