# `cmake --install <build> --prefix P` puts into P:
#   lib/libvqgpt_*.a              the static libraries
#   include/vqgpt/<folder>/*.h    the headers, at the paths the sources include them by
#                                 ("stage1_vqgan/vqgan.h" with -IP/include/vqgpt)
#   bin/vqgpt                     the program
#   share/vqgpt/models/           the shipped models (found beside bin/: cli/models.c)
#   lib/pkgconfig/vqgpt.pc        pkg-config (link with --static: the libraries are static)
#   lib/cmake/vqgpt/              find_package(vqgpt) -> vqgpt::vqgpt (every library)
include(CMakePackageConfigHelpers)

set(VQGPT_LIBDIR lib)
set(VQGPT_HEADER_DIRS core weights data stage1_vqgan stage2_transformer tokenizer sampling)

# One target that links every library in order: vqgpt::vqgpt in the CMake package.
add_library(vqgpt_all INTERFACE)
target_link_libraries(vqgpt_all INTERFACE ${VQGPT_LIBS})
set_target_properties(vqgpt_all PROPERTIES EXPORT_NAME vqgpt)

install(TARGETS ${VQGPT_LIBS} vqgpt_all EXPORT vqgptTargets ARCHIVE DESTINATION ${VQGPT_LIBDIR})
install(TARGETS vqgpt RUNTIME DESTINATION bin)
foreach(dir ${VQGPT_HEADER_DIRS})
  install(DIRECTORY ${dir}/ DESTINATION include/vqgpt/${dir} FILES_MATCHING PATTERN "*.h")
endforeach()
install(DIRECTORY models/ DESTINATION share/vqgpt/models)

# pkg-config. The prefix is found from the .pc file's own place, so the file is right for
# whatever --prefix the install is given. OpenBLAS is named directly rather than required:
# its .pc's private libraries (-lgfortran) are for linking OpenBLAS itself statically, and
# we link the shared one.
set(VQGPT_PC_LIBS "")
foreach(lib ${VQGPT_LIBS})
  string(APPEND VQGPT_PC_LIBS " -l${lib}")
endforeach()
set(VQGPT_PC_OPENBLAS "-lopenblas")
if(OPENBLAS_LIBRARY_DIRS)
  list(GET OPENBLAS_LIBRARY_DIRS 0 openblas_dir)
  set(VQGPT_PC_OPENBLAS "-L${openblas_dir} -lopenblas")
endif()
string(REPLACE ";" " " VQGPT_PC_OPENMP "${OpenMP_C_FLAGS}")
# MPI's libraries, when the build has it (core/dist.c calls MPI).
set(VQGPT_PC_MPI "")
if(MPI_C_FOUND)
  foreach(lib ${MPI_C_LIBRARIES})
    string(APPEND VQGPT_PC_MPI " ${lib}")
  endforeach()
endif()
configure_file(cmake/vqgpt.pc.in ${CMAKE_BINARY_DIR}/vqgpt.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/vqgpt.pc DESTINATION ${VQGPT_LIBDIR}/pkgconfig)

# CMake package.
install(EXPORT vqgptTargets NAMESPACE vqgpt:: DESTINATION ${VQGPT_LIBDIR}/cmake/vqgpt)
configure_package_config_file(cmake/vqgptConfig.cmake.in ${CMAKE_BINARY_DIR}/vqgptConfig.cmake
                              INSTALL_DESTINATION ${VQGPT_LIBDIR}/cmake/vqgpt)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/vqgptConfigVersion.cmake VERSION 0.1.0
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/vqgptConfig.cmake ${CMAKE_BINARY_DIR}/vqgptConfigVersion.cmake
        DESTINATION ${VQGPT_LIBDIR}/cmake/vqgpt)
