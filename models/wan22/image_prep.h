// Tensor conventions shared with the Python reference pipeline (models/export/wanrt_export/
// pipeline.py, module docstring): noise draw, image preparation, masks, uint8 frames.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace wanrt::wan22 {

/// float32 CPU noise: a CPU generator seeded with `seed`, one randn draw of `shape`
/// (equal to torch.randn(shape, generator=torch.Generator().manual_seed(seed))).
at::Tensor initial_noise(std::int64_t seed, const std::vector<std::int64_t>& shape);

/// uint8 [H0, W0, 3] -> float32 [3, H, W] in [-1, 1]: centre crop to the W:H aspect (floor
/// arithmetic), then bicubic resize (align_corners = false) when the crop differs from (H, W).
at::Tensor prepare_image(const at::Tensor& image, int width, int height);

/// The 4-channel I2V mask [stride_t, lat_f, lat_h, lat_w]: 1 on latent frame 0, else 0.
at::Tensor i2v_mask(int frames, std::int64_t lat_h, std::int64_t lat_w, int stride_t);

/// Video [3, F, H, W] in [-1, 1] -> uint8 [F, H, W, 3] as the official save_video maps it
/// (clamp, (x + 1) / 2 * 255, truncation).
at::Tensor frames_to_uint8(const at::Tensor& video);

}  // namespace wanrt::wan22
