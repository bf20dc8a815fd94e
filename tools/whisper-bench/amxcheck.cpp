// q8_0 weight x f32 activations: tinyBLAS (CPU buffer) vs AMX (extra buffer) vs a double
// reference on the same quantized operands (weights q8_0, activations quantized to q8_0 as ggml does).
#include "ggml.h"
#include "ggml-cpu.h"
#include "ggml-backend.h"
#include "ggml-alloc.h"
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>
#include <chrono>
#include <algorithm>

static std::vector<float> run(ggml_backend_buffer_type_t wbuft, const std::vector<float> & wf, const std::vector<float> & xf, int K, int N, int M, double * ms) {
    ggml_init_params ip = { 16 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * cw = ggml_init(ip);
    ggml_context * cx = ggml_init(ip);
    ggml_tensor * w = ggml_new_tensor_2d(cw, GGML_TYPE_Q8_0, K, N);
    ggml_tensor * x = ggml_new_tensor_2d(cx, GGML_TYPE_F32, K, M);
    ggml_tensor * y = ggml_mul_mat(cx, w, x);
    ggml_backend_buffer_t bw = ggml_backend_alloc_ctx_tensors_from_buft(cw, wbuft);
    ggml_backend_buffer_t bx = ggml_backend_alloc_ctx_tensors_from_buft(cx, ggml_backend_cpu_buffer_type());
    std::vector<uint8_t> q(ggml_row_size(GGML_TYPE_Q8_0, K) * N);
    ggml_quantize_chunk(GGML_TYPE_Q8_0, wf.data(), q.data(), 0, N, K, nullptr);
    ggml_backend_tensor_set(w, q.data(), 0, q.size());
    ggml_backend_tensor_set(x, xf.data(), 0, xf.size() * 4);
    ggml_cgraph * gf = ggml_new_graph(cx);
    ggml_build_forward_expand(gf, y);
    ggml_backend_t be = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(be, getenv("NT") ? atoi(getenv("NT")) : 1);
    std::vector<double> ts;
    for (int r = 0; r < 20; r++) {
        auto t0 = std::chrono::steady_clock::now();
        ggml_backend_graph_compute(be, gf);
        ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ts.begin(), ts.end());
    *ms = ts[0];
    std::vector<float> out((size_t) N * M);
    ggml_backend_tensor_get(y, out.data(), 0, out.size() * 4);
    ggml_backend_free(be);
    ggml_backend_buffer_free(bw);
    ggml_backend_buffer_free(bx);
    ggml_free(cw);
    ggml_free(cx);
    return out;
}

int main() {
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    auto get_extra = (ggml_backend_buffer_type_t * (*)(ggml_backend_dev_t))
        ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_dev_get_extra_bufts");
    ggml_backend_buffer_type_t amx = nullptr;
    for (auto * b = get_extra(dev); b && *b; ++b) {
        printf("extra buft: %s\n", ggml_backend_buft_name(*b));
        if (!strcmp(ggml_backend_buft_name(*b), "AMX")) amx = *b;
    }
    const int shapes[][3] = { {384, 384, 768}, {384, 1536, 768}, {1536, 384, 768}, {384, 384, 3}, {384, 1536, 1}, {1536, 384, 1}, {384, 384, 2}, {384, 384, 5}, {1536, 384, 17}, {384, 1536, 33}, {96, 64, 100}, {32, 32, 47}, {32, 32, 32}, {32, 32, 1}, {32, 64, 64}, {64, 32, 47}, {64, 32, 1}, {64, 64, 32}, {128, 32, 47}, {160, 96, 65} };
    for (auto & sh : shapes) {
        const int K = sh[0], N = sh[1], M = sh[2];
        std::mt19937 rng(1);
        std::normal_distribution<float> nd(0, 1);
        std::vector<float> wf((size_t) K * N), xf((size_t) K * M);
        for (auto & v : wf) v = nd(rng) * 0.05f;
        for (auto & v : xf) v = nd(rng);
        // reference on dequantized operands
        std::vector<uint8_t> qw(ggml_row_size(GGML_TYPE_Q8_0, K) * N), qx(ggml_row_size(GGML_TYPE_Q8_0, K) * M);
        ggml_quantize_chunk(GGML_TYPE_Q8_0, wf.data(), qw.data(), 0, N, K, nullptr);
        ggml_quantize_chunk(GGML_TYPE_Q8_0, xf.data(), qx.data(), 0, M, K, nullptr);
        std::vector<float> wd((size_t) K * N), xd((size_t) K * M);
        const ggml_type_traits * tt = ggml_get_type_traits(GGML_TYPE_Q8_0);
        tt->to_float(qw.data(), wd.data(), (int64_t) K * N);
        tt->to_float(qx.data(), xd.data(), (int64_t) K * M);
        double t_cpu, t_amx = 0;
        std::vector<float> yc = run(ggml_backend_cpu_buffer_type(), wf, xf, K, N, M, &t_cpu);
        std::vector<float> ya = amx ? run(amx, wf, xf, K, N, M, &t_amx) : yc;
        double ec = 0, ea = 0, den = 0, eca = 0;
        for (int m = 0; m < M; m++) for (int n = 0; n < N; n++) {
            double r = 0;
            for (int k = 0; k < K; k++) r += (double) wd[(size_t) n * K + k] * xd[(size_t) m * K + k];
            const double c = yc[(size_t) m * N + n], a = ya[(size_t) m * N + n];
            ec += (c - r) * (c - r); ea += (a - r) * (a - r); den += r * r; eca += (c - a) * (c - a);
        }
        printf("K=%d N=%d M=%d  cpu %.3f ms  amx %.3f ms  relerr cpu %.2e amx %.2e  cpu-vs-amx %.2e\n", K, N, M, t_cpu, t_amx,
               sqrt(ec / den), sqrt(ea / den), sqrt(eca / den));
    }
    return 0;
}
