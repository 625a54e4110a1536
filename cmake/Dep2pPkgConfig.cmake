# dep2p_install_pkg_config(target): generates and installs <target>.pc (from
# cmake/dep2p_connmgr.pc.in) to ${CMAKE_INSTALL_LIBDIR}/pkgconfig, describing the library
# the way the exported CMake target does:
#   - spdlog (which brings fmt) is private: Requires.private for a shared library; a static
#     archive needs it at every link, so there it is in Requires and plain
#     `pkg-config --libs` is enough;
#   - the target's interface compile and link options (the sanitizer flags of
#     DEP2P_CONNMGR_SANITIZE, when set) go to Cflags and Libs, as a find_package consumer
#     inherits them: code linked with a sanitized library must be linked with the sanitizer;
#   - the target's interface compile definitions (DEP2P_CONNMGR_STATIC_DEFINE for a static
#     library, which empties DEP2P_CONNMGR_EXPORT in export.hpp) go to Cflags as -D;
#   - Boost's include directory, unless the compiler searches it anyway (e.g. /usr/include).
# The prefix is written relative to ${pcfiledir}, so `cmake --install --prefix DIR` may
# choose another prefix than the configured one.
function(dep2p_install_pkg_config target)
  set(pc_dir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(DEP2P_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
    set(DEP2P_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
  else()
    file(RELATIVE_PATH up "/root/${pc_dir}" "/root")
    string(REGEX REPLACE "/$" "" up "${up}")
    set(DEP2P_PC_PREFIX "\${pcfiledir}/${up}")
    set(DEP2P_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  endif()
  if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(DEP2P_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
  else()
    set(DEP2P_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  endif()

  get_target_property(type ${target} TYPE)
  if(type STREQUAL "STATIC_LIBRARY")
    set(DEP2P_PC_REQUIRES " spdlog")
    set(DEP2P_PC_REQUIRES_PRIVATE "")
  else()
    set(DEP2P_PC_REQUIRES "")
    set(DEP2P_PC_REQUIRES_PRIVATE " spdlog")
  endif()
  get_target_property(DEP2P_PC_LIBNAME ${target} OUTPUT_NAME)
  if(NOT DEP2P_PC_LIBNAME)
    set(DEP2P_PC_LIBNAME ${target})
  endif()

  set(DEP2P_PC_CFLAGS "")
  foreach(dir IN LISTS Boost_INCLUDE_DIRS)
    if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      string(APPEND DEP2P_PC_CFLAGS " -I${dir}")
    endif()
  endforeach()
  get_target_property(definitions ${target} INTERFACE_COMPILE_DEFINITIONS)
  if(NOT definitions)
    set(definitions "")
  endif()
  foreach(definition IN LISTS definitions)
    if(definition MATCHES "\\$<")
      message(FATAL_ERROR "${target}'s interface compile definitions hold a generator "
                          "expression, which ${target}.pc cannot carry: ${definition}")
    endif()
    string(APPEND DEP2P_PC_CFLAGS " -D${definition}")
  endforeach()
  get_target_property(compile_options ${target} INTERFACE_COMPILE_OPTIONS)
  get_target_property(link_options ${target} INTERFACE_LINK_OPTIONS)
  set(DEP2P_PC_LIBS "")
  foreach(kind IN ITEMS compile link)
    if(NOT ${kind}_options)
      continue()
    endif()
    if(${kind}_options MATCHES "\\$<")
      message(FATAL_ERROR "${target}'s interface ${kind} options hold a generator expression, "
                          "which ${target}.pc cannot carry: ${${kind}_options}")
    endif()
    list(JOIN ${kind}_options " " flags)
    if(kind STREQUAL "compile")
      string(APPEND DEP2P_PC_CFLAGS " ${flags}")
    else()
      string(APPEND DEP2P_PC_LIBS " ${flags}")
    endif()
  endforeach()

  configure_file(${PROJECT_SOURCE_DIR}/cmake/dep2p_connmgr.pc.in
    ${CMAKE_CURRENT_BINARY_DIR}/${target}.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${target}.pc DESTINATION ${pc_dir})
endfunction()
