# Run by `cmake --install` (install(CODE) in CMakeLists.txt): writes avemo.pc for the prefix
# being installed to.  In:  CMAKE_INSTALL_PREFIX (the install prefix), AVEMO_VERSION,
# AVEMO_LIBDIR and AVEMO_INCLUDEDIR (GNUInstallDirs' values, relative to the prefix or
# absolute), AVEMO_PC_IN, AVEMO_PC_OUT.
set(AVEMO_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${AVEMO_${kind}}")
    set(AVEMO_PC_${kind} "${AVEMO_${kind}}")
  else()
    set(AVEMO_PC_${kind} "\${prefix}/${AVEMO_${kind}}")
  endif()
endforeach()
configure_file("${AVEMO_PC_IN}" "${AVEMO_PC_OUT}" @ONLY)
if(IS_ABSOLUTE "${AVEMO_LIBDIR}")
  set(pc_dir "${AVEMO_LIBDIR}/pkgconfig")
else()
  set(pc_dir "${CMAKE_INSTALL_PREFIX}/${AVEMO_LIBDIR}/pkgconfig")
endif()
file(INSTALL DESTINATION "$ENV{DESTDIR}${pc_dir}" TYPE FILE FILES "${AVEMO_PC_OUT}")
