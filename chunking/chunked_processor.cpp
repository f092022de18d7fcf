#include "chunking/chunked_processor.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <new>
#include <utility>

#include "chunking/overlap_blender.h"
#include "runtime/error.h"

namespace wanrt {

ChunkedProcessor::ChunkedProcessor(std::int64_t chunk_size, std::int64_t overlap_frames,
                                   bool memory_cleanup)
    : chunk_size_(chunk_size), overlap_(overlap_frames), memory_cleanup_(memory_cleanup) {
  // Validated now rather than at the first run.
  if (chunk_size_ < 1) {
    throw Error(ErrorCategory::kUsage, fmt::format("chunk size must be >= 1, got {}", chunk_size_),
                "use a chunk size of at least 1");
  }
  if (overlap_ < 0 || overlap_ >= chunk_size_) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("overlap {} must be between 0 and the chunk size {} minus 1", overlap_,
                            chunk_size_),
                fmt::format("use an overlap between 0 and {}, or a chunk size of at least {}",
                            chunk_size_ - 1, overlap_ + 1));
  }
}

ChunkPlan ChunkedProcessor::plan(std::int64_t total) const {
  return plan_chunks(total, chunk_size_, overlap_);
}

at::Tensor ChunkedProcessor::process_chunked_generation(
    at::Tensor output, std::int64_t dim, const std::function<at::Tensor(const Chunk&)>& compute,
    const ChunkedRunOptions& options) const {
  if (!output.defined() || dim < -output.dim() || dim >= output.dim()) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{}: cannot process dimension {} of {}", options.label, dim,
                            output.defined() ? fmt::format("a {}-D output", output.dim())
                                             : std::string("an undefined output")),
                "preallocate the output and pass one of its dimensions");
  }
  const std::int64_t axis = dim < 0 ? dim + output.dim() : dim;
  const std::int64_t total = output.size(axis);
  OverlapBlender blender(std::move(output), axis, plan(total), options.blend);
  const std::vector<Chunk>& chunks = blender.plan().chunks;
  const std::size_t n = chunks.size();
  for (std::size_t i = 0; i < n; ++i) {
    const Chunk& chunk = chunks[i];
    const std::string where =
        fmt::format("{} {}/{} (range {}-{})", options.label, i + 1, n, chunk.start, chunk.end);
    if (options.cancelled && options.cancelled()) {
      throw Error(ErrorCategory::kCancelled, fmt::format("cancelled before {}", where),
                  fmt::format("{} of {} chunks were done", i, n));
    }
    // Errors keep their category and hint; the message gains the chunk it happened in.
    try {
      at::Tensor result = compute(chunk);
      blender.add(i, result);
      // `result` ends here: the chunk's memory is gone before release_memory or the next one.
    } catch (const Error& e) {
      throw Error(e.category(), fmt::format("{}: {}", where, e.what()), e.hint());
    } catch (const std::exception& e) {
      const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
      const std::string message =
          first_line(c10_error ? c10_error->what_without_backtrace() : e.what());
      if (is_out_of_memory(e)) {
        throw Error(ErrorCategory::kOutOfMemory, fmt::format("{}: {}", where, message),
                    "use smaller chunks or enable offloading");
      }
      throw Error(ErrorCategory::kInternal, fmt::format("{}: {}", where, message));
    }
    if (options.progress) options.progress(i + 1, n);
    if (memory_cleanup_ && options.release_memory && i + 1 < n) options.release_memory();
  }
  return blender.output();
}

}  // namespace wanrt
