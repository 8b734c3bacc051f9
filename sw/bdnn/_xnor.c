/* Binary convolution as XOR + popcount on bit-packed activations (the `cpu` backend's kernel).
 *
 * Activations: N x H x W x CW uint64 words per pixel; bit 1 encodes +1, bit 0 encodes -1 (FINN's
 * encoding). Weights: COUT x (K*K*CW) words in (kh, kw, word) order. Pixels outside the image are
 * all-zero words, i.e. -1 padding, as FINN's FMPadding emits. Channel padding bits are 0 in both
 * activations and weights, so they never mismatch.
 *
 * out[n, i, j, o] = number of mismatching bits; the +-1 dot product is K*K*C - 2 * mismatches.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline int popcount64(uint64_t v) { return __builtin_popcountll(v); }

/* The k x k window at output (i, j) of image b, pixels outside the image as zero words (-1). */
static inline void gather_patch(const uint64_t *x, int b, int h, int w, int cw, int k, int pad, int i, int j,
                                uint64_t *patch)
{
    uint64_t *p = patch;
    for (int ki = 0; ki < k; ++ki) {
        const int r = i + ki - pad;
        for (int kj = 0; kj < k; ++kj, p += cw) {
            const int c = j + kj - pad;
            if (r < 0 || r >= h || c < 0 || c >= w)
                memset(p, 0, sizeof(uint64_t) * (size_t)cw);
            else
                memcpy(p, x + (((size_t)b * h + r) * w + c) * cw, sizeof(uint64_t) * (size_t)cw);
        }
    }
}

static inline int mismatches(const uint64_t *patch, const uint64_t *wq, int plen)
{
    int m = 0;
    for (int t = 0; t < plen; ++t)
        m += popcount64(patch[t] ^ wq[t]);
    return m;
}

/* One loop nest for both entry points: counts (thr == NULL) or thresholded bits. */
static void conv_core(const uint64_t *x, int n, int h, int w, int cw, const uint64_t *wt, int cout, int k,
                      int pad, int ktot, const int32_t *thr, const int8_t *dir, int32_t *counts, uint8_t *bits)
{
    const int oh = h + 2 * pad - k + 1, ow = w + 2 * pad - k + 1;
    const int plen = k * k * cw;
#pragma omp parallel
    {
        uint64_t *patch = (uint64_t *)malloc(sizeof(uint64_t) * (size_t)plen);
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < n; ++b) {
            for (int i = 0; i < oh; ++i) {
                for (int j = 0; j < ow; ++j) {
                    gather_patch(x, b, h, w, cw, k, pad, i, j, patch);
                    const size_t o = (((size_t)b * oh + i) * ow + j) * cout;
                    for (int q = 0; q < cout; ++q) {
                        const int m = mismatches(patch, wt + (size_t)q * plen, plen);
                        if (thr)
                            bits[o + q] = (uint8_t)(dir[q] * (ktot - 2 * m) >= thr[q]);
                        else
                            counts[o + q] = m;
                    }
                }
            }
        }
        free(patch);
    }
}

void bin_conv(const uint64_t *x, int n, int h, int w, int cw, const uint64_t *wt, int cout, int k,
              int pad, int32_t *out)
{
    conv_core(x, n, h, w, cw, wt, cout, k, pad, 0, NULL, NULL, out, NULL);
}

/* The same convolution followed by BatchNorm+sign as integer thresholds: the +-1 dot product is
 * acc = ktot - 2 * mismatches; out bit = (dir[o] * acc >= thr[o]) with dir in {-1, 0, +1}
 * (thr pre-multiplied by dir; dir 0 gives a constant channel). Writes one byte (0/1) per channel. */
void bin_conv_sign(const uint64_t *x, int n, int h, int w, int cw, const uint64_t *wt, int cout, int k,
                   int pad, int ktot, const int32_t *thr, const int8_t *dir, uint8_t *out)
{
    conv_core(x, n, h, w, cw, wt, cout, k, pad, ktot, thr, dir, NULL, out);
}
