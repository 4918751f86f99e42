// The end of one beam-search step, for MindSpore's CPU backend (an "aot" Custom op, built by
// src/transformer/cpu_kernels.py): from the output projection's logits to each row's k best log-probabilities
// and their token ids, after the decoding constraints. It computes what device_step.topk_step_function's
// MindSpore ops compute (log_softmax over the whole vocabulary, -inf at the banned ids, top-k), in one pass
// over the logits for the maximum, one for the sum of exponentials and one for the candidates, instead of
// about twelve kernels and three copies of the (rows, vocab) scores.
//
// Inputs, R rows, V tokens, W banned columns:
//   logits (R, V) float32
//   index  (R, W) int32   token ids to ban where `on` (elsewhere any id: not read)
//   on     (R, W) bool
// Outputs: values (R, K) float32, best first, the log-probabilities log_softmax(logits)[id]; ids (R, K) int32.
// Equal values keep the lower id first (MindSpore's CPU TopK orders them in no stated order). The normalizer
// covers every token, banned or not (as log_softmax before the ban). A row with fewer than K allowed tokens
// ends with its banned ids at -inf.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));

inline v8 load(const float *p) { return *reinterpret_cast<const v8u *>(p); }

inline v8 splat(float x) { return v8{x, x, x, x, x, x, x, x}; }

// exp(x) for x <= 0 in 8 lanes: 2^n * p(r) with x = n ln2 + r, |r| <= ln2 / 2, p a degree-6 polynomial
// (relative error about 2e-7); below -87 it is 0 (as expf underflows there).
inline v8 exp8(v8 x) {
  const v8 lo = splat(-87.0f);
  x = x < lo ? lo : x;
  // n = round(x / ln2); x <= 0, so truncating 0.5 - x / ln2 (>= 0) and negating rounds to nearest
  const v8 n = -__builtin_convertvector(__builtin_convertvector(splat(0.5f) - x * splat(1.44269504088896341f), i8), v8);
  v8 r = x - n * splat(0.693359375f);
  r = r - n * splat(-2.12194440e-4f);
  v8 p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.0f);
  const i8 e = (__builtin_convertvector(n, i8) + 127) << 23;
  v8 scale;
  std::memcpy(&scale, &e, sizeof scale);
  return p * scale;
}

float row_max(const float *x, int64_t V) {
  v8 best = splat(-INFINITY);
  int64_t j = 0;
  for (; j + 8 <= V; j += 8) {
    const v8 v = load(x + j);
    best = v > best ? v : best;
  }
  float m = -INFINITY;
  for (int i = 0; i < 8; ++i) m = best[i] > m ? best[i] : m;
  for (; j < V; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

float row_exp_sum(const float *x, int64_t V, float m) {
  v8 total = splat(0.0f);
  int64_t j = 0;
  for (; j + 8 <= V; j += 8) total += exp8(load(x + j) - splat(m));
  float s = 0.0f;
  for (int i = 0; i < 8; ++i) s += total[i];
  if (j < V) {
    float tail[8];
    for (int i = 0; i < 8; ++i) tail[i] = j + i < V ? x[j + i] - m : -INFINITY;
    const v8 t = exp8(load(tail));
    for (int64_t i = 0; i < V - j; ++i) s += t[i];
  }
  return s;
}

bool banned(int32_t id, const int32_t *index, const bool *on, int64_t W) {
  for (int64_t c = 0; c < W; ++c)
    if (on[c] && index[c] == id) return true;
  return false;
}

// the K largest allowed logits of a row, best first, lower id first among equals
void row_topk(const float *x, int64_t V, const int32_t *index, const bool *on, int64_t W, int64_t K, float *best,
              int32_t *ids) {
  int64_t count = 0;
  float floor = -INFINITY;  // the K-th best so far, once K are held
  auto offer = [&](int64_t j) {
    const float v = x[j];
    if ((count == K && !(v > floor)) || banned(static_cast<int32_t>(j), index, on, W)) return;
    int64_t at = count < K ? count++ : K - 1;  // the slot freed: the end, or the K-th (dropped)
    while (at > 0 && v > best[at - 1]) {
      best[at] = best[at - 1];
      ids[at] = ids[at - 1];
      --at;
    }
    best[at] = v;
    ids[at] = static_cast<int32_t>(j);
    if (count == K) floor = best[K - 1];
  };
  int64_t j = 0;
  for (; j + 8 <= V; j += 8) {
    if (count == K) {  // most blocks hold nothing above the floor: one comparison of 8 lanes
      const i8 above = load(x + j) > splat(floor);
      bool any = false;
      for (int i = 0; i < 8; ++i) any |= above[i] != 0;
      if (!any) continue;
    }
    for (int64_t i = j; i < j + 8; ++i) offer(i);
  }
  for (; j < V; ++j) offer(j);
  // fewer than K allowed tokens: the banned ones follow at -inf, lower id first (as TopK orders -inf ties)
  int32_t last = -1;
  for (; count < K; ++count) {
    int32_t next = -1;
    for (int64_t c = 0; c < W; ++c)
      if (on[c] && index[c] > last && (next < 0 || index[c] < next)) next = index[c];
    best[count] = -INFINITY;
    ids[count] = next;
    last = next;
  }
}

}  // namespace

extern "C" int LogSoftmaxTopK(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                              void *stream, void *extra) {
  (void)dtypes;
  (void)stream;
  (void)extra;
  if (nparam != 5 || ndims[0] != 2 || ndims[1] != 2 || ndims[2] != 2 || ndims[3] != 2) return 1;
  const int64_t R = shapes[0][0], V = shapes[0][1], W = shapes[1][1], K = shapes[3][1];
  if (shapes[1][0] != R || shapes[2][0] != R || shapes[2][1] != W || shapes[3][0] != R || K < 1 || K > V) return 1;
  const float *logits = static_cast<const float *>(params[0]);
  const int32_t *index = static_cast<const int32_t *>(params[1]);
  const bool *on = static_cast<const bool *>(params[2]);
  float *values = static_cast<float *>(params[3]);
  int32_t *ids = static_cast<int32_t *>(params[4]);
  for (int64_t r = 0; r < R; ++r) {
    const float *x = logits + r * V;
    const float m = row_max(x, V);
    const float log_norm = std::log(row_exp_sum(x, V, m));
    row_topk(x, V, index + r * W, on + r * W, W, K, values + r * K, ids + r * K);
    for (int64_t c = 0; c < K; ++c) values[r * K + c] = (values[r * K + c] - m) - log_norm;
  }
  return 0;
}
