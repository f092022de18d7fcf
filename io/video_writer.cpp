// Paths, destinations, temporaries and the format-independent part of VideoWriter; the
// encoders live in video_writer_mp4.cpp and video_writer_png.cpp.
#include "io/video_writer.h"
#include "io/temp_registry.h"

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
#include <random>
#include <system_error>
#include <vector>

#include "runtime/error.h"
#include "io/ffmpeg_util.h"
#include "io/stale_temporaries.h"
#include "io/video_writer_internal.h"

namespace wanrt {
namespace video_detail {
namespace {

bool is_resource_errno(int err) {
  return err == ENOSPC || err == EDQUOT || err == EIO || err == ENOMEM || err == EMFILE ||
         err == ENFILE || err == EFBIG;
}

}  // namespace

[[noreturn]] void throw_io(int err, const std::string& what) {
  const bool resources = is_resource_errno(err);
  throw Error(resources ? ErrorCategory::kResources : ErrorCategory::kUsage,
              fmt::format("{}: {}", what, std::generic_category().message(err)),
              resources ? "free disk space (or memory) and retry"
                        : "check that the output directory exists and is writable");
}

// FFmpeg failures: write errors (io) are about the disk, anything else is unexpected.
void check_av(int rc, const std::string& what, bool io) {
  if (rc >= 0) return;
  if (rc < 0 && rc > -4096 && is_resource_errno(-rc)) throw_io(-rc, what);
  throw Error(io ? ErrorCategory::kResources : ErrorCategory::kInternal,
              fmt::format("{}: {}", what, ffmpeg::av_error_text(rc)),
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

}  // namespace video_detail

namespace {

namespace fs = std::filesystem;
using video_detail::Destination;
using video_detail::throw_io;

const char* const kAcceptedForms =
    "use NAME.mp4 (H.264 video), NAME.pt (uint8 tensor for Python's torch.load), or DIR/ or a "
    "name without extension (a directory of PNG frames)";

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
    remove_stale_temporaries(dest.dir, dest.name);  // left by a writer killed with SIGKILL
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
        slot_ = register_temporary(path_.c_str(), directory);
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
    unregister_temporary(slot_);
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
      unregister_temporary(slot_);
      slot_ = -1;
      path_.clear();
    } else {
      publish_directory();
    }
    fsync_path(dest_.dir, true);
  }

  // .NAME.KIND.HOST.PID.RANDOM: who made it, for remove_stale_temporaries.
  std::string sibling_name(const char* kind) const {
    return fmt::format("{}/.{}.{}.{}.{}", dest_.dir, dest_.name, kind, temporary_owner_tag(),
                       random_suffix());
  }

