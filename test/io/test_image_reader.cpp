// The image reader, checked against decoders it does not share code with: PNG frames written by
// write_video (lossless, so exact), and images written by the ffmpeg program and decoded by
// Python's matplotlib (Pillow, libpng, libjpeg).
#include <fmt/format.h>
#include <torch/script.h>
#include <unistd.h>

#include <array>
#include "support/catch.h"
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.h"
#include "runtime/error.h"
#include "io/image_reader.h"
#include "io/video_writer.h"
#include "support/tiny_bundles.h"

namespace fs = std::filesystem;
using wanrt_test::run_command;
using wanrt::ErrorCategory;
using wanrt::read_image;

namespace {

const char* const kPython = "/usr/bin/python3";

bool succeeds(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Why the external tools cannot run here, or "" when they can.
std::string missing_tools() {
  if (!succeeds("command -v ffmpeg")) return "the ffmpeg program (Debian package ffmpeg)";
  if (::access(kPython, X_OK) != 0 || !succeeds(std::string(kPython) + " -c 'import matplotlib'"))
    return "python3 with matplotlib (Debian package python3-matplotlib)";
  return "";
}

#define REQUIRE_TOOLS()                          \
  do {                                           \
    const std::string missing = missing_tools(); \
    if (!missing.empty()) {                      \
      WARN("WANRT_SKIP: needs " << missing);     \
      return;                                    \
    }                                            \
  } while (0)

// One image written by the ffmpeg program with extra output options; the input defaults to
// ffmpeg's test pattern (colour bars, gradients, text), 64x48.
std::string ffmpeg_image(const fs::path& dir, const std::string& name, const std::string& options,
                         const std::string& input = "-f lavfi -i testsrc=size=64x48") {
  const std::string path = (dir / name).string();
  run_command(fmt::format("ffmpeg -hide_banner -loglevel error -y {} -frames:v 1 {} {} 2>&1", input,
                          options, quoted(path)));
  return path;
}

// matplotlib.image.imread of each file as uint8 RGB [H, W, 3]: PNG comes as floats in 0..1
// (16-bit ones too), rounded to 8 bits here; gray is replicated, alpha dropped. Also returns
// the alpha channel's min and max (-1 when there is none) to show the alpha really varied.
struct Reference {
  at::Tensor rgb;
  int alpha_min = -1, alpha_max = -1;
};

std::vector<Reference> python_decode(const std::vector<std::string>& files, const fs::path& dir) {
  const std::string script = R"(
import sys
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.image as mpimg
out_dir = sys.argv[1]
for i, name in enumerate(sys.argv[2:]):
    a = mpimg.imread(name)
    if a.dtype != np.uint8:
        a = np.rint(a.astype(np.float64) * 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    alpha = (-1, -1)
    if a.shape[2] in (2, 4):
        alpha = (int(a[:, :, -1].min()), int(a[:, :, -1].max()))
        a = a[:, :, :-1]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    np.ascontiguousarray(a).tofile(f"{out_dir}/ref{i}.raw")
    print(a.shape[0], a.shape[1], alpha[0], alpha[1])
)";
  const fs::path script_path = dir / "decode.py";
  std::ofstream(script_path) << script;
  std::string command =
      fmt::format("{} {} {}", kPython, quoted(script_path.string()), quoted(dir.string()));
  for (const std::string& f : files) command += " " + quoted(f);
  std::istringstream lines(run_command(command + " 2>&1"));
  std::vector<Reference> refs;
  for (std::size_t i = 0; i < files.size(); ++i) {
    Reference ref;
    std::int64_t height = 0, width = 0;
    REQUIRE(lines >> height >> width >> ref.alpha_min >> ref.alpha_max);
    ref.rgb = at::empty({height, width, 3}, at::kByte);
    std::ifstream raw(dir / fmt::format("ref{}.raw", i), std::ios::binary);
    raw.read(reinterpret_cast<char*>(ref.rgb.data_ptr<std::uint8_t>()), ref.rgb.numel());
    REQUIRE(raw.gcount() == ref.rgb.numel());
    refs.push_back(ref);
  }
  return refs;
}

void require_rgb_image(const at::Tensor& image, std::int64_t height, std::int64_t width) {
  REQUIRE(image.defined());
  REQUIRE(image.scalar_type() == at::kByte);
  REQUIRE(image.device().is_cpu());
  REQUIRE(image.is_contiguous());
  REQUIRE(image.sizes() == at::IntArrayRef({height, width, 3}));
}

// Largest absolute difference between two uint8 images of the same shape.
int max_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kInt) - b.to(at::kInt)).abs().max().item<int>();
}

double mean_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().mean().item<double>();
}

struct Failure {
  ErrorCategory category;
  std::string message;
};

Failure failure_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const wanrt::Error& e) {
    return {e.category(), e.what()};
  }
  FAIL("no wanrt::Error thrown");
  return {};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

