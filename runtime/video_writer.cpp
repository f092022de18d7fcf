#include "runtime/video_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <torch/script.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <system_error>
#include <vector>

#include "runtime/error.h"
#include "runtime/ffmpeg_util.h"

namespace wanrt {
namespace {

namespace fs = std::filesystem;
using ffmpeg::av_error_text;
using ffmpeg::check_alloc;
using ffmpeg::CodecContextPtr;
using ffmpeg::FramePtr;
using ffmpeg::PacketPtr;
using ffmpeg::SwsPtr;

const char* const kAcceptedForms =
    "use NAME.mp4 (H.264 video), NAME.pt (uint8 tensor for Python's torch.load), or DIR/ or a "
    "name without extension (a directory of PNG frames)";

// The destination split into its directory and its last component (trailing '/' removed).
struct Destination {
  std::string shown;  // the path as the caller gave it, for messages
  std::string path;
  std::string dir;
  std::string name;
};

Destination split_destination(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const fs::path p(trimmed);
  Destination d{path, trimmed, p.parent_path().string(), p.filename().string()};
  if (d.dir.empty()) d.dir = ".";
  if (d.name.empty() || d.name == "." || d.name == ".." || trimmed == "/") {
    throw Error(ErrorCategory::kUsage, fmt::format("output '{}': not a usable output name", path),
                kAcceptedForms);
  }
  return d;
}

bool is_resource_errno(int err) {
  return err == ENOSPC || err == EDQUOT || err == EIO || err == ENOMEM || err == EMFILE ||
         err == ENFILE || err == EFBIG;
}

[[noreturn]] void throw_io(int err, const std::string& what) {
  const bool resources = is_resource_errno(err);
  throw Error(resources ? ErrorCategory::kResources : ErrorCategory::kUsage,
              fmt::format("{}: {}", what, std::generic_category().message(err)),
              resources ? "free disk space (or memory) and retry"
                        : "check that the output directory exists and is writable");
}

// FFmpeg failures: write errors (io) are about the disk, anything else is unexpected.
void check_av(int rc, const std::string& what, bool io = false) {
  if (rc >= 0) return;
  if (rc < 0 && rc > -4096 && is_resource_errno(-rc)) throw_io(-rc, what);
  throw Error(io ? ErrorCategory::kResources : ErrorCategory::kInternal,
              fmt::format("{}: {}", what, av_error_text(rc)),
              io ? "check free disk space and that the output directory is writable"
                 : "this FFmpeg refused a standard operation; please report it with the "
                   "FFmpeg version (ffmpeg -version)");
}

void write_file(const std::string& path, const void* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw_io(errno, fmt::format("cannot create '{}'", path));
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, bytes, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw_io(err, fmt::format("cannot write '{}'", path));
    }
    bytes += n;
    size -= static_cast<std::size_t>(n);
  }
  // Data reaches the disk before the rename publishes it.
  if (::fsync(fd) != 0 && errno != EINVAL) {
    const int err = errno;
    ::close(fd);
    throw_io(err, fmt::format("cannot flush '{}'", path));
  }
  if (::close(fd) != 0) throw_io(errno, fmt::format("cannot close '{}'", path));
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) return;  // best effort: durability, not correctness
  ::fsync(fd);
  ::close(fd);
}

std::string random_suffix() {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick(0, static_cast<int>(sizeof(kChars)) - 2);
  std::string s(6, 'x');
  for (char& c : s) c = kChars[pick(rng)];
  return s;
}