 private:
  void publish_directory() {
    fsync_path(path_, true);
    // rename() replaces a missing or empty directory atomically.
    unregister_temporary(slot_);  // from here on the directory may be the published one
    slot_ = -1;
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
  int slot_ = -1;  // in the temporaries registry (io/temp_registry.h)
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

// Checks a frames tensor and returns it as contiguous CPU memory.
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
  return frames.to(at::kCPU).contiguous();
}

void check_options(const std::string& path, OutputFormat format, int width, int height,
                   const VideoWriteOptions& options) {
  if (width < 1 || height < 1 || width > 32768 || height > 32768) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("output '{}': frame size {}x{} (width x height) is out of range "
                            "1..32768",
                            path, width, height));
  }
  if (format != OutputFormat::kMp4) return;
  if (options.fps < 1 || options.fps > 1000) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("output '{}': fps must be 1..1000, got {}", path, options.fps));
  }
  if (options.crf < 0 || options.crf > 51) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("output '{}': crf must be 0..51, got {}", path, options.crf),
                "18 is visually lossless; lower is better quality and larger files");
  }
  if (height % 2 != 0 || width % 2 != 0) {
    const auto up = [](int v) { return v + v % 2; };
    const auto down = [](int v) { return v - v % 2; };
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

struct VideoWriter::Impl {
  Impl(const std::string& path, int width_, int height_, const VideoWriteOptions& options_)
      : format(output_format_for(path)),
        dest(split_destination(path)),
        width(width_),
        height(height_),
        options(options_) {
    check_options(path, format, width, height, options);
    check_destination(dest, format);
    temp = std::make_unique<TempOutput>(dest, format == OutputFormat::kPngDir);
    if (format == OutputFormat::kMp4) {
      encoder = video_detail::make_mp4_encoder(temp->path(), dest, width, height, options);
    } else if (format == OutputFormat::kPngDir) {
      encoder = video_detail::make_png_encoder(temp->path(), dest, width, height, options);
    }
  }

  void check_usable(const char* what) const {
    if (finished || aborted) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("output '{}': {} after the writer was {}", dest.shown, what,
                              finished ? "finished" : "aborted"),
                  "create a new VideoWriter for another output");
    }
  }

  void check_cancelled() const {
    if (options.cancelled && options.cancelled()) {
      throw Error(ErrorCategory::kCancelled,
                  fmt::format("writing '{}' cancelled before frame {}", dest.shown, written),
                  "nothing was written; run again to produce the output");
    }
  }

  void report(int done) const {
    if (options.progress) options.progress(done, appended);
  }

  void append(const at::Tensor& frames) {
    const at::Tensor cpu = prepare_frames(frames, dest.shown);
    if (cpu.size(1) != height || cpu.size(2) != width) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("output '{}': frames of {}x{} (width x height) given to a writer "
                              "of {}x{}",
                              dest.shown, cpu.size(2), cpu.size(1), width, height),
                  "every appended frame must have the size the writer was created with");
    }
    if (static_cast<std::int64_t>(appended) + cpu.size(0) > INT32_MAX) {
      throw Error(ErrorCategory::kUsage, fmt::format("output '{}': too many frames", dest.shown));
    }
    appended += static_cast<int>(cpu.size(0));
    if (!encoder) {  // the tensor format: written whole in finish()
      pieces.push_back(cpu);
      return;
    }
    const std::uint8_t* pixels = cpu.data_ptr<std::uint8_t>();
    const std::int64_t frame_bytes = static_cast<std::int64_t>(height) * width * 3;
    for (std::int64_t i = 0; i < cpu.size(0); ++i) {
      check_cancelled();
      encoder->write_frame(pixels + i * frame_bytes);
      ++written;
      report(written);
    }
  }

  void finish() {
    if (appended == 0) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("output '{}': no frames were appended", dest.shown),
                  "append at least one frame before finish()");
    }
    if (encoder) {
      encoder->finish();
      encoder.reset();
    } else {
      check_cancelled();
      at::Tensor all = pieces.size() == 1 ? pieces[0] : at::cat(pieces, 0);
      pieces.clear();
      // pickle_save stores the whole storage: drop whatever a view does not cover.
      if (all.storage_offset() != 0 ||
          all.storage().nbytes() != static_cast<std::size_t>(all.numel())) {
        all = all.clone();
      }
      const std::vector<char> bytes = torch::jit::pickle_save(all);
      video_detail::write_file(temp->path(), bytes.data(), bytes.size());
      written = appended;
      report(written);
    }
    // A PNG directory: still only our frames right before replacing it.
    if (format == OutputFormat::kPngDir) check_destination(dest, format);
    temp->publish();
    temp.reset();
  }

  void abort() noexcept {
    aborted = true;
    pieces.clear();
    encoder.reset();  // closes the encoder's files before the temporary is removed
    temp.reset();
  }

  OutputFormat format;
  Destination dest;
  int width, height;
  VideoWriteOptions options;
  std::unique_ptr<TempOutput> temp;
  std::unique_ptr<video_detail::FrameEncoder> encoder;  // null for the tensor format
  std::vector<at::Tensor> pieces;                       // the tensor format's frames
  int appended = 0, written = 0;
  bool finished = false, aborted = false;
};

VideoWriter::VideoWriter(const std::string& path, int width, int height,
                         const VideoWriteOptions& options)
    : impl_(std::make_unique<Impl>(path, width, height, options)) {}

VideoWriter::~VideoWriter() {
  if (impl_) impl_->abort();
}

VideoWriter::VideoWriter(VideoWriter&&) noexcept = default;

VideoWriter& VideoWriter::operator=(VideoWriter&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->abort();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

void VideoWriter::append(const at::Tensor& frames_u8) {
  if (!impl_) throw Error(ErrorCategory::kUsage, "append on a moved-from VideoWriter");
  impl_->check_usable("append");
  try {
    impl_->append(frames_u8);
  } catch (...) {
    impl_->abort();
    throw;
  }
}

void VideoWriter::finish() {
  if (!impl_) throw Error(ErrorCategory::kUsage, "finish on a moved-from VideoWriter");
  impl_->check_usable("finish");
  try {
    impl_->finish();
    impl_->finished = true;
  } catch (...) {
    impl_->abort();
    throw;
  }
}

void VideoWriter::abort() noexcept {
  if (impl_ && !impl_->finished) impl_->abort();
}

int VideoWriter::frames() const { return impl_ ? impl_->appended : 0; }

OutputFormat VideoWriter::format() const {
  if (!impl_) throw Error(ErrorCategory::kUsage, "format of a moved-from VideoWriter");
  return impl_->format;
}

void write_video(const std::string& path, const at::Tensor& frames,
                 const VideoWriteOptions& options) {
  output_format_for(path);
  split_destination(path);
  const at::Tensor cpu = prepare_frames(frames, path);
  VideoWriter writer(path, static_cast<int>(cpu.size(2)), static_cast<int>(cpu.size(1)), options);
  writer.append(cpu);
  writer.finish();
}

}  // namespace wanrt

namespace wanrt {

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const Destination dest = split_destination(path);
  std::error_code ec;
  if (fs::is_directory(dest.path, ec)) {
    throw Error(ErrorCategory::kUsage, fmt::format("'{}' is a directory", path),
                "name a file to write");
  }
  TempOutput temp(dest, /*directory=*/false);
  video_detail::write_file(temp.path(), bytes.data(), bytes.size());
  temp.publish();
}

}  // namespace wanrt