TEST_CASE("read_image returns write_video's PNG frames exactly", "[io]") {
  wanrt_test::TempDir tmp;
  // Random pixels of an odd size: every value and no smoothness for a decoder to lean on.
  at::Tensor frames = at::randint(0, 256, {2, 37, 53, 3}, at::TensorOptions().dtype(at::kByte));
  const std::string dir = (tmp.path() / "frames").string() + "/";
  wanrt::write_video(dir, frames);
  for (int i = 0; i < 2; ++i) {
    const at::Tensor image = read_image(dir + fmt::format("frame_{:05d}.png", i));
    require_rgb_image(image, 37, 53);
    REQUIRE(at::equal(image, frames[i]));
  }
}

TEST_CASE("read_image decodes PNG, BMP and WebP like matplotlib", "[io]") {
  REQUIRE_TOOLS();
  wanrt_test::TempDir tmp;
  const fs::path dir = tmp.path();
  struct Case {
    std::string name, options;
    int tolerance;       // 16-bit samples: matplotlib rounds, swscale may truncate
    bool varying_alpha;  // the alpha channel must not leak into the colours
  };
  std::vector<Case> cases = {
      {"rgb.png", "-pix_fmt rgb24", 0, false},
      {"rgba.png", "-vf \"format=rgba,geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='4*X'\"", 0, true},
      {"gray.png", "-pix_fmt gray", 0, false},
      {"gray_alpha.png", "-vf \"format=ya8,geq=lum='lum(X,Y)':a='255-5*Y'\"", 0, true},
      {"palette.png", "-pix_fmt pal8", 0, false},
      {"rgb16.png", "-vf \"format=rgb48be,geq=r='X*1000+Y':g='65535-X*997':b='Y*1300+7'\"", 1,
       false},
      {"gray16.png", "-vf \"format=gray16be,geq=lum='X*1000+Y*7'\"", 1, false},
      {"image.bmp", "-pix_fmt bgr24", 0, false},
  };
  if (succeeds("ffmpeg -hide_banner -encoders | grep -q libwebp")) {
    cases.push_back({"lossless.webp", "-c:v libwebp -lossless 1", 0, false});
  } else {
    WARN("ffmpeg has no libwebp encoder: WebP not checked");
  }
  std::vector<std::string> files;
  for (const Case& c : cases) files.push_back(ffmpeg_image(dir, c.name, c.options));
  const std::vector<Reference> refs = python_decode(files, dir);

  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].name);
    const at::Tensor image = read_image(files[i]);
    require_rgb_image(image, 48, 64);
    REQUIRE(refs[i].rgb.sizes() == image.sizes());
    CHECK(max_difference(image, refs[i].rgb) <= cases[i].tolerance);
    // The pattern must be a real picture, not a flat colour both decoders could agree on.
    CHECK(refs[i].rgb.to(at::kDouble).std().item<double>() > 20.0);
    if (cases[i].varying_alpha) {
      CHECK(refs[i].alpha_max - refs[i].alpha_min > 200);
    }
  }
}

TEST_CASE("read_image decodes full-range JPEG to the colours of the lossless source", "[io]") {
  REQUIRE_TOOLS();
  wanrt_test::TempDir tmp;
  const fs::path dir = tmp.path();
  // A smooth, colourful source (JPEG's errors concentrate at edges), saved losslessly and
  // encoded from that file.
  const std::string png =
      ffmpeg_image(dir, "source.png", "",
                   "-f lavfi -i \"nullsrc=size=64x48,format=rgb24,geq=r='128+100*sin(X/9)':"
                   "g='128+100*cos(Y/7)':b='3*X+Y'\"");
  const at::Tensor lossless = read_image(png);
  const std::string source = "-i " + quoted(png);
  const std::vector<std::string> jpegs = {
      ffmpeg_image(dir, "420.jpg", "-q:v 2 -pix_fmt yuvj420p", source),
      ffmpeg_image(dir, "444.jpg", "-q:v 2 -pix_fmt yuvj444p", source),
  };
  const std::vector<Reference> refs = python_decode(jpegs, dir);
  for (std::size_t i = 0; i < jpegs.size(); ++i) {
    INFO(jpegs[i]);
    const at::Tensor image = read_image(jpegs[i]);
    require_rgb_image(image, 48, 64);
    // Decoding the full-range YUV as limited range stretches the contrast by 255/219: 8.8
    // levels off on average here (measured). Correct decoding stays within JPEG's loss
    // (measured: 1.06 for 4:2:0, 0.95 for 4:4:4).
    CHECK(mean_difference(image, lossless) < 2.0);
    // libjpeg (through Pillow) rounds and upsamples chroma differently, but not by much
    // (measured: mean 0.54 and 0.04, max 3 and 2).
    CHECK(mean_difference(image, refs[i].rgb) < 1.0);
    CHECK(max_difference(image, refs[i].rgb) <= 6);
  }
}