// A temporary file or directory next to the destination; removed unless published.
class TempOutput {
 public:
  TempOutput(const Destination& dest, bool directory) : dest_(dest), directory_(directory) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      const std::string candidate = sibling_name("tmp");
      int rc = 0;
      if (directory) {
        rc = ::mkdir(candidate.c_str(), 0777);
      } else {
        // open() instead of mkstemp(): the final file gets the usual umask permissions.
        const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        rc = fd < 0 ? -1 : ::close(fd);
      }
      if (rc == 0) {
        path_ = candidate;
        return;
      }
      if (errno != EEXIST) {
        throw_io(errno, fmt::format("output '{}': cannot create a temporary {} in '{}'", dest.shown,
                                    directory ? "directory" : "file", dest.dir));
      }
    }
    throw Error(ErrorCategory::kInternal,
                fmt::format("output '{}': no free temporary name in '{}'", dest.shown, dest.dir));
  }
  TempOutput(const TempOutput&) = delete;
  TempOutput& operator=(const TempOutput&) = delete;
  ~TempOutput() {
    if (path_.empty()) return;
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }

  const std::string& path() const { return path_; }

  /// Renames the temporary over the destination; afterwards nothing is left to remove.
  void publish() {
    if (!directory_) {
      fsync_path(path_, false);
      if (::rename(path_.c_str(), dest_.path.c_str()) != 0) {
        throw_io(errno, fmt::format("cannot rename '{}' to '{}'", path_, dest_.shown));
      }
      path_.clear();
    } else {
      publish_directory();
    }
    fsync_path(dest_.dir, true);
  }

  std::string sibling_name(const char* kind) const {
    return fmt::format("{}/.{}.{}-{}", dest_.dir, dest_.name, kind, random_suffix());
  }

 private:
  void publish_directory() {
    fsync_path(path_, true);
    // rename() replaces a missing or empty directory atomically.
    if (::rename(path_.c_str(), dest_.path.c_str()) == 0) {
      path_.clear();
      return;
    }
    if (errno != ENOTEMPTY && errno != EEXIST) {
      throw_io(errno, fmt::format("cannot rename '{}' to '{}'", path_, dest_.shown));
    }
    // A non-empty earlier output (checked by the caller): swap atomically where the
    // filesystem can, then remove the old frames that now sit under the temporary name.
    if (::renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, dest_.path.c_str(), RENAME_EXCHANGE) == 0) {
      return;  // path_ now names the old directory; the destructor removes it
    }
    if (errno != EINVAL && errno != ENOSYS) {
      throw_io(errno, fmt::format("cannot replace '{}' with '{}'", dest_.shown, path_));
    }
    const std::string aside = sibling_name("old");
    if (::rename(dest_.path.c_str(), aside.c_str()) != 0) {
      throw_io(errno, fmt::format("cannot move '{}' aside", dest_.shown));
    }
    if (::rename(path_.c_str(), dest_.path.c_str()) != 0) {
      const int err = errno;
      ::rename(aside.c_str(), dest_.path.c_str());
      throw_io(err, fmt::format("cannot rename '{}' to '{}'", path_, dest_.shown));
    }
    path_ = aside;  // the destructor removes the old frames
  }

  Destination dest_;
  bool directory_;
  std::string path_;
};

bool is_frame_png_name(const std::string& name) {
  const std::string prefix = "frame_", suffix = ".png";
  if (name.size() <= prefix.size() + suffix.size()) return false;
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  return std::all_of(name.begin() + prefix.size(), name.end() - suffix.size(),
                     [](unsigned char c) { return std::isdigit(c) != 0; });
}

// Refuses destinations that would lose something that is not an earlier output of ours.
void check_destination(const Destination& dest, OutputFormat format) {
  std::error_code ec;
  if (!fs::is_directory(dest.dir, ec)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("output '{}': directory '{}' does not exist", dest.shown, dest.dir),
                "create the directory first or choose another output path");
  }
  const fs::file_status status = fs::symlink_status(dest.path, ec);
  if (!fs::exists(status)) return;
  const bool is_dir = fs::is_directory(status);
  if (format != OutputFormat::kPngDir) {
    if (is_dir) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("output '{}' is an existing directory", dest.shown),
                  "choose a file name (NAME.mp4, NAME.pt)");
    }
    return;
  }
  if (!is_dir) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("output '{}' exists and is not a directory", dest.shown),
                "remove it or choose another directory for the PNG frames");
  }
  for (const fs::directory_entry& entry : fs::directory_iterator(dest.path, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(ec) || !is_frame_png_name(name)) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("output '{}': refusing to replace a directory holding '{}', which "
                              "is not a frame_*.png of an earlier output",
                              dest.shown, name),
                  "choose a new or empty directory for the PNG frames");
    }
  }
  if (ec) throw_io(ec.value(), fmt::format("cannot list '{}'", dest.shown));
}

