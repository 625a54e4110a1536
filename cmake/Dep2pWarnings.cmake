# Warnings for the project's own targets (never forced on consumers).
function(dep2p_set_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
    # g++ 12 warns on designated initializers that leave defaulted members out, which is
    # exactly how Dependencies{.time_source = t} is meant to be written.
    -Wno-missing-field-initializers
    # g++ 12 reports std::variant and std::optional members as maybe-uninitialized at -O2
    # and above where they are not (a known false positive of that analysis).
    $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  if(DEP2P_CONNMGR_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
