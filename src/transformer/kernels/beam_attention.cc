// Self-attention of one beam-search step over a pointer cache, for MindSpore's CPU backend (an "aot"
// Custom op, built by src/transformer/cpu_kernels.py). It computes what SelfAttention.beam_step's
// MindSpore ops compute, in one kernel instead of about twelve: it writes the step's keys and values into
// the recent window IN PLACE (the window is the caller's buffer: no copy of it, no output), then, for
// every example, head and query slot, takes the softmax over the keys the hypothesis may attend to (its
// ancestor's slot at each position) and the weighted sum of their values. Disallowed keys are skipped
// (the ops add NEG_INF; exp gives 0 either way), so whatever a window held before is never read.
//
// Inputs (float32 unless said), B examples, H heads, S slots (beam), D head_dim, P old, W recent positions,
// R = B * S hypothesis rows (row = example * S + slot), d = H * D:
//   qkv        (R, 1, 3 * d)      the rows' queries, keys and values, heads side by side (not yet scaled)
//   at         () int32           the window position this step writes
//   scale      () float32         the score scale, 1 / sqrt(D)
//   old_k      (B, H, D, S * P)   old keys, transposed, slot-major (slot s, position j at s * P + j)
//   old_v      (B, H, S * P, D)   old values, slot-major
//   recent_k   (B, H, S * W, D)   recent keys, slot-major: the step's keys are written at `at` of each slot
//   recent_v   (B, H, S * W, D)
//   anc_old    (R, P) int32       per hypothesis and position, the slot holding its key, -1 for none
//   anc_recent (R, W) int32
// Output: (R, 1, d), heads side by side. Without an old part the inputs are qkv, at, scale, recent_k,
// recent_v, anc_recent.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

typedef float v8 __attribute__((vector_size(32)));  // 8 floats in registers
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));  // 8 floats anywhere in memory

inline v8 load(const float *p) { return *reinterpret_cast<const v8u *>(p); }

inline void store(float *p, v8 v) { *reinterpret_cast<v8u *>(p) = v; }

inline float sum(v8 v) {
  float total = 0.0f;
  for (int i = 0; i < 8; ++i) total += v[i];
  return total;
}

inline float dot(const float *a, const float *b, int64_t n) {
  v8 acc = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc += load(a + i) * load(b + i);
  float total = sum(acc);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// scores (kSlots, C) = q (kSlots, D) times kt (D, C), in blocks of 16 columns held in registers over the
// product; a block whose `needed` flag is 0 is skipped (its scores are left as they were: never read)
template <int kSlots>
void old_scores(const float *q, const float *kt, int64_t D, int64_t C, const char *needed, float *scores) {
  int64_t c0 = 0;
  for (; c0 + 16 <= C; c0 += 16) {
    if (!needed[c0 / 16]) continue;
    v8 lo[kSlots] = {}, hi[kSlots] = {};
    for (int64_t d = 0; d < D; ++d) {
      const v8 k0 = load(kt + d * C + c0), k1 = load(kt + d * C + c0 + 8);
#pragma GCC unroll 8
      for (int s = 0; s < kSlots; ++s) {
        const float qd = q[s * D + d];
        lo[s] += qd * k0;
        hi[s] += qd * k1;
      }
    }
#pragma GCC unroll 8
    for (int s = 0; s < kSlots; ++s) {
      store(scores + s * C + c0, lo[s]);
      store(scores + s * C + c0 + 8, hi[s]);
    }
  }
  for (; c0 < C; ++c0)
    for (int s = 0; s < kSlots; ++s) {
      float total = 0.0f;
      for (int64_t d = 0; d < D; ++d) total += q[s * D + d] * kt[d * C + c0];
      scores[s * C + c0] = total;
    }
}

void old_scores_any(const float *q, const float *kt, int64_t S, int64_t D, int64_t C, const char *needed,
                    float *scores) {
  switch (S) {
    case 1: return old_scores<1>(q, kt, D, C, needed, scores);
    case 2: return old_scores<2>(q, kt, D, C, needed, scores);
    case 3: return old_scores<3>(q, kt, D, C, needed, scores);
    case 4: return old_scores<4>(q, kt, D, C, needed, scores);
    case 5: return old_scores<5>(q, kt, D, C, needed, scores);
    case 6: return old_scores<6>(q, kt, D, C, needed, scores);
    default:
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = 0; c < C; ++c) {
          float total = 0.0f;
          for (int64_t d = 0; d < D; ++d) total += q[s * D + d] * kt[d * C + c];
          scores[s * C + c] = total;
        }
  }
}

