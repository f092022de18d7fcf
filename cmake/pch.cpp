// Translation unit of the precompiled-header carrier target (see CMakeLists.txt).