at::Tensor prepare_frames(const at::Tensor& frames, const std::string& shown) {
  const char* hint = "pass RGB frames as a uint8 tensor [frames, height, width, 3]";
  if (!frames.defined()) {
    throw Error(ErrorCategory::kUsage, fmt::format("output '{}': no frames given", shown), hint);
  }
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.size(0) < 1 || frames.size(1) < 1 ||
      frames.size(2) < 1 || frames.size(0) > INT32_MAX || frames.size(1) > 32768 ||
      frames.size(2) > 32768) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("output '{}': frames must have shape [F>=1, H, W, 3], got {}", shown,
                            c10::str(frames.sizes())),
                hint);
  }
  if (frames.scalar_type() != at::kByte) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("output '{}': frames must be uint8, got {}", shown,
                            c10::toString(frames.scalar_type())),
                "convert to 0..255 first, e.g. (x.clamp(0, 1) * 255).round().to(uint8)");
  }
  at::Tensor cpu = frames.to(at::kCPU).contiguous();
  // pickle_save stores the whole storage: drop whatever a view does not cover.
  if (cpu.storage_offset() != 0 ||
      cpu.storage().nbytes() != static_cast<std::size_t>(cpu.numel())) {
    cpu = cpu.clone();
  }
  return cpu;
}

void check_cancelled(const VideoWriteOptions& options, const std::string& shown, int frame,
                     int total) {
  if (options.cancelled && options.cancelled()) {
    throw Error(ErrorCategory::kCancelled,
                fmt::format("writing '{}' cancelled before frame {} of {}", shown, frame, total),
                "nothing was written; run again to produce the output");
  }
}

void report_progress(const VideoWriteOptions& options, int done, int total) {
  if (options.progress) options.progress(done, total);
}

// libx264 logs its banner and statistics at INFO level; keep a CLI's output clean unless the
// embedding program chose a log level itself (then the level differs from the default).
void quiet_ffmpeg_info_logs() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_WARNING);
  });
}

struct OutputContextFree {
  void operator()(AVFormatContext* f) const {
    if (f->pb) avio_closep(&f->pb);
    avformat_free_context(f);
  }
};
FramePtr alloc_frame(AVPixelFormat format, int width, int height) {
  FramePtr frame(check_alloc(av_frame_alloc(), "a video frame"));
  frame->format = format;
  frame->width = width;
  frame->height = height;
  check_av(av_frame_get_buffer(frame.get(), 0), "allocating a video frame");
  return frame;
}

