// Minimal application: load a bundle, generate a few frames, write them as an MP4.
//   generate_video BUNDLE_DIR OUT.mp4 "prompt"
#include <cstdio>
#include <exception>

#include "models/wan22/pipeline.h"
#include "runtime/error.h"
#include "io/video_writer.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s BUNDLE_DIR OUT.mp4 PROMPT\n", argv[0]);
    return 2;
  }
  try {
    auto pipeline = wanrt::wan22::Pipeline::load(argv[1]);

    wanrt::wan22::GenerateRequest request;
    request.prompt = argv[3];
    request.seed = 42;

    wanrt::wan22::Callbacks callbacks;
    callbacks.progress = [](const wanrt::wan22::ProgressEvent& e) {
      std::fprintf(stderr, "%s %d/%d\n", e.stage.c_str(), e.step, e.total);
    };
    const auto result = pipeline->generate(request, callbacks);  // frames: uint8 [F, H, W, 3]

    wanrt::VideoWriteOptions options;
    options.fps = result.fps;
    wanrt::write_video(argv[2], result.frames, options);
    std::printf("%lld frames %lldx%lld\n", static_cast<long long>(result.frames.size(0)),
                static_cast<long long>(result.frames.size(2)),
                static_cast<long long>(result.frames.size(1)));
    return 0;
  } catch (const wanrt::Error& e) {
    std::fprintf(stderr, "%s\n", wanrt::format_error(e).c_str());
    return wanrt::exit_code(e.category());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 70;
  }
}
