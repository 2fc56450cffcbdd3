# Included into llama.cpp's CMake project when .ci/run builds llama-cpp-python for the tests
# (CMAKE_PROJECT_llama.cpp_INCLUDE): the Python server needs only the llama and ggml libraries, not llama.cpp's
# "common" library and the example programs built on it, which take most of a default build's time.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)
