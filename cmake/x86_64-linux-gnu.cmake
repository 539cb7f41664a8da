# Cross-compiles for linux-x64 (glibc) with Debian's g++-x86-64-linux-gnu.
# Used by scripts/prebuild.mjs: cmake -DCMAKE_TOOLCHAIN_FILE=cmake/x86_64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER x86_64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER x86_64-linux-gnu-g++)
# Headers come from node-api-headers and node-addon-api (plain paths); libraries and programs
# from the cross sysroot only, never from the host's multiarch directories.
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
