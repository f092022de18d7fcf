// Wan 2.2's rules for video shapes: 4n+1 frames, sizes divisible by VAE stride x patch.
#pragma once

namespace wanrt::wan22 {

/// True when `frames` is 4n+1 with n >= 0 (the VAE's temporal stride is 4).
bool valid_frame_count(int frames) noexcept;

/// The 4n+1 frame count nearest to `frames` (ties go up); at least 1.
int nearest_frame_count(int frames) noexcept;

/// Throws Error(kUsage) naming the nearest valid counts when `frames` is not 4n+1.
void check_frame_count(int frames);

/// Throws Error(kUsage) when width or height is not a positive multiple of `multiple`
/// (VAE spatial stride x DiT patch size: 16 for the A14B models, 32 for TI2V-5B); the message
/// names the nearest valid size.
void check_frame_size(int width, int height, int multiple);

/// Number of latent frames for `frames` video frames: (frames - 1) / 4 + 1.
int latent_frame_count(int frames) noexcept;

}  // namespace wanrt::wan22
