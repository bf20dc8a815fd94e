// ASR harness: whisper_full on the 22 speech files with affectd's parameters (src/audio/asr.rs).
// usage: harness MODEL DATA_DIR PASSES [OUT_TSV]
// prints per-pass totals (wall and thread-CPU of whisper_full, encoder wall) and, for pass 1,
// the transcripts.
#include "whisper.h"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

static double now_s(clockid_t c) {
    timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool read_wav(const std::string & path, std::vector<float> & out) {
    FILE * f = fopen(path.c_str(), "rb");
    if (!f) return false;
    std::vector<unsigned char> buf;
    unsigned char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) buf.insert(buf.end(), tmp, tmp + n);
    fclose(f);
    if (buf.size() < 12 || memcmp(buf.data(), "RIFF", 4) || memcmp(buf.data() + 8, "WAVE", 4)) return false;
    size_t p = 12;
    while (p + 8 <= buf.size()) {
        uint32_t sz;
        memcpy(&sz, buf.data() + p + 4, 4);
        if (!memcmp(buf.data() + p, "data", 4)) {
            size_t ns = std::min<size_t>(sz, buf.size() - p - 8) / 2;
            out.resize(ns);
            const int16_t * s = (const int16_t *) (buf.data() + p + 8);
            for (size_t i = 0; i < ns; i++) out[i] = s[i] / 32768.0f;
            return true;
        }
        p += 8 + sz + (sz & 1);
    }
    return false;
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL DATA_DIR PASSES [OUT_TSV]\n", argv[0]);
        return 1;
    }
    std::string model = argv[1], dir = argv[2];
    int passes = atoi(argv[3]);
    FILE * out = argc > 4 ? fopen(argv[4], "w") : nullptr;

    std::vector<std::string> names;
    {
        std::ifstream tsv(dir + "/transcripts.tsv");
        std::string line;
        std::getline(tsv, line);
        while (std::getline(tsv, line)) {
            if (line.empty()) continue;
            names.push_back(line.substr(0, line.find('\t')));
        }
    }
    std::vector<std::vector<float>> pcm(names.size());
    for (size_t i = 0; i < names.size(); i++) {
        if (!read_wav(dir + "/" + names[i], pcm[i])) {
            fprintf(stderr, "bad wav %s\n", names[i].c_str());
            return 1;
        }
    }

    whisper_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    whisper_context_params cp = whisper_context_default_params();
    cp.use_gpu = false;
    cp.flash_attn = false; // whisper-rs WhisperContextParameters::default()
    const double ti0 = now_s(CLOCK_MONOTONIC);
    whisper_context * ctx = whisper_init_from_file_with_params(model.c_str(), cp);
    fprintf(stderr, "init %.3f s\n", now_s(CLOCK_MONOTONIC) - ti0);
    if (!ctx) return 1;

    const int full_ctx = whisper_model_n_audio_ctx(ctx);
    auto run = [&](size_t i, double & wall, double & cpu, double & enc, std::string & text) {
        const std::vector<float> & x = pcm[i];
        whisper_full_params p = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
        p.n_threads = getenv("NTHREADS") ? atoi(getenv("NTHREADS")) : 1;
        p.language = "en";
        p.translate = false;
        p.no_context = true;
        p.print_special = false;
        p.print_progress = false;
        p.print_realtime = false;
        p.print_timestamps = false;
        int actx = (int) ((x.size() + 319) / 320 + 64);
        actx = std::min(std::max(actx, 768), full_ctx);
        p.audio_ctx = actx;
        p.max_tokens = (int) (x.size() / 16000.0 * 6.0 + 16.0);
        if (getenv("FULL_CTX")) { p.audio_ctx = 0; p.max_tokens = 0; } // whisper.cpp defaults: 30 s window
        whisper_reset_timings(ctx);
        double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        if (whisper_full(ctx, p, x.data(), (int) x.size()) != 0) {
            fprintf(stderr, "whisper_full failed\n");
            exit(1);
        }
        cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        wall = now_s(CLOCK_MONOTONIC) - w0;
        whisper_timings * t = whisper_get_timings(ctx);
        enc = t->encode_ms * 1e-3;
        delete t;
        text.clear();
        for (int s = 0; s < whisper_full_n_segments(ctx); s++) text += whisper_full_get_segment_text(ctx, s);
    };

    // DUMP_ENC=path: encoder output of every file (first 768 frames x n_state f32) and nothing else
    if (const char * dump = getenv("DUMP_ENC")) {
        whisper_state * st = whisper_init_state(ctx);
        FILE * f = fopen(dump, "wb");
        const int n_state = whisper_model_n_audio_state(ctx);
        std::vector<float> buf((size_t) 768 * n_state);
        for (size_t i = 0; i < names.size(); i++) {
            const std::vector<float> & x = pcm[i];
            whisper_full_params p = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
            p.n_threads = 1; p.language = "en"; p.no_context = true;
            p.print_special = p.print_progress = p.print_realtime = p.print_timestamps = false;
            int actx = (int) ((x.size() + 319) / 320 + 64);
            p.audio_ctx = std::min(std::max(actx, 768), full_ctx);
            p.max_tokens = (int) (x.size() / 16000.0 * 6.0 + 16.0);
            whisper_full_with_state(ctx, st, p, x.data(), (int) x.size());
            int off = 0;
            whisper_get_embd_enc(st, buf.data(), 768, &off);
            fwrite(buf.data(), sizeof(float), buf.size(), f);
        }
        fclose(f);
        whisper_free_state(st);
        whisper_free(ctx);
        return 0;
    }

    // warm-up
    {
        double a, b, c;
        std::string t;
        run(0, a, b, c, t);
    }
    for (int pass = 0; pass < passes; pass++) {
        double tw = 0, tc = 0, te = 0;
        for (size_t i = 0; i < names.size(); i++) {
            double w, c, e;
            std::string text;
            run(i, w, c, e, text);
            tw += w;
            tc += c;
            te += e;
            if (pass == 0 && out) fprintf(out, "%s\t%s\n", names[i].c_str(), text.c_str());
            if (pass == 0 && !out) printf("%s\t%.3f\t%s\n", names[i].c_str(), w, text.c_str());
        }
        printf("PASS %d wall=%.3f cpu=%.3f enc_wall=%.3f\n", pass, tw, tc, te);
        fflush(stdout);
    }
    if (out) fclose(out);
    whisper_free(ctx);
    return 0;
}