TEST_CASE("read_image recognises the format by content, not by name", "[io]") {
  REQUIRE_TOOLS();
  wanrt_test::TempDir tmp;
  const fs::path dir = tmp.path();
  const std::string png = ffmpeg_image(dir, "source.png", "-pix_fmt rgb24");
  const std::string jpeg = ffmpeg_image(dir, "source.jpg", "-q:v 2");
  const at::Tensor expected_png = read_image(png);
  const at::Tensor expected_jpeg = read_image(jpeg);

  // A JPEG named .png, and names FFmpeg's image2 demuxer would take for a numbered sequence,
  // a glob or a protocol.
  fs::copy_file(jpeg, dir / "photo.png");
  CHECK(at::equal(read_image((dir / "photo.png").string()), expected_jpeg));
  for (const std::string name : {"frame_%03d.png", "a*b?.png", "http:x.png", "no_extension"}) {
    INFO(name);
    fs::copy_file(png, dir / name);
    CHECK(at::equal(read_image((dir / name).string()), expected_png));
  }
}

TEST_CASE("read_image rejects what is not an image with a usage error naming the file",
          "[io]") {
  wanrt_test::TempDir tmp;
  const fs::path dir = tmp.path();

  SECTION("missing file") {
    const std::string path = (dir / "missing.png").string();
    const Failure f = failure_of([&] { read_image(path); });
    CHECK(f.category == ErrorCategory::kUsage);
    CHECK(f.message == path + ": no such file");
  }
  SECTION("a directory") {
    const Failure f = failure_of([&] { read_image(dir.string()); });
    CHECK(f.category == ErrorCategory::kUsage);
    CHECK_THAT(f.message, Catch::Contains(dir.string()) && Catch::Contains("directory"));
  }
  SECTION("an empty file") {
    const std::string path = (dir / "empty.png").string();
    write_bytes(path, "");
    const Failure f = failure_of([&] { read_image(path); });
    CHECK(f.category == ErrorCategory::kUsage);
    CHECK_THAT(f.message, Catch::Contains(path) && Catch::Contains("empty"));
  }
  SECTION("a text file named .png") {
    const std::string path = (dir / "notes.png").string();
    write_bytes(path, "These are not pixels.\nJust a few lines of text.\n");
    const Failure f = failure_of([&] { read_image(path); });
    CHECK(f.category == ErrorCategory::kUsage);
    CHECK_THAT(f.message, Catch::StartsWith(path + ": "));
    // FFmpeg's own error text (av_strerror of AVERROR_INVALIDDATA).
    CHECK_THAT(f.message, Catch::Contains("Invalid data found"));
  }
  SECTION("a truncated PNG") {
    at::Tensor frames = at::randint(0, 256, {1, 40, 40, 3}, at::TensorOptions().dtype(at::kByte));
    wanrt::write_video((dir / "frames").string() + "/", frames);
    const std::string png = read_bytes(dir / "frames" / "frame_00000.png");
    REQUIRE(png.size() > 200);
    const std::string path = (dir / "cut.png").string();
    write_bytes(path, png.substr(0, png.size() / 2));
    const Failure f = failure_of([&] { read_image(path); });
    CHECK(f.category == ErrorCategory::kUsage);
    CHECK_THAT(f.message, Catch::StartsWith(path + ": "));
  }
}

namespace {

// A PNG chunk: length, type, data, CRC-32 (computed here bit by bit, as the PNG standard
// defines it).
std::string png_chunk(const std::string& type, const std::string& data) {
  auto be32 = [](std::uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  std::uint32_t crc = 0xffffffffu;
  for (unsigned char c : type + data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return be32(static_cast<std::uint32_t>(data.size())) + type + data + be32(crc ^ 0xffffffffu);
}

}  // namespace

TEST_CASE("an image larger than 8192x8192 pixels is refused before it is decoded", "[io]") {
  wanrt_test::TempDir tmp;
  // A header declaring 9000 x 9000 RGB pixels (81 megapixels) over a few bytes of data: what a
  // crafted or corrupt file can claim. The reader must refuse it without allocating the frame.
  auto be32 = [](std::uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  const std::string ihdr = be32(9000) + be32(9000) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) +
                          png_chunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) +
                          png_chunk("IEND", "");
  const std::string path = (tmp.path() / "huge.png").string();
  write_bytes(path, png);
  // PNG's decoder refuses the frame (max_pixels) before it records its size, so the reader
  // can only say what is likely; without the limit it would allocate 243 MB and then fail on
  // the missing pixel data with another error.
  wanrt::Error error(ErrorCategory::kInternal, "none");
  try {
    read_image(path);
  } catch (const wanrt::Error& e) {
    error = e;
  }
  CHECK(error.category() == ErrorCategory::kUsage);
  CHECK_THAT(error.what(), Catch::Contains(path));
  CHECK_THAT(error.hint(), Catch::Contains("larger than wanrt reads (8192x8192 pixels)"));
}
