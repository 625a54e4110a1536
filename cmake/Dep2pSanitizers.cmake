# Applies DEP2P_CONNMGR_SANITIZE (e.g. "address,undefined" or "thread") to a target.
function(dep2p_set_sanitizers target)
  if(DEP2P_CONNMGR_SANITIZE)
    target_compile_options(${target} PUBLIC
      -fsanitize=${DEP2P_CONNMGR_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PUBLIC -fsanitize=${DEP2P_CONNMGR_SANITIZE})
  endif()
endfunction()
