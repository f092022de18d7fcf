// A directory of lossless RGB PNG frames (frame_00000.png, ...), one frame at a time.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
}

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "runtime/error.h"
#include "io/ffmpeg_util.h"
#include "io/video_writer_internal.h"

namespace wanrt::video_detail {
namespace {

using ffmpeg::check_alloc;
using ffmpeg::CodecContextPtr;
using ffmpeg::FramePtr;
using ffmpeg::PacketPtr;

class PngEncoder : public FrameEncoder {
 public:
  PngEncoder(const std::string& dir, const Destination& dest, int width, int height,
             const VideoWriteOptions& options)
      : dir_(dir), width_(width), height_(height) {
    const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (!codec) {
      throw Error(ErrorCategory::kResources,
                  fmt::format("output '{}': this FFmpeg has no PNG encoder", dest.shown),
                  "install Debian's libavcodec59, or write a tensor (NAME.pt) instead");
    }
    encoder_.reset(check_alloc(avcodec_alloc_context3(codec), "a PNG encoder"));
    encoder_->width = width;
    encoder_->height = height;
    encoder_->pix_fmt = AV_PIX_FMT_RGB24;
    encoder_->time_base = AVRational{1, std::max(options.fps, 1)};
    check_av(avcodec_open2(encoder_.get(), codec, nullptr), "opening the PNG encoder");

    frame_.reset(check_alloc(av_frame_alloc(), "a video frame"));
    frame_->format = AV_PIX_FMT_RGB24;
    frame_->width = width;
    frame_->height = height;
    check_av(av_frame_get_buffer(frame_.get(), 0), "allocating a video frame");
    packet_.reset(check_alloc(av_packet_alloc(), "a packet"));
  }

  void write_frame(const std::uint8_t* rgb) override {
    check_av(av_frame_make_writable(frame_.get()), "preparing a video frame");
    const std::size_t row_bytes = static_cast<std::size_t>(width_) * 3;
    for (int y = 0; y < height_; ++y) {
      std::memcpy(frame_->data[0] + static_cast<std::ptrdiff_t>(y) * frame_->linesize[0],
                  rgb + y * row_bytes, row_bytes);
    }
    frame_->pts = sent_++;
    check_av(avcodec_send_frame(encoder_.get(), frame_.get()), "encoding PNG");
    drain();
  }

  void finish() override {
    check_av(avcodec_send_frame(encoder_.get(), nullptr), "flushing the PNG encoder");
    drain();
    if (written_ != sent_) {
      throw Error(ErrorCategory::kInternal,
                  fmt::format("the PNG encoder produced {} images for {} frames", written_, sent_));
    }
  }

 private:
  void drain() {
    for (;;) {
      const int rc = avcodec_receive_packet(encoder_.get(), packet_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check_av(rc, "encoding PNG");
      write_file(fmt::format("{}/frame_{:05d}.png", dir_, written_), packet_->data,
                 static_cast<std::size_t>(packet_->size));
      av_packet_unref(packet_.get());
      ++written_;
    }
  }

  std::string dir_;
  int width_, height_;
  std::int64_t sent_ = 0, written_ = 0;
  CodecContextPtr encoder_;
  FramePtr frame_;
  PacketPtr packet_;
};

}  // namespace

std::unique_ptr<FrameEncoder> make_png_encoder(const std::string& dir, const Destination& dest,
                                               int width, int height,
                                               const VideoWriteOptions& options) {
  return std::make_unique<PngEncoder>(dir, dest, width, height, options);
}

}  // namespace wanrt::video_detail
