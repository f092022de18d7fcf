// Stand-in for the header CMake generates when PyTorch is built with CUDA (absent from Debian's libtorch-dev); used only for the syntax check.
#define C10_CUDA_BUILD_SHARED_LIBS