void write_mp4(const std::string& file, const Destination& dest, const at::Tensor& frames,
               const VideoWriteOptions& options) {
  const int count = static_cast<int>(frames.size(0));
  const int height = static_cast<int>(frames.size(1));
  const int width = static_cast<int>(frames.size(2));
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
  if (!codec) {
    throw Error(
        ErrorCategory::kResources,
        fmt::format("output '{}': this FFmpeg (libavcodec {}.{}) has no H.264 encoder", dest.shown,
                    AV_VERSION_MAJOR(avcodec_version()), AV_VERSION_MINOR(avcodec_version())),
        "install Debian's libavcodec59 (built with libx264), or write PNG frames "
        "(DIR/) or a tensor (NAME.pt) instead");
  }
  quiet_ffmpeg_info_logs();

  AVFormatContext* raw_format = nullptr;
  check_av(avformat_alloc_output_context2(&raw_format, nullptr, "mp4", file.c_str()),
           "creating the MP4 muxer");
  std::unique_ptr<AVFormatContext, OutputContextFree> muxer(raw_format);
  AVStream* stream = check_alloc(avformat_new_stream(muxer.get(), nullptr), "an MP4 stream");

  CodecContextPtr encoder(check_alloc(avcodec_alloc_context3(codec), "an H.264 encoder"));
  encoder->width = width;
  encoder->height = height;
  encoder->pix_fmt = AV_PIX_FMT_YUV420P;
  encoder->time_base = AVRational{1, options.fps};
  encoder->framerate = AVRational{options.fps, 1};
  encoder->color_range = AVCOL_RANGE_MPEG;
  encoder->colorspace = AVCOL_SPC_BT709;
  encoder->color_primaries = AVCOL_PRI_BT709;
  encoder->color_trc = AVCOL_TRC_BT709;
  if (muxer->oformat->flags & AVFMT_GLOBALHEADER) encoder->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  // Encoders other than libx264 may lack "crf"; they keep their default quality then.
  if (encoder->priv_data) {
    av_opt_set(encoder->priv_data, "crf", std::to_string(options.crf).c_str(), 0);
  }
  check_av(avcodec_open2(encoder.get(), codec, nullptr),
           fmt::format("opening the H.264 encoder '{}'", codec->name));
  check_av(avcodec_parameters_from_context(stream->codecpar, encoder.get()),
           "setting the MP4 stream parameters");
  stream->time_base = encoder->time_base;
  stream->avg_frame_rate = encoder->framerate;

  check_av(avio_open(&muxer->pb, file.c_str(), AVIO_FLAG_WRITE),
           fmt::format("cannot open '{}'", file), true);
  AVDictionary* mux_options = nullptr;
  av_dict_set(&mux_options, "movflags", "+faststart", 0);
  const int header_rc = avformat_write_header(muxer.get(), &mux_options);
  av_dict_free(&mux_options);
  check_av(header_rc, fmt::format("writing the MP4 header of '{}'", file), true);

  SwsPtr converter(
      check_alloc(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                                 SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr),
                  "an RGB to YUV converter"));
  // RGB (full range) to BT.709 limited-range YUV, as tagged on the encoder above.
  const int* bt709 = sws_getCoefficients(SWS_CS_ITU709);
  if (sws_setColorspaceDetails(converter.get(), bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16) < 0) {
    throw Error(ErrorCategory::kInternal, "swscale refused the BT.709 colour conversion");
  }

  FramePtr frame = alloc_frame(AV_PIX_FMT_YUV420P, width, height);
  PacketPtr packet(check_alloc(av_packet_alloc(), "a packet"));
  auto drain = [&] {
    for (;;) {
      const int rc = avcodec_receive_packet(encoder.get(), packet.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check_av(rc, "encoding H.264");
      if (packet->duration == 0) packet->duration = 1;  // one frame; the last one needs it
      av_packet_rescale_ts(packet.get(), encoder->time_base, stream->time_base);
      packet->stream_index = stream->index;
      check_av(av_interleaved_write_frame(muxer.get(), packet.get()),
               fmt::format("writing '{}'", file), true);
    }
  };
  const std::uint8_t* pixels = frames.data_ptr<std::uint8_t>();
  const std::int64_t frame_bytes = static_cast<std::int64_t>(height) * width * 3;
  for (int i = 0; i < count; ++i) {
    check_cancelled(options, dest.shown, i, count);
    check_av(av_frame_make_writable(frame.get()), "preparing a video frame");
    const std::uint8_t* source[1] = {pixels + i * frame_bytes};
    const int source_stride[1] = {width * 3};
    if (sws_scale(converter.get(), source, source_stride, 0, height, frame->data,
                  frame->linesize) <= 0) {
      throw Error(ErrorCategory::kInternal, "swscale failed to convert a frame to YUV");
    }
    frame->pts = i;
    check_av(avcodec_send_frame(encoder.get(), frame.get()), "encoding H.264");
    drain();
    report_progress(options, i + 1, count);
  }
  check_av(avcodec_send_frame(encoder.get(), nullptr), "flushing the H.264 encoder");
  drain();
  check_av(av_write_trailer(muxer.get()), fmt::format("finishing '{}'", file), true);
  check_av(avio_closep(&muxer->pb), fmt::format("closing '{}'", file), true);
}

void write_png_dir(const std::string& dir, const Destination& dest, const at::Tensor& frames,
                   const VideoWriteOptions& options) {
  const int count = static_cast<int>(frames.size(0));
  const int height = static_cast<int>(frames.size(1));
  const int width = static_cast<int>(frames.size(2));
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
  if (!codec) {
    throw Error(ErrorCategory::kResources,
                fmt::format("output '{}': this FFmpeg has no PNG encoder", dest.shown),
                "install Debian's libavcodec59, or write a tensor (NAME.pt) instead");
  }
  CodecContextPtr encoder(check_alloc(avcodec_alloc_context3(codec), "a PNG encoder"));
  encoder->width = width;
  encoder->height = height;
  encoder->pix_fmt = AV_PIX_FMT_RGB24;
  encoder->time_base = AVRational{1, std::max(options.fps, 1)};
  check_av(avcodec_open2(encoder.get(), codec, nullptr), "opening the PNG encoder");

  FramePtr frame = alloc_frame(AV_PIX_FMT_RGB24, width, height);
  PacketPtr packet(check_alloc(av_packet_alloc(), "a packet"));
  int written = 0;
  auto drain = [&] {
    for (;;) {
      const int rc = avcodec_receive_packet(encoder.get(), packet.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check_av(rc, "encoding PNG");
      write_file(fmt::format("{}/frame_{:05d}.png", dir, written), packet->data,
                 static_cast<std::size_t>(packet->size));
      av_packet_unref(packet.get());
      ++written;
    }
  };
  const std::uint8_t* pixels = frames.data_ptr<std::uint8_t>();
  const std::size_t row_bytes = static_cast<std::size_t>(width) * 3;
  for (int i = 0; i < count; ++i) {
    check_cancelled(options, dest.shown, i, count);
    check_av(av_frame_make_writable(frame.get()), "preparing a video frame");
    const std::uint8_t* source = pixels + static_cast<std::int64_t>(i) * height * row_bytes;
    for (int y = 0; y < height; ++y) {
      std::memcpy(frame->data[0] + static_cast<std::ptrdiff_t>(y) * frame->linesize[0],
                  source + y * row_bytes, row_bytes);
    }
    frame->pts = i;
    check_av(avcodec_send_frame(encoder.get(), frame.get()), "encoding PNG");
    drain();
    report_progress(options, i + 1, count);
  }
  check_av(avcodec_send_frame(encoder.get(), nullptr), "flushing the PNG encoder");
  drain();
  if (written != count) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("the PNG encoder produced {} images for {} frames", written, count));
  }
}