// o (D) = norm * sum_i p[i] * value[i] (D each): D outputs held in registers over every value
void weighted_sum(const float *p, const float *const *value, int64_t count, int64_t D, float norm, float *o) {
  if (D % 8 != 0) {
    std::fill(o, o + D, 0.0f);
    for (int64_t i = 0; i < count; ++i)
      for (int64_t d = 0; d < D; ++d) o[d] += p[i] * value[i][d];
    for (int64_t d = 0; d < D; ++d) o[d] *= norm;
    return;
  }
  int64_t d0 = 0;
  for (; d0 + 32 <= D; d0 += 32) {
    v8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t i = 0; i < count; ++i) {
      const float w = p[i], *v = value[i] + d0;
      a0 += w * load(v);
      a1 += w * load(v + 8);
      a2 += w * load(v + 16);
      a3 += w * load(v + 24);
    }
    store(o + d0, a0 * norm);
    store(o + d0 + 8, a1 * norm);
    store(o + d0 + 16, a2 * norm);
    store(o + d0 + 24, a3 * norm);
  }
  for (; d0 < D; d0 += 8) {
    v8 a0 = {};
    for (int64_t i = 0; i < count; ++i) a0 += p[i] * load(value[i] + d0);
    store(o + d0, a0 * norm);
  }
}

struct Shape {
  int64_t batch, heads, slots, dim, past, window;
};

void attend(const Shape &n, const float *qkv, float scale, const float *old_k, const float *old_v,
            const float *recent_k, const float *recent_v, const int32_t *anc_old, const int32_t *anc_recent,
            float *out) {
  const int64_t S = n.slots, D = n.dim, P = n.past, W = n.window, d = n.heads * D;
  std::vector<float> q(S * D);  // a head's queries, scaled
  std::vector<float> full(S * S * P);  // every query slot's scores against the (needed) old keys of a head
  std::vector<float> score(P + W);
  std::vector<const float *> value(P + W);
  std::vector<char> needed((S * P + 15) / 16);
  for (int64_t b = 0; b < n.batch; ++b) {
    // the blocks of 16 old keys (slot-major columns) some hypothesis of the example attends to: the others
    // are not read (the keys are most of a step's memory traffic; beams often share their ancestors)
    std::fill(needed.begin(), needed.end(), 0);
    for (int64_t s = 0; s < S; ++s)
      for (int64_t j = 0; j < P; ++j) {
        const int32_t a = anc_old[(b * S + s) * P + j];
        if (a >= 0) needed[(a * P + j) / 16] = 1;
      }
    for (int64_t h = 0; h < n.heads; ++h) {
      const int64_t head = b * n.heads + h;
      for (int64_t s = 0; s < S; ++s)
        for (int64_t i = 0; i < D; ++i) q[s * D + i] = qkv[(b * S + s) * 3 * d + h * D + i] * scale;
      const float *qh = q.data();
      if (P > 0) old_scores_any(qh, old_k + head * D * S * P, S, D, S * P, needed.data(), full.data());
      for (int64_t s = 0; s < S; ++s) {
        const int64_t hyp = b * S + s;
        int64_t count = 0;
        float best = -INFINITY;
        for (int64_t j = 0; j < P; ++j) {
          const int32_t a = anc_old[hyp * P + j];
          if (a < 0) continue;
          score[count] = full[s * S * P + a * P + j];
          value[count] = old_v + (head * S * P + a * P + j) * D;
          best = std::max(best, score[count++]);
        }
        const float *qs = qh + s * D;
        for (int64_t j = 0; j < W; ++j) {
          const int32_t a = anc_recent[hyp * W + j];
          if (a < 0) continue;
          score[count] = dot(qs, recent_k + (head * S * W + a * W + j) * D, D);
          value[count] = recent_v + (head * S * W + a * W + j) * D;
          best = std::max(best, score[count++]);
        }
        float norm = 0.0f;
        for (int64_t i = 0; i < count; ++i) {
          score[i] = std::exp(score[i] - best);
          norm += score[i];
        }
        norm = count ? 1.0f / norm : 0.0f;
        weighted_sum(score.data(), value.data(), count, D, norm, out + hyp * d + h * D);
      }
    }
  }
}

