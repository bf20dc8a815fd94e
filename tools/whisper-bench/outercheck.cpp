// f16 src0 x (f32|f16) src1 mul_mat against a double reference, odd shapes, views, broadcast.
#include "ggml.h"
#include "ggml-cpu.h"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

int main() {
    ggml_init_params ip = { (size_t) 1024 * 1024 * 1024, nullptr, false };
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0, 1);
    struct S { int k, m, n, h0, h1; bool permute; ggml_type t1; };
    const S shapes[] = {
        {64, 768, 768, 6, 6, false, GGML_TYPE_F32}, {64, 768, 768, 6, 6, true, GGML_TYPE_F32},
        {768, 64, 768, 6, 6, false, GGML_TYPE_F32}, {64, 1056, 1056, 6, 6, true, GGML_TYPE_F32},
        {64, 1500, 1500, 6, 6, true, GGML_TYPE_F32}, {64, 33, 40, 2, 4, false, GGML_TYPE_F32}, {64, 33, 5, 2, 4, false, GGML_TYPE_F32},
        {240, 1536, 384, 1, 1, false, GGML_TYPE_F16}, {1152, 770, 384, 1, 1, false, GGML_TYPE_F16},
        {64, 47, 45, 3, 3, true, GGML_TYPE_F32}, {2, 32, 32, 1, 1, false, GGML_TYPE_F32},
    };
    int bad = 0;
    for (const S & sh : shapes) {
        ggml_context * ctx = ggml_init(ip);
        ggml_tensor * a, * b;
        if (sh.permute) {
            // like whisper's K and Q: [k, h, rows] stored, viewed as [k, rows, h]
            ggml_tensor * a0 = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, sh.k, sh.h0, sh.m);
            ggml_tensor * b0 = ggml_new_tensor_3d(ctx, sh.t1, sh.k, sh.h1, sh.n);
            a = ggml_permute(ctx, a0, 0, 2, 1, 3);
            b = ggml_permute(ctx, b0, 0, 2, 1, 3);
        } else {
            a = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, sh.k, sh.m, sh.h0);
            b = ggml_new_tensor_3d(ctx, sh.t1, sh.k, sh.n, sh.h1);
        }
        // fill underlying storage
        ggml_tensor * as = sh.permute ? a->src[0] : a;
        ggml_tensor * bs = sh.permute ? b->src[0] : b;
        for (int64_t i = 0; i < ggml_nelements(as); i++) ((ggml_fp16_t *) as->data)[i] = ggml_fp32_to_fp16(nd(rng));
        for (int64_t i = 0; i < ggml_nelements(bs); i++) {
            if (sh.t1 == GGML_TYPE_F32) ((float *) bs->data)[i] = nd(rng);
            else ((ggml_fp16_t *) bs->data)[i] = ggml_fp32_to_fp16(nd(rng));
        }
        ggml_tensor * c = ggml_mul_mat(ctx, a, b);
        ggml_cgraph * gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, c);
        const int nt = getenv("NT") ? atoi(getenv("NT")) : 1;
        ggml_graph_compute_with_ctx(ctx, gf, nt);
        double num = 0, den = 0, worst = 0;
        const int r2 = sh.h1 / sh.h0;
        for (int h = 0; h < sh.h1; h++)
            for (int j = 0; j < sh.n; j++)
                for (int i = 0; i < sh.m; i++) {
                    double r = 0, ra = 0;
                    for (int l = 0; l < sh.k; l++) {
                        const double av = ggml_fp16_to_fp32(*(ggml_fp16_t *) ((char *) a->data + l * a->nb[0] + i * a->nb[1] + (h / r2) * a->nb[2]));
                        const char * bp = (char *) b->data + l * b->nb[0] + j * b->nb[1] + h * b->nb[2];
                        const double bv = sh.t1 == GGML_TYPE_F32 ? *(float *) bp : ggml_fp16_to_fp32(*(ggml_fp16_t *) bp);
                        r += av * bv;
                        ra += fabs(av * bv);
                    }
                    const double got = *(float *) ((char *) c->data + i * c->nb[0] + j * c->nb[1] + h * c->nb[2]);
                    num += (got - r) * (got - r);
                    den += r * r;
                    worst = std::max(worst, fabs(got - r) / (ra + 1e-30));
                }
        const double rel = sqrt(num / den);
        printf("k=%4d m=%4d n=%4d h=%d/%d perm=%d src1=%s  relL2 %.2e  worst |err|/sum|ab| %.2e\n", sh.k, sh.m, sh.n, sh.h0, sh.h1,
               sh.permute, ggml_type_name(sh.t1), rel, worst);
        if (!(rel < 1e-3)) bad++;
        ggml_free(ctx);
    }
    printf(bad ? "FAIL\n" : "OK\n");
    return bad;
}
