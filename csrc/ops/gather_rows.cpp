// gather_rows: checks (named errors, nothing written on error), allocation, then one fused
// kernel over all tensors.
#include "gather_rows.h"

#include <c10/util/accumulate.h>

#include "checks.h"

namespace memory_ext {

std::vector<at::Tensor> gather_rows_impl(const GatherRowsBackend& be, at::TensorList tensors,
                                         const at::Tensor& index, int64_t out_rows) {
  TORCH_CHECK(!tensors.empty(), "tensors must hold at least one tensor");
  TORCH_CHECK(tensors.size() <= static_cast<size_t>(kMaxGatherTensors), "tensors: at most ",
              kMaxGatherTensors, " tensors per call, got ", tensors.size());
  check_shape(index, "index", {{"n", kAny}}, at::kLong);
  const int64_t R = tensors[0].dim() > 0 ? tensors[0].size(0) : -1;
  for (size_t t = 0; t < tensors.size(); ++t) {
    TORCH_CHECK(tensors[t].dim() >= 1 && tensors[t].size(0) == R, "tensors[", t,
                "] must have the same number of rows as tensors[0] (", R, "), got shape ",
                tensors[t].sizes());
    check_device_like(tensors[t], Name("tensors", static_cast<int64_t>(t)), index, "index");
  }
  const int64_t n = index.size(0);
  TORCH_CHECK(out_rows >= n, "out_rows must be >= len(index) = ", n, ", got ", out_rows);
  if (n > 0) {  // one host sync (compaction is rare; a bad index would corrupt memory)
    const auto mm = at::aminmax(index);
    const int64_t lo = std::get<0>(mm).item<int64_t>(), hi = std::get<1>(mm).item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < R, "index values must be in [0, ", R, "), got [", lo, ", ", hi, "]");
  }
  const at::Tensor idx = index.contiguous();
  std::vector<at::Tensor> src, out;
  GatherRowsParams p;
  p.n_tensors = static_cast<int>(tensors.size());
  p.n_index = n;
  p.out_rows = out_rows;
  p.index = idx.data_ptr<int64_t>();
  for (size_t t = 0; t < tensors.size(); ++t) {
    src.push_back(tensors[t].contiguous());
    std::vector<int64_t> shape = src.back().sizes().vec();
    shape[0] = out_rows;
    out.push_back(at::empty(shape, src.back().options()));
    p.src[t] = static_cast<const unsigned char*>(src.back().data_ptr());
    p.dst[t] = static_cast<unsigned char*>(out.back().data_ptr());
    // from the row's shape, not numel / R: with R = 0 rows the padding rows still have a width
    p.row_bytes[t] = c10::multiply_integers(src.back().sizes().slice(1)) *
                     static_cast<int64_t>(src.back().element_size());
  }
  bool any_bytes = false;  // rows of zero bytes: nothing to copy, however many
  for (int t = 0; t < p.n_tensors; ++t) any_bytes = any_bytes || p.row_bytes[t] > 0;
  if (out_rows > 0 && any_bytes) be.gather(p, be.current_stream());
  return out;
}

}  // namespace memory_ext