// the step's keys and values (the k and v thirds of qkv rows) into window position `at` of every slot
void write_window(const Shape &n, const float *qkv, int64_t at, float *recent_k, float *recent_v) {
  const int64_t D = n.dim, d = n.heads * D;
  for (int64_t b = 0; b < n.batch; ++b)
    for (int64_t h = 0; h < n.heads; ++h)
      for (int64_t s = 0; s < n.slots; ++s) {
        const float *row = qkv + (b * n.slots + s) * 3 * d + h * D;
        const int64_t to = (((b * n.heads + h) * n.slots + s) * n.window + at) * D;
        std::copy(row + d, row + d + D, recent_k + to);
        std::copy(row + 2 * d, row + 2 * d + D, recent_v + to);
      }
}

// Cross-attention of a beam step: queries q (R, 1, H * D) with R = B * S rows, heads side by side and not
// yet scaled; the examples' memory keys transposed kt (B, H, D, L) and values v (B, H, L, D); the score bias
// of the memory mask (B, H, S, L); scale () float. Output (R, 1, H * D), heads side by side: what
// CrossAttention.beam_step's ops compute between the query and output projections (about seven kernels).
void cross_attend(int64_t B, int64_t H, int64_t S, int64_t D, int64_t L, float scale, const float *q, const float *kt,
                  const float *v, const float *bias, float *out) {
  std::vector<float> qh(S * D), scores(S * L);
  std::vector<const float *> value(L);
  const std::vector<char> every((L + 15) / 16, 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t head = b * H + h;
      for (int64_t s = 0; s < S; ++s)
        for (int64_t d = 0; d < D; ++d) qh[s * D + d] = q[((b * S + s) * H + h) * D + d] * scale;
      old_scores_any(qh.data(), kt + head * D * L, S, D, L, every.data(), scores.data());
      for (int64_t j = 0; j < L; ++j) value[j] = v + (head * L + j) * D;
      for (int64_t s = 0; s < S; ++s) {
        float *row = scores.data() + s * L;
        const float *add = bias + (head * S + s) * L;
        float best = -INFINITY, norm = 0.0f;
        for (int64_t j = 0; j < L; ++j) best = std::max(best, row[j] += add[j]);
        for (int64_t j = 0; j < L; ++j) norm += row[j] = std::exp(row[j] - best);
        weighted_sum(row, value.data(), L, D, 1.0f / norm, out + ((b * S + s) * H + h) * D);
      }
    }
}

}  // namespace

extern "C" int BeamAttention(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                             void *stream, void *extra) {
  (void)dtypes;
  (void)stream;
  (void)extra;
  const bool with_old = nparam == 10;
  if ((!with_old && nparam != 7) || ndims[0] != 3) return 1;
  const int recent = with_old ? 5 : 3, anc_recent = with_old ? 8 : 5;
  if (ndims[recent] != 4) return 1;
  Shape n{shapes[recent][0], shapes[recent][1], 0, shapes[recent][3], 0, 0};
  n.slots = shapes[0][0] / n.batch;
  if (n.slots * n.batch != shapes[0][0] || shapes[0][2] != 3 * n.heads * n.dim) return 1;
  n.window = shapes[recent][2] / n.slots;
  n.past = with_old ? shapes[4][2] / n.slots : 0;
  const int64_t at = *static_cast<const int32_t *>(params[1]);
  if (at < 0 || at >= n.window) return 1;
  const auto f = [&](int i) { return static_cast<const float *>(params[i]); };
  write_window(n, f(0), at, static_cast<float *>(params[recent]), static_cast<float *>(params[recent + 1]));
  attend(n, f(0), *f(2), with_old ? f(3) : nullptr, with_old ? f(4) : nullptr, f(recent), f(recent + 1),
         with_old ? static_cast<const int32_t *>(params[7]) : nullptr,
         static_cast<const int32_t *>(params[anc_recent]), static_cast<float *>(params[nparam - 1]));
  return 0;
}

extern "C" int CrossAttention(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                              void *stream, void *extra) {
  (void)dtypes;
  (void)stream;
  (void)extra;
  if (nparam != 6 || ndims[0] != 3 || ndims[1] != 4 || ndims[3] != 4) return 1;
  const int64_t B = shapes[1][0], H = shapes[1][1], D = shapes[1][2], L = shapes[1][3], S = shapes[3][2];
  if (B * S != shapes[0][0] || H * D != shapes[0][2]) return 1;
  cross_attend(B, H, S, D, L, *static_cast<const float *>(params[4]), static_cast<const float *>(params[0]),
               static_cast<const float *>(params[1]), static_cast<const float *>(params[2]),
               static_cast<const float *>(params[3]), static_cast<float *>(params[5]));
  return 0;
}
