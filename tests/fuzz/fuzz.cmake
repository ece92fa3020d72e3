# SPDX-License-Identifier: MIT
# The libFuzzer targets, one per input boundary (docs/fuzzing.md).  Included
# by CMakeLists.txt with -DSLUICE_FUZZ=ON only (scripts/fuzz.sh does that in
# build-fuzz/ with CC=clang), so the gcc builds never see them.
#
# Each target T is tests/fuzz/fuzz_T.c, with its seed corpus in
# tests/fuzz/corpus/T/ and, where it helps, a dictionary tests/fuzz/T.dict.
# CTest (label fuzz) runs every target over its seeds for SLUICE_FUZZ_RUNS
# more inputs: make test's regression check.

set(SLUICE_FUZZ_RUNS 20000 CACHE STRING "inputs each fuzz target runs under CTest")
set(SLUICE_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)

# sluiced without main.c: the handlers, the HTTP layer, the server glue.
file(GLOB SLUICE_FUZZ_DAEMON_SRC CONFIGURE_DEPENDS src/daemon/*.c)
list(FILTER SLUICE_FUZZ_DAEMON_SRC EXCLUDE REGEX "/main\\.c$")
# the CLI without main.c
file(GLOB SLUICE_FUZZ_CLI_SRC CONFIGURE_DEPENDS src/cli/*.c)
list(FILTER SLUICE_FUZZ_CLI_SRC EXCLUDE REGEX "/main\\.c$")

set(SLUICE_FUZZ_TARGETS)
function(sluice_fuzz name)
  add_executable(fuzz_${name} ${SLUICE_FUZZ_DIR}/fuzz_${name}.c ${ARGN})
  target_compile_options(fuzz_${name} PRIVATE ${SLUICE_WARNINGS})
  target_compile_definitions(fuzz_${name} PRIVATE SLUICE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_include_directories(fuzz_${name} PRIVATE ${SLUICE_FUZZ_DIR} src include)
  target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz_${name} PRIVATE sluice_static)
  set(dict)
  if(EXISTS ${SLUICE_FUZZ_DIR}/${name}.dict)
    set(dict -dict=${SLUICE_FUZZ_DIR}/${name}.dict)
  endif()
  # New inputs go to a scratch dir first in the list, never into the
  # committed seeds; a crash is saved as crash-<sha1> in the build dir.
  add_test(NAME fuzz_${name}
           COMMAND /bin/sh -c "rm -rf new_${name} && mkdir -p new_${name} && exec ./bin/fuzz_${name} -runs=${SLUICE_FUZZ_RUNS} -seed=1 -max_total_time=300 -timeout=10 -rss_limit_mb=2048 ${SLUICE_FUZZ_FLAGS_${name}} -print_final_stats=1 -artifact_prefix=./fuzz_${name}- ${dict} new_${name} ${SLUICE_FUZZ_DIR}/corpus/${name}"
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(fuzz_${name} PROPERTIES LABELS fuzz TIMEOUT 400)
  set(SLUICE_FUZZ_TARGETS ${SLUICE_FUZZ_TARGETS} fuzz_${name} PARENT_SCOPE)
endfunction()

sluice_fuzz(config)
sluice_fuzz(rls)
sluice_fuzz(url ${CMAKE_SOURCE_DIR}/src/daemon/log.c)
# as in scripts/fuzz.sh: a reply holds at most 2^20 elements (8 MB)
set(SLUICE_FUZZ_FLAGS_redis_reply -malloc_limit_mb=64)
sluice_fuzz(redis_reply)
sluice_fuzz(replay ${SLUICE_FUZZ_CLI_SRC})
# sluiced's sources include the gRPC listener: its generated protobuf-c code
# and nghttp2 link in as for sluiced itself.
foreach(t http json)
  sluice_fuzz(${t} ${SLUICE_FUZZ_DIR}/fuzz_sluiced.c ${SLUICE_FUZZ_DAEMON_SRC}
              $<TARGET_OBJECTS:sluice_proto>)
  target_include_directories(fuzz_${t} PRIVATE ${SLUICE_PROTO_GEN})
  target_link_libraries(fuzz_${t} PRIVATE http_parser PkgConfig::NGHTTP2 PkgConfig::PROTOBUFC)
endforeach()

add_custom_target(fuzz_targets DEPENDS ${SLUICE_FUZZ_TARGETS})
