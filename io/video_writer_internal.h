// Internal to the runtime library (video_writer*.cpp): what the per-format encoders share.
// Not part of the public API.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "io/video_writer.h"

namespace wanrt::video_detail {

/// The destination split into its directory and its last component (trailing '/' removed).
struct Destination {
  std::string shown;  ///< the path as the caller gave it, for messages
  std::string path;
  std::string dir;
  std::string name;
};

/// Throws Error(kResources) for disk-full-like errno values, else Error(kUsage).
[[noreturn]] void throw_io(int err, const std::string& what);

/// FFmpeg return codes: write failures (io) are about the disk, anything else is unexpected.
void check_av(int rc, const std::string& what, bool io = false);

/// Writes a whole file and fsyncs it.
void write_file(const std::string& path, const void* data, std::size_t size);

/// Encodes RGB frames of a fixed size into a temporary file or directory, one at a time.
class FrameEncoder {
 public:
  virtual ~FrameEncoder() = default;
  /// One frame: height * width * 3 bytes, rows packed.
  virtual void write_frame(const std::uint8_t* rgb) = 0;
  /// Flushes what the encoder holds back and closes the output (the temp is then complete).
  virtual void finish() = 0;
};

/// H.264 in MP4, written to `file` (width and height even, fps and crf checked by the caller).
std::unique_ptr<FrameEncoder> make_mp4_encoder(const std::string& file, const Destination& dest,
                                               int width, int height,
                                               const VideoWriteOptions& options);

/// frame_%05d.png files in `dir`.
std::unique_ptr<FrameEncoder> make_png_encoder(const std::string& dir, const Destination& dest,
                                               int width, int height,
                                               const VideoWriteOptions& options);

}  // namespace wanrt::video_detail
