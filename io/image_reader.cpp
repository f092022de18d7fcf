#include "io/image_reader.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <fmt/format.h>
#include <sys/stat.h>
#include <torch/script.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>

#include "runtime/error.h"
#include "io/ffmpeg_util.h"

namespace wanrt {
namespace {

using ffmpeg::av_error_text;
using ffmpeg::check_alloc;
using ffmpeg::CodecContextPtr;
using ffmpeg::FramePtr;
using ffmpeg::InputContextPtr;
using ffmpeg::IoContextPtr;
using ffmpeg::PacketPtr;
using ffmpeg::SwsPtr;

const char* const kImageHint = "give a PNG, JPEG, BMP or WebP image file";

// The most pixels an input image may have (8192 x 8192; the models use at most 1280 x 720).
// Decoders refuse larger frames before allocating them, so a crafted header cannot make the
// reader allocate gigabytes.
constexpr std::int64_t kMaxImagePixels = std::int64_t{8192} * 8192;

[[noreturn]] void throw_too_large(const std::string& path, std::int64_t width,
                                  std::int64_t height) {
  throw Error(ErrorCategory::kUsage,
              fmt::format("{}: the image is {}x{} pixels, more than wanrt reads ({} megapixels)",
                          path, width, height, kMaxImagePixels / 1000000),
              "scale it down first; the models generate at most 1280x720");
}

[[noreturn]] void throw_unreadable(const std::string& path, const std::string& what, int rc) {
  throw Error(ErrorCategory::kUsage, fmt::format("{}: {}: {}", path, what, av_error_text(rc)),
              kImageHint);
}

// What FFmpeg would only say vaguely ("No such file or directory" from deep inside a demuxer).
void check_file(const std::string& path) {
  if (path.empty()) {
    throw Error(ErrorCategory::kUsage, "empty image path", kImageHint);
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      throw Error(ErrorCategory::kUsage, fmt::format("{}: no such file", path),
                  "check the image path (a relative path starts at the working directory)");
    }
    throw Error(ErrorCategory::kUsage,
                fmt::format("{}: cannot access: {}", path, std::generic_category().message(err)),
                kImageHint);
  }
  if (S_ISDIR(st.st_mode)) {
    throw Error(ErrorCategory::kUsage, fmt::format("{}: is a directory, not an image", path),
                kImageHint);
  }
  if (S_ISREG(st.st_mode) && st.st_size == 0) {
    throw Error(ErrorCategory::kUsage, fmt::format("{}: not an image: the file is empty", path),
                kImageHint);
  }
}

// Opens the file through the "file:" protocol and picks the demuxer from the content alone:
// given the name, FFmpeg's image2 demuxer would read "img%03d.png" as a numbered sequence and a
// "name:..." path as a protocol URL.
struct Input {
  IoContextPtr io;            // owned here: a caller-supplied pb outlives the demuxer
  InputContextPtr container;  // declared after io, so closed before it
};

Input open_input(const std::string& path) {
  Input input;
  AVIOContext* raw_io = nullptr;
  const std::string url = "file:" + path;
  const int open_rc = avio_open(&raw_io, url.c_str(), AVIO_FLAG_READ);
  if (open_rc < 0) throw_unreadable(path, "cannot open", open_rc);
  input.io.reset(raw_io);

  const AVInputFormat* format = nullptr;
  const int probe_rc = av_probe_input_buffer2(input.io.get(), &format, "", nullptr, 0, 0);
  if (probe_rc < 0) throw_unreadable(path, "not a recognised image", probe_rc);
  if (format == nullptr || (format->flags & AVFMT_NOFILE) != 0) {
    throw_unreadable(path, "not a recognised image", AVERROR_INVALIDDATA);
  }

  AVFormatContext* raw_container =
      check_alloc(avformat_alloc_context(), "a demuxer for an image file");
  raw_container->pb = input.io.get();
  // On failure avformat_open_input frees the context (not our pb).
  const int demux_rc = avformat_open_input(&raw_container, path.c_str(), format, nullptr);
  if (demux_rc < 0) {
    throw_unreadable(path, fmt::format("cannot read it as {}", format->name), demux_rc);
  }
  input.container.reset(raw_container);
  return input;
}

// The first frame of the best video stream.
FramePtr decode_first_frame(const std::string& path, AVFormatContext* container) {
  const AVCodec* codec = nullptr;
  const int stream_index = av_find_best_stream(container, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (stream_index == AVERROR_DECODER_NOT_FOUND) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{}: this FFmpeg (libavcodec {}.{}) has no decoder for its {} data",
                            path, AV_VERSION_MAJOR(avcodec_version()),
                            AV_VERSION_MINOR(avcodec_version()), container->iformat->name),
                "convert the image to PNG or JPEG");
  }
  if (stream_index < 0) throw_unreadable(path, "no image in the file", stream_index);
  const AVStream* stream = container->streams[stream_index];

  const AVCodecParameters* par = stream->codecpar;
  if (std::int64_t{par->width} * par->height > kMaxImagePixels) {
    throw_too_large(path, par->width, par->height);
  }
  CodecContextPtr decoder(check_alloc(avcodec_alloc_context3(codec), "an image decoder"));
  const int params_rc = avcodec_parameters_to_context(decoder.get(), par);
  if (params_rc < 0) throw_unreadable(path, "unusable stream parameters", params_rc);
  decoder->max_pixels = kMaxImagePixels;
  const int open_rc = avcodec_open2(decoder.get(), codec, nullptr);
  if (open_rc < 0) {
    throw_unreadable(path, fmt::format("cannot open the {} decoder", codec->name), open_rc);
  }

  FramePtr frame(check_alloc(av_frame_alloc(), "a decoded image"));
  PacketPtr packet(check_alloc(av_packet_alloc(), "a packet"));
  const std::string decoding = fmt::format("cannot decode it as {}", codec->name);
  // A decoding error. The decoders refuse a frame over max_pixels with EINVAL before they set
  // its size, so that case can only be named as a possibility.
  auto fail = [&](int rc) {
    if (std::int64_t{decoder->width} * decoder->height > kMaxImagePixels) {
      throw_too_large(path, decoder->width, decoder->height);
    }
    if (rc == AVERROR(EINVAL)) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("{}: {}: {}", path, decoding, av_error_text(rc)),
                  "the image may be larger than wanrt reads (8192x8192 pixels); scale it down, "
                  "or convert it to PNG or JPEG");
    }
    throw_unreadable(path, decoding, rc);
  };
  // Returns true once a frame is out; EAGAIN means the decoder wants more input.
  auto receive = [&]() {
    const int rc = avcodec_receive_frame(decoder.get(), frame.get());
    if (rc >= 0) return true;
    if (rc == AVERROR(EAGAIN)) return false;
    if (rc == AVERROR_EOF) throw_unreadable(path, "no image data", AVERROR_EOF);
    fail(rc);
    return false;
  };
  for (;;) {
    const int read_rc = av_read_frame(container, packet.get());
    if (read_rc == AVERROR_EOF) break;
    if (read_rc < 0) throw_unreadable(path, "cannot read", read_rc);
    if (packet->stream_index != stream_index) {
      av_packet_unref(packet.get());
      continue;
    }
    const int send_rc = avcodec_send_packet(decoder.get(), packet.get());
    av_packet_unref(packet.get());
    if (send_rc < 0 && send_rc != AVERROR(EAGAIN)) fail(send_rc);
    if (receive()) return frame;
  }
  const int flush_rc = avcodec_send_packet(decoder.get(), nullptr);
  if (flush_rc < 0 && flush_rc != AVERROR_EOF) fail(flush_rc);
  if (receive()) return frame;
  throw_unreadable(path, "no image data", AVERROR_EOF);
}

