# Compiler flags in one interface target, each with its reason.
add_library(ls_flags INTERFACE)
target_compile_options(ls_flags INTERFACE
  -Wall -Wextra            # the baseline every change must pass
  -Wshadow                 # a shadowed name in a cleanup path has hidden real bugs
  -Wformat=2               # messages carry real values; format strings must match them
  -Wstrict-prototypes      # f() in C is not f(void)
  -Wmissing-prototypes     # every non-static function has a header declaration
  -Wvla                    # no stack buffers sized by input from disk or network
  -fno-strict-aliasing     # bytes from disk/network are read through memcpy, but be safe
)
if(LS_WERROR)
  target_compile_options(ls_flags INTERFACE -Werror)
endif()
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
  target_compile_options(ls_flags INTERFACE -O1 -g)
endif()
if(LS_SANITIZE)
  target_compile_options(ls_flags INTERFACE -fsanitize=${LS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(ls_flags INTERFACE -fsanitize=${LS_SANITIZE})
endif()
# make coverage: gcov counters, -O0 so that every line maps to code (last -O wins), counters
# updated atomically (the writer's threads otherwise race on them: negative branch counts that
# gcovr refuses).
if(LS_COVERAGE)
  target_compile_options(ls_flags INTERFACE --coverage -O0 -fprofile-update=atomic)
  target_link_options(ls_flags INTERFACE --coverage)
endif()
