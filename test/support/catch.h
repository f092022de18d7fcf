// Catch2 for the C++ tests, included after LibTorch's logging header: that header defines its
// own CHECK(condition) macro, and whichever definition comes last wins. With precompiled
// headers LibTorch always came first; without them (the sanitizer preset) a test that included
// Catch before a LibTorch header got LibTorch's CHECK. Include this, never <catch2/catch.hpp>.
#pragma once

#include <c10/util/Logging.h>
#include <catch2/catch.hpp>
