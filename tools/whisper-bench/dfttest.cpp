// old dft (whisper.cpp 1.8.3) vs the table version, bit for bit, same compiler flags as src/whisper.cpp
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#define SIN_COS_N_COUNT 400
struct C {
    float sin_vals[SIN_COS_N_COUNT], cos_vals[SIN_COS_N_COUNT];
    static constexpr int dft_n = SIN_COS_N_COUNT >> __builtin_ctz(SIN_COS_N_COUNT);
    float dft_cos[dft_n*dft_n], dft_sin[dft_n*dft_n];
    C() {
        for (int i = 0; i < SIN_COS_N_COUNT; i++) { double theta = (2 * M_PI * i) / SIN_COS_N_COUNT; sin_vals[i] = sinf(theta); cos_vals[i] = cosf(theta); }
        const int step = SIN_COS_N_COUNT / dft_n;
        for (int n = 0; n < dft_n; n++) for (int k = 0; k < dft_n; k++) { const int idx = (k*n*step) % SIN_COS_N_COUNT; dft_cos[n*dft_n+k] = cos_vals[idx]; dft_sin[n*dft_n+k] = sin_vals[idx]; }
    }
} global_cache;
__attribute__((noinline)) void dft_old(const float* in, int N, float* out) {
    const int sin_cos_step = SIN_COS_N_COUNT / N;
    for (int k = 0; k < N; k++) { float re = 0; float im = 0;
        for (int n = 0; n < N; n++) { int idx = (k * n * sin_cos_step) % (SIN_COS_N_COUNT); re += in[n]*global_cache.cos_vals[idx]; im -= in[n]*global_cache.sin_vals[idx]; }
        out[k*2 + 0] = re; out[k*2 + 1] = im; }
}
__attribute__((noinline)) void dft_new(const float* in, int N, float* out) {
    float re[C::dft_n] = {}; float im[C::dft_n] = {};
    for (int n = 0; n < N; n++) { const float x = in[n]; const float * c = global_cache.dft_cos + n*N; const float * s = global_cache.dft_sin + n*N;
        for (int k = 0; k < C::dft_n; k++) { re[k] += x*c[k]; im[k] -= x*s[k]; } }
    for (int k = 0; k < N; k++) { out[k*2+0] = re[k]; out[k*2+1] = im[k]; }
}
int main() {
    std::mt19937 rng(3); std::normal_distribution<float> nd(0, 1);
    float in[25], a[50], b[50]; long bad = 0;
    for (int t = 0; t < 2000000; t++) {
        const float sc = std::pow(10.0f, (float)(t % 13) - 6);
        for (int i = 0; i < 25; i++) in[i] = (t % 7 == 0 && i % 3 == 0) ? 0.0f : nd(rng) * sc;
        dft_old(in, 25, a); dft_new(in, 25, b);
        if (memcmp(a, b, sizeof a)) bad++;
    }
    printf("mismatching transforms: %ld of 2000000\n", bad);
    return bad != 0;
}
