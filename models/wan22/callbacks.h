// How a generation reports to its caller: progress, cancellation, streamed frames.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>

namespace wanrt::wan22 {

/// One progress report: a stage ("text_encoder", "denoise", "vae_decode", ...) and how far.
struct ProgressEvent {
  std::string stage;
  int step = 0;   ///< completed units in this stage
  int total = 0;  ///< units in this stage
};

/// Callbacks of a generation; all optional. They are called on the thread that runs
/// generate(). `cancelled` is polled between steps and blocks: returning true stops the run
/// with Error(kCancelled); it may read a flag another thread sets.
struct Callbacks {
  std::function<void(const ProgressEvent&)> progress;
  std::function<bool()> cancelled;
  /// Streaming output: when set, generate() hands the decoded frames to it as soon as the VAE
  /// has produced them (uint8 [n, H, W, 3] RGB, in order, n = 1 for the first latent frame and
  /// the temporal stride after that; all calls together give the whole video) and does not
  /// keep the video: GenerateResult::frames and ::video stay undefined, and peak memory no
  /// longer grows with the frame count during decoding. An exception it throws stops the run
  /// and propagates. Time spent in it counts in the "vae_decode" stage.
  std::function<void(const at::Tensor& frames_u8)> on_frames;
};

}  // namespace wanrt::wan22
