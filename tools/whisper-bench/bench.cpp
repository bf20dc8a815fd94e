// ggml op micro-benchmark: min time of R runs of single ops with whisper tiny shapes, 1 thread.
// Also writes the outputs to OUT (argv[1]) so that two builds can be compared bit for bit.
#include "ggml.h"
#include "ggml-cpu.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
#include <algorithm>

static void fill(ggml_tensor * t, std::mt19937 & rng, float scale) {
    std::normal_distribution<float> nd(0.0f, scale);
    const int64_t n = ggml_nelements(t);
    if (t->type == GGML_TYPE_F32) {
        float * d = (float *) t->data;
        for (int64_t i = 0; i < n; i++) d[i] = nd(rng);
    } else if (t->type == GGML_TYPE_F16) {
        ggml_fp16_t * d = (ggml_fp16_t *) t->data;
        for (int64_t i = 0; i < n; i++) d[i] = ggml_fp32_to_fp16(nd(rng));
    } else {
        std::vector<float> tmp(n);
        for (int64_t i = 0; i < n; i++) tmp[i] = nd(rng);
        ggml_quantize_chunk(t->type, tmp.data(), t->data, 0, n / t->ne[0], t->ne[0], nullptr);
    }
}

int main(int argc, char ** argv) {
    FILE * out = argc > 1 ? fopen(argv[1], "wb") : nullptr;
    const int R = argc > 2 ? atoi(argv[2]) : 20;
    ggml_init_params ip = { (size_t) 3 * 1024 * 1024 * 1024, nullptr, false };
    ggml_context * ctx = ggml_init(ip);
    std::mt19937 rng(42);

    struct Case { const char * name; ggml_tensor * out; };
    std::vector<Case> cases;

    // encoder KQ: K f16 [64,768,6] x Q f32 [64,768,6]
    {
        ggml_tensor * k = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, 64, 768, 6); fill(k, rng, 1.0f);
        ggml_tensor * q = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 64, 768, 6); fill(q, rng, 1.0f);
        cases.push_back({"KQ f16 64x768x768x6", ggml_mul_mat(ctx, k, q)});
    }
    // encoder KQV: V f16 [768,64,6] x softmax f32 [768,768,6]
    {
        ggml_tensor * v = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, 768, 64, 6); fill(v, rng, 1.0f);
        ggml_tensor * s = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 768, 768, 6); fill(s, rng, 0.01f);
        cases.push_back({"KQV f16 768x64x768x6", ggml_mul_mat(ctx, v, s)});
    }
    // softmax [768,768,6]
    {
        ggml_tensor * x = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 768, 768, 6); fill(x, rng, 3.0f);
        cases.push_back({"soft_max 768x768x6", ggml_soft_max_ext(ctx, x, nullptr, 0.125f, 0.0f)});
    }
    // gelu [1536,768]
    {
        ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1536, 768); fill(x, rng, 3.0f);
        cases.push_back({"gelu 1536x768", ggml_gelu(ctx, x)});
    }
    // logits: q8_0 [384,51864] x f32 [384,1]
    {
        ggml_tensor * w = ggml_new_tensor_2d(ctx, GGML_TYPE_Q8_0, 384, 51864); fill(w, rng, 0.05f);
        ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 384, 1); fill(x, rng, 1.0f);
        cases.push_back({"q8_0 matvec 51864x384", ggml_mul_mat(ctx, w, x)});
        ggml_tensor * w2 = ggml_new_tensor_2d(ctx, GGML_TYPE_Q8_0, 384, 4096); fill(w2, rng, 0.05f);
        cases.push_back({"q8_0 matvec 4096x384 (x12.66)", ggml_mul_mat(ctx, w2, x)});
    }
    // decoder cross attention, one token: K [64,768,6] x q [64,1,6]; V [768,64,6] x p [768,1,6]
    {
        ggml_tensor * k = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, 64, 768, 6); fill(k, rng, 1.0f);
        ggml_tensor * q = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 64, 1, 6); fill(q, rng, 1.0f);
        cases.push_back({"f16 matvec KQ 768x64 x6", ggml_mul_mat(ctx, k, q)});
        ggml_tensor * v = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, 768, 64, 6); fill(v, rng, 1.0f);
        ggml_tensor * p = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 768, 1, 6); fill(p, rng, 0.01f);
        cases.push_back({"f16 matvec KQV 64x768 x6", ggml_mul_mat(ctx, v, p)});
    }
    // encoder fc1 (CPU buffer, tinyBLAS q8_0 path): q8_0 [384,1536] x f32 [384,768]
    {
        ggml_tensor * w = ggml_new_tensor_2d(ctx, GGML_TYPE_Q8_0, 384, 1536); fill(w, rng, 0.05f);
        ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 384, 768); fill(x, rng, 1.0f);
        cases.push_back({"q8_0 gemm 1536x384x768 (cpu buft)", ggml_mul_mat(ctx, w, x)});
    }

    for (auto & c : cases) {
        ggml_cgraph * gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, c.out);
        std::vector<double> ts;
        for (int r = 0; r < R; r++) {
            auto t0 = std::chrono::steady_clock::now();
            ggml_graph_compute_with_ctx(ctx, gf, getenv("NT") ? atoi(getenv("NT")) : 1);
            ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ts.begin(), ts.end());
        printf("%-36s min %8.3f ms  median %8.3f ms\n", c.name, ts[0], ts[ts.size() / 2]);
        if (out) fwrite(c.out->data, 1, ggml_nbytes(c.out), out);
    }
    if (out) fclose(out);
    return 0;
}
