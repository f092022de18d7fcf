// libFuzzer target: the image reader (io/image_reader.h) on arbitrary bytes, through FFmpeg's
// demuxers and decoders. A decoded image must be a contiguous uint8 [H, W, 3] tensor of at most
// 8192 x 8192 pixels; anything else must be rejected with wanrt::Error. FFmpeg is not
// instrumented, so coverage and ASan checks are our code's only, but a crash inside FFmpeg
// still shows.
#include <sys/mman.h>
#include <unistd.h>

extern "C" {
#include <libavutil/log.h>
}

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "io/image_reader.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One in-memory file for the whole run, rewritten per input; read through its /proc path.
  static const int fd = [] {
    av_log_set_level(AV_LOG_QUIET);
    return memfd_create("fuzz-image", MFD_CLOEXEC);
  }();
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ftruncate(fd, 0) != 0) __builtin_trap();
  if (size > 0 && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) __builtin_trap();
  try {
    const at::Tensor image = wanrt::read_image(path);
    if (image.scalar_type() != at::kByte || image.dim() != 3 || image.size(2) != 3 ||
        !image.is_contiguous() || image.size(0) < 1 || image.size(1) < 1 ||
        image.size(0) * image.size(1) > std::int64_t{8192} * 8192) {
      __builtin_trap();
    }
  } catch (const wanrt::Error&) {
  }
  return 0;
}
