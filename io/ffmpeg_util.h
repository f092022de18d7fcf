// Internal to the runtime library (video_writer.cpp, image_reader.cpp): owners for FFmpeg
// objects and small error helpers. Not part of the public API; needs the FFmpeg headers, which
// only the runtime library sees.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <fmt/format.h>

#include <memory>
#include <string>

#include "runtime/error.h"

namespace wanrt::ffmpeg {

struct CodecContextFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFree {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
/// An opened demuxer (avformat_open_input); a caller-supplied pb is not closed by it.
struct InputContextClose {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct IoContextClose {
  void operator()(AVIOContext* io) const { avio_closep(&io); }
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFree>;
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFree>;
using InputContextPtr = std::unique_ptr<AVFormatContext, InputContextClose>;
using IoContextPtr = std::unique_ptr<AVIOContext, IoContextClose>;

/// FFmpeg's text for an AVERROR code (av_strerror).
inline std::string av_error_text(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof(text));
  return text;
}

/// Returns p; a null p (a failed FFmpeg allocation) throws Error(kOutOfMemory).
template <typename T>
T* check_alloc(T* p, const char* what) {
  if (!p) throw Error(ErrorCategory::kOutOfMemory, fmt::format("cannot allocate {}", what));
  return p;
}

}  // namespace wanrt::ffmpeg
