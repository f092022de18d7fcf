#include "models/wan22/video_shape.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/error.h"

namespace wanrt::wan22 {
namespace {

int nearest_multiple(int value, int multiple) {
  const int down = std::max(multiple, value / multiple * multiple);
  const int up = down + multiple;
  return (value - down <= up - value) ? down : up;
}

}  // namespace

bool valid_frame_count(int frames) noexcept { return frames >= 1 && (frames - 1) % 4 == 0; }

int nearest_frame_count(int frames) noexcept {
  if (frames <= 1) return 1;
  const int below = 1 + (frames - 1) / 4 * 4;
  const int above = below + 4;
  return (frames - below < above - frames) ? below : above;
}

void check_frame_count(int frames) {
  if (valid_frame_count(frames)) return;
  if (frames < 1) {
    throw Error(ErrorCategory::kUsage, fmt::format("--frames must be at least 1, got {}", frames),
                "use a count of the form 4n+1: 1, 5, 9, ..., 81, 121");
  }
  const int below = 1 + (frames - 1) / 4 * 4;
  throw Error(ErrorCategory::kUsage,
              fmt::format("--frames {} is not of the form 4n+1 (Wan's VAE packs 4 frames per "
                          "latent frame after the first)", frames),
              fmt::format("use {} or {}", below, below + 4));
}

void check_frame_size(int width, int height, int multiple) {
  if (width > 0 && height > 0 && width % multiple == 0 && height % multiple == 0) return;
  throw Error(ErrorCategory::kUsage,
              fmt::format("--size {}x{}: width and height must be positive multiples of {} "
                          "(VAE stride x patch size)", width, height, multiple),
              fmt::format("nearest valid size: {}x{}", nearest_multiple(std::max(width, 1), multiple),
                          nearest_multiple(std::max(height, 1), multiple)));
}

int latent_frame_count(int frames) noexcept { return (frames - 1) / 4 + 1; }

}  // namespace wanrt::wan22