void write_tensor(const std::string& file, const Destination& dest, const at::Tensor& frames,
                  const VideoWriteOptions& options) {
  const int count = static_cast<int>(frames.size(0));
  check_cancelled(options, dest.shown, 0, count);
  const std::vector<char> bytes = torch::jit::pickle_save(frames);
  write_file(file, bytes.data(), bytes.size());
  report_progress(options, count, count);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

OutputFormat output_format_for(const std::string& path) {
  if (path.empty()) {
    throw Error(ErrorCategory::kUsage, "empty output path", kAcceptedForms);
  }
  if (path.back() == '/') return OutputFormat::kPngDir;
  const std::string extension = lower(fs::path(path).extension().string());
  if (extension.empty()) return OutputFormat::kPngDir;
  if (extension == ".mp4") return OutputFormat::kMp4;
  if (extension == ".pt") return OutputFormat::kTensor;
  throw Error(ErrorCategory::kUsage,
              fmt::format("output '{}': unsupported extension '{}'", path, extension),
              kAcceptedForms);
}

void check_output_path(const std::string& path) {
  const OutputFormat format = output_format_for(path);
  check_destination(split_destination(path), format);
}

void write_video(const std::string& path, const at::Tensor& frames,
                 const VideoWriteOptions& options) {
  const OutputFormat format = output_format_for(path);
  const Destination dest = split_destination(path);
  const at::Tensor cpu = prepare_frames(frames, path);
  if (format == OutputFormat::kMp4) {
    if (options.fps < 1 || options.fps > 1000) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("output '{}': fps must be 1..1000, got {}", path, options.fps));
    }
    if (options.crf < 0 || options.crf > 51) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("output '{}': crf must be 0..51, got {}", path, options.crf),
                  "18 is visually lossless; lower is better quality and larger files");
    }
    const std::int64_t height = cpu.size(1), width = cpu.size(2);
    if (height % 2 != 0 || width % 2 != 0) {
      const auto up = [](std::int64_t v) { return v + v % 2; };
      const auto down = [](std::int64_t v) { return v - v % 2; };
      const std::string crop = height > 1 && width > 1
                                   ? fmt::format("crop to {}x{} or ", down(width), down(height))
                                   : std::string();
      throw Error(ErrorCategory::kUsage,
                  fmt::format("output '{}': H.264 (yuv420p) needs an even width and height, got "
                              "{}x{} (width x height)",
                              path, width, height),
                  fmt::format("{}pad to {}x{}, or write PNG frames (DIR/) or a tensor (NAME.pt), "
                              "which take any size",
                              crop, up(width), up(height)));
    }
  }
  check_destination(dest, format);

  TempOutput temp(dest, format == OutputFormat::kPngDir);
  switch (format) {
    case OutputFormat::kMp4:
      write_mp4(temp.path(), dest, cpu, options);
      break;
    case OutputFormat::kPngDir:
      write_png_dir(temp.path(), dest, cpu, options);
      check_destination(dest, format);  // still only our frames right before replacing it
      break;
    case OutputFormat::kTensor:
      write_tensor(temp.path(), dest, cpu, options);
      break;
  }
  temp.publish();
}

}  // namespace wanrt
