// The number of CPU threads LibTorch uses.
#pragma once

namespace wanrt {

/// Sets LibTorch's intra-op thread count to `requested`, or to the number of usable cores
/// when requested <= 0, and returns the count in force. The inter-op pool is sized once, the
/// first time this is called and only if nothing started it yet (LibTorch allows that only
/// once per process; later attempts are ignored). Call it before running components; threads
/// created afterwards pick up the intra-op count.
int configure_threads(int requested);

}  // namespace wanrt
