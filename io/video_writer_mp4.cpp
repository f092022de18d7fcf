// H.264 (yuv420p, BT.709 limited range) in an MP4 container, one frame at a time.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <mutex>
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
using ffmpeg::SwsPtr;

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

class Mp4Encoder : public FrameEncoder {
 public:
  Mp4Encoder(const std::string& file, const Destination& dest, int width, int height,
             const VideoWriteOptions& options)
      : file_(file), width_(width), height_(height) {
    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!codec) {
      throw Error(ErrorCategory::kResources,
                  fmt::format("output '{}': this FFmpeg (libavcodec {}.{}) has no H.264 encoder",
                              dest.shown, AV_VERSION_MAJOR(avcodec_version()),
                              AV_VERSION_MINOR(avcodec_version())),
                  "install Debian's libavcodec59 (built with libx264), or write PNG frames "
                  "(DIR/) or a tensor (NAME.pt) instead");
    }
    quiet_ffmpeg_info_logs();

    AVFormatContext* raw_format = nullptr;
    check_av(avformat_alloc_output_context2(&raw_format, nullptr, "mp4", file.c_str()),
             "creating the MP4 muxer");
    muxer_.reset(raw_format);
    stream_ = check_alloc(avformat_new_stream(muxer_.get(), nullptr), "an MP4 stream");

    encoder_.reset(check_alloc(avcodec_alloc_context3(codec), "an H.264 encoder"));
    encoder_->width = width;
    encoder_->height = height;
    encoder_->pix_fmt = AV_PIX_FMT_YUV420P;
    encoder_->time_base = AVRational{1, options.fps};
    encoder_->framerate = AVRational{options.fps, 1};
    encoder_->color_range = AVCOL_RANGE_MPEG;
    encoder_->colorspace = AVCOL_SPC_BT709;
    encoder_->color_primaries = AVCOL_PRI_BT709;
    encoder_->color_trc = AVCOL_TRC_BT709;
    if (muxer_->oformat->flags & AVFMT_GLOBALHEADER) {
      encoder_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    }
    // Encoders other than libx264 may lack "crf"; they keep their default quality then.
    if (encoder_->priv_data) {
      av_opt_set(encoder_->priv_data, "crf", std::to_string(options.crf).c_str(), 0);
    }
    check_av(avcodec_open2(encoder_.get(), codec, nullptr),
             fmt::format("opening the H.264 encoder '{}'", codec->name));
    check_av(avcodec_parameters_from_context(stream_->codecpar, encoder_.get()),
             "setting the MP4 stream parameters");
    stream_->time_base = encoder_->time_base;
    stream_->avg_frame_rate = encoder_->framerate;

    check_av(avio_open(&muxer_->pb, file.c_str(), AVIO_FLAG_WRITE),
             fmt::format("cannot open '{}'", file), true);
    AVDictionary* mux_options = nullptr;
    av_dict_set(&mux_options, "movflags", "+faststart", 0);
    const int header_rc = avformat_write_header(muxer_.get(), &mux_options);
    av_dict_free(&mux_options);
    check_av(header_rc, fmt::format("writing the MP4 header of '{}'", file), true);

    converter_.reset(check_alloc(
        sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                       SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr),
        "an RGB to YUV converter"));
    // RGB (full range) to BT.709 limited-range YUV, as tagged on the encoder above.
    const int* bt709 = sws_getCoefficients(SWS_CS_ITU709);
    if (sws_setColorspaceDetails(converter_.get(), bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16) < 0) {
      throw Error(ErrorCategory::kInternal, "swscale refused the BT.709 colour conversion");
    }
    frame_ = alloc_frame();
    packet_.reset(check_alloc(av_packet_alloc(), "a packet"));
  }

  void write_frame(const std::uint8_t* rgb) override {
    check_av(av_frame_make_writable(frame_.get()), "preparing a video frame");
    const std::uint8_t* source[1] = {rgb};
    const int source_stride[1] = {width_ * 3};
    if (sws_scale(converter_.get(), source, source_stride, 0, height_, frame_->data,
                  frame_->linesize) <= 0) {
      throw Error(ErrorCategory::kInternal, "swscale failed to convert a frame to YUV");
    }
    frame_->pts = next_pts_++;
    check_av(avcodec_send_frame(encoder_.get(), frame_.get()), "encoding H.264");
    drain();
  }

  void finish() override {
    check_av(avcodec_send_frame(encoder_.get(), nullptr), "flushing the H.264 encoder");
    drain();
    check_av(av_write_trailer(muxer_.get()), fmt::format("finishing '{}'", file_), true);
    check_av(avio_closep(&muxer_->pb), fmt::format("closing '{}'", file_), true);
  }

 private:
  FramePtr alloc_frame() const {
    FramePtr frame(check_alloc(av_frame_alloc(), "a video frame"));
    frame->format = AV_PIX_FMT_YUV420P;
    frame->width = width_;
    frame->height = height_;
    check_av(av_frame_get_buffer(frame.get(), 0), "allocating a video frame");
    return frame;
  }

  void drain() {
    for (;;) {
      const int rc = avcodec_receive_packet(encoder_.get(), packet_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check_av(rc, "encoding H.264");
      if (packet_->duration == 0) packet_->duration = 1;  // one frame; the last one needs it
      av_packet_rescale_ts(packet_.get(), encoder_->time_base, stream_->time_base);
      packet_->stream_index = stream_->index;
      check_av(av_interleaved_write_frame(muxer_.get(), packet_.get()),
               fmt::format("writing '{}'", file_), true);
    }
  }

  std::string file_;
  int width_, height_;
  std::int64_t next_pts_ = 0;
  std::unique_ptr<AVFormatContext, OutputContextFree> muxer_;
  AVStream* stream_ = nullptr;  // owned by muxer_
  CodecContextPtr encoder_;
  SwsPtr converter_;
  FramePtr frame_;
  PacketPtr packet_;
};

}  // namespace

std::unique_ptr<FrameEncoder> make_mp4_encoder(const std::string& file, const Destination& dest,
                                               int width, int height,
                                               const VideoWriteOptions& options) {
  return std::make_unique<Mp4Encoder>(file, dest, width, height, options);
}

}  // namespace wanrt::video_detail
