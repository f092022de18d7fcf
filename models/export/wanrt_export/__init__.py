"""wanrt_export: our own PyTorch implementation of the Wan 2.2 components, the bundle
exporter and the eager reference pipeline (the oracle for the C++ parity tests)."""
