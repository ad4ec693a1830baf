# Writes OUT: a C++ initializer list {"kernels/<name>", R"(...)"} of every kernel header, so the
# compiler can hand them to NVRTC with no file system access. Run as `cmake -P` with SRC_DIR, OUT.
file(GLOB headers RELATIVE ${SRC_DIR} ${SRC_DIR}/kernels/*.cuh ${SRC_DIR}/kernels/*.h)
list(SORT headers)
set(text "// Generated from kernels/ by cmake/EmbedKernels.cmake; do not edit.\n")
foreach(h ${headers})
  file(READ ${SRC_DIR}/${h} content)
  string(APPEND text "{\"${h}\", R\"mmkernel(${content})mmkernel\"},\n")
endforeach()
file(WRITE ${OUT}.tmp "${text}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