// The deprecated full-range "J" formats, as the plain format swscale wants plus full range
// (swscale would otherwise warn about them on every call).
AVPixelFormat without_jpeg_alias(AVPixelFormat format, bool* full_range) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P:
      *full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      *full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      *full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      *full_range = true;
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      *full_range = true;
      return AV_PIX_FMT_YUV411P;
    default:
      return format;
  }
}

at::Tensor to_rgb(const std::string& path, const AVFrame& frame) {
  const int width = frame.width, height = frame.height;
  const auto decoded = static_cast<AVPixelFormat>(frame.format);
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(decoded);
  if (width < 1 || height < 1 || desc == nullptr || !sws_isSupportedInput(decoded)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{}: unsupported image ({}x{}, pixel format {})", path, width, height,
                            desc ? desc->name : "none"),
                "convert the image to an 8-bit RGB PNG");
  }
  bool full_range = frame.color_range == AVCOL_RANGE_JPEG;
  const AVPixelFormat source = without_jpeg_alias(decoded, &full_range);
  // RGB and palette sources go straight to RGB; YUV and gray ones need a range (and matrix).
  const bool rgb = (desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) != 0;
  const bool gray = !rgb && desc->nb_components <= 2;
  // Gray images (PNG, BMP, gray JPEG) are full range unless the file says otherwise.
  if (gray && frame.color_range != AVCOL_RANGE_MPEG) full_range = true;

  // Same size: the filter only matters for chroma upsampling, done at full resolution.
  SwsPtr converter(
      check_alloc(sws_getContext(width, height, source, width, height, AV_PIX_FMT_RGB24,
                                 SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                                 nullptr, nullptr),
                  "an image converter"));
  if (!rgb) {
    // AVColorSpace values are the SWS_CS_* indices; unknown ones give BT.601, JPEG's matrix.
    const int* matrix = sws_getCoefficients(frame.colorspace);
    if (sws_setColorspaceDetails(converter.get(), matrix, full_range ? 1 : 0,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16) < 0) {
      throw Error(
          ErrorCategory::kInternal,
          fmt::format("{}: swscale refused the colour conversion from {}", path, desc->name));
    }
  }

  // Converted into an FFmpeg frame (aligned and padded rows, as swscale's SIMD code likes)
  // and copied row by row into the tensor.
  FramePtr rgb_frame(check_alloc(av_frame_alloc(), "an RGB image"));
  rgb_frame->format = AV_PIX_FMT_RGB24;
  rgb_frame->width = width;
  rgb_frame->height = height;
  if (av_frame_get_buffer(rgb_frame.get(), 0) < 0) {
    throw Error(ErrorCategory::kOutOfMemory,
                fmt::format("{}: cannot allocate a {}x{} RGB image", path, width, height));
  }
  if (sws_scale(converter.get(), frame.data, frame.linesize, 0, height, rgb_frame->data,
                rgb_frame->linesize) != height) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("{}: swscale failed to convert {} to RGB", path, desc->name));
  }
  at::Tensor image = at::empty({height, width, 3}, at::kByte);
  std::uint8_t* out = image.data_ptr<std::uint8_t>();
  const std::size_t row_bytes = static_cast<std::size_t>(width) * 3;
  for (int y = 0; y < height; ++y) {
    std::memcpy(out + static_cast<std::size_t>(y) * row_bytes,
                rgb_frame->data[0] + static_cast<std::ptrdiff_t>(y) * rgb_frame->linesize[0],
                row_bytes);
  }
  return image;
}

}  // namespace

at::Tensor read_image(const std::string& path) {
  check_file(path);
  Input input = open_input(path);
  const FramePtr frame = decode_first_frame(path, input.container.get());
  return to_rgb(path, *frame);
}

}  // namespace wanrt
