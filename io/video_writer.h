// Writing generated frames to disk: H.264 MP4, a directory of PNG frames, or a tensor file.
// Every output is written under a temporary name next to the destination and renamed into
// place only when complete, so a failed or cancelled write leaves the destination untouched.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

namespace wanrt {

/// The kinds of output write_video can produce.
enum class OutputFormat {
  kMp4,     ///< H.264 (yuv420p) in an MP4 container
  kPngDir,  ///< a directory of frame_00000.png, frame_00001.png, ...
  kTensor,  ///< the uint8 tensor, torch.save-compatible (Python: torch.load(path))
};

/// Format from the path: ".mp4" -> kMp4; ".pt" -> kTensor; a path ending in '/' or whose last
/// component has no extension -> kPngDir (extensions compare case-insensitively). Anything else
/// throws Error(kUsage) listing the accepted forms.
OutputFormat output_format_for(const std::string& path);

/// Checks what write_video can check before any frame exists (format, existing output
/// directory, destination not a directory write_video would refuse to replace) and throws the
/// same Error(kUsage) write_video would; lets a caller fail before hours of generation.
void check_output_path(const std::string& path);

/// Writes `bytes` to the file `path` with write_video's atomicity: a uniquely named temporary
/// in the same directory, written and fsynced, then renamed over the destination (and the
/// directory fsynced); on any failure the temporary is removed and the destination is left as
/// it was. Error(kUsage) for an unusable path or a directory at `path`, Error(kResources) when
/// the disk is full. For reports and sidecar files.
void write_file_atomic(const std::string& path, const std::string& bytes);

/// Options of write_video.
struct VideoWriteOptions {
  int fps = 16;  ///< frames per second of the MP4 (1..1000); ignored by the other formats
  int crf = 18;  ///< H.264 constant rate factor (0 = lossless .. 51 = worst)
  /// Called after each frame is written with (frames done, total); the tensor format, written
  /// in one piece, reports once at the end.
  std::function<void(int frame, int total)> progress;
  /// Polled before each frame (the tensor format: once, before writing); returning true stops
  /// the write with Error(kCancelled).
  std::function<bool()> cancelled;
};

/// Writes `frames` (uint8 [F, H, W, 3], RGB, any device and layout; copied to contiguous CPU
/// memory) to `path` in the format output_format_for(path) selects.
///
/// Atomic: the output is written as ".<name>.tmp-XXXXXX" in the destination's directory and
/// renamed over the destination only when complete; on any error or cancellation the temporary
/// file or directory is removed and the destination is left as it was.
/// - An existing file at the destination is replaced (MP4, tensor).
/// - A PNG directory replaces an existing directory only when it is empty or holds nothing but
///   frame_*.png files (an earlier output); any other directory is refused with Error(kUsage).
/// - MP4 needs an even width and height (yuv420p); odd sizes throw Error(kUsage). Colours are
///   converted with BT.709 coefficients to limited range and tagged as such.
/// Errors: kUsage (bad frames, options, path or destination), kCancelled, kResources (no H.264
/// encoder in this FFmpeg, disk full or other write failures), kInternal (FFmpeg API failures).
void write_video(const std::string& path, const at::Tensor& frames,
                 const VideoWriteOptions& options = {});

/// Writes a video whose frames arrive in pieces (e.g. from a streaming VAE decoder), with
/// write_video's formats, checks and atomicity: the constructor checks the options, the size
/// and the destination and creates the temporary; append() encodes frames as they come (MP4,
/// PNG: nothing is kept in memory); finish() completes the output and renames it into place.
/// Destroying an unfinished writer, abort(), or any error in append()/finish() removes the
/// temporary and leaves the destination as it was. write_video is this class with one append.
/// - cancelled() is polled before each frame (the tensor format: once, in finish());
///   progress(written, appended) is called after each frame (the tensor format: once, at the
///   end), where `appended` counts the frames given so far.
/// - The tensor format (NAME.pt) holds every appended frame in memory until finish() (a
///   torch.save file needs the whole tensor); it keeps a reference to an appended contiguous
///   CPU tensor rather than a copy, so do not modify such a tensor before finish().
class VideoWriter {
 public:
  /// Errors as write_video's for the path, the options and a frame size (width x height, each
  /// 1..32768; even for MP4).
  VideoWriter(const std::string& path, int width, int height,
              const VideoWriteOptions& options = {});
  /// Aborts (removes the temporary) unless finish() succeeded.
  ~VideoWriter();
  VideoWriter(VideoWriter&&) noexcept;
  VideoWriter& operator=(VideoWriter&&) noexcept;
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  /// Appends uint8 [n >= 1, height, width, 3] RGB frames (any device and layout). Error(kUsage)
  /// on a bad tensor or after the writer was finished or aborted; any error aborts the writer.
  void append(const at::Tensor& frames_u8);
  /// Completes the output and publishes it. Error(kUsage) when no frame was appended.
  void finish();
  /// Removes the temporary; later append()/finish() calls throw Error(kUsage). No-op once
  /// finished.
  void abort() noexcept;

  /// Frames appended so far.
  int frames() const;
  /// The format chosen from the path.
  OutputFormat format() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wanrt
