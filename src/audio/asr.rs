//! Speech recognition: whisper.cpp (through whisper-rs) on the utterances the VAD cuts.
//!
//! The model file is checked in Rust before whisper.cpp sees it ([`check_ggml`]): whisper.cpp may
//! abort the process on a garbage or truncated file, and a daemon must answer such a file with an
//! error naming it instead. One whisper state is created at load and reused for every utterance.

use crate::audio::vad::SpeechSegment;
use crate::error::{Error, Result};
use crate::message::AUDIO_RATE;
use std::io::Read;
use std::path::{Path, PathBuf};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

/// The magic number at the start of a whisper.cpp ggml model file ("ggml" as a little-endian u32).
pub const GGML_MAGIC: u32 = 0x6767_6d6c;

/// Longest audio whisper decodes in one call (its fixed window), in samples.
const WINDOW: usize = 30 * AUDIO_RATE as usize;
/// Shorter input gives no segments in whisper.cpp ("input is too short").
const MIN_SAMPLES: usize = AUDIO_RATE as usize / 10;
/// The smallest encoder context `fit_audio_ctx` uses (frames of 20 ms): shorter ones loop on short clips.
const FIT_MIN_CTX: usize = 768;

/// Settings of the recogniser.
#[derive(Debug, Clone)]
pub struct AsrParams {
    /// whisper.cpp threads; 1 is fastest on a busy 2-core machine (ggml's barrier spin-waits).
    pub threads: usize,
    /// Segments whose no-speech probability is above this are dropped.
    pub no_speech_max: f32,
    /// Also pool the encoder output of each transcribed segment ([`Transcript::encoder`]) for the
    /// voice stage.
    pub encoder_features: bool,
    /// Size whisper's encoder context to the segment (its frames + 64, at least [`FIT_MIN_CTX`])
    /// instead of the full 30 s window: the encoder's cost falls with the context (measured in
    /// docs/speech.md).
    pub fit_audio_ctx: bool,
}

impl AsrParams {
    /// The parameters `[speech]` asks for; `encoder_features` when the voice stage (or an
    /// evaluation of it) reads the pooled encoder output.
    pub fn from_config(sp: &crate::config::SpeechConfig, encoder_features: bool) -> Self {
        AsrParams {
            threads: sp.asr_threads,
            no_speech_max: sp.no_speech_max,
            encoder_features,
            fit_audio_ctx: sp.fit_audio_ctx,
        }
    }
}

impl Default for AsrParams {
    fn default() -> Self {
        AsrParams { threads: 1, no_speech_max: 0.6, encoder_features: false, fit_audio_ctx: true }
    }
}

/// Audio per Whisper encoder frame, in samples (20 ms).
pub const ENCODER_HOP: usize = 320;

/// The Whisper encoder output over one speech segment, pooled per dimension over the frames of
/// the real audio (not whisper's zero padding): `[mean; n_state] ++ [std; n_state]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderPool {
    /// Mean then standard deviation per encoder dimension (768 values for tiny.en).
    pub features: Vec<f32>,
    /// Encoder frames pooled.
    pub frames: usize,
    /// Seconds spent copying and pooling (not counting an encoder re-run).
    pub pool_s: f64,
    /// True when whisper's last encoder run started after the segment start and the encoder had
    /// to be run again from the start (a rare extra cost).
    pub reencoded: bool,
}

/// Running sums of encoder frames for mean+std pooling.
#[derive(Debug, Clone)]
struct PoolAcc {
    sum: Vec<f64>,
    sq: Vec<f64>,
    n: usize,
}

impl PoolAcc {
    fn new(dim: usize) -> PoolAcc {
        PoolAcc { sum: vec![0.0; dim], sq: vec![0.0; dim], n: 0 }
    }

    fn add(&mut self, frames: &[f32]) {
        let d = self.sum.len();
        for f in frames.chunks_exact(d) {
            for ((s, q), &x) in self.sum.iter_mut().zip(self.sq.iter_mut()).zip(f) {
                let x = x as f64;
                *s += x;
                *q += x * x;
            }
            self.n += 1;
        }
    }

    fn finish(&self) -> Vec<f32> {
        let n = self.n.max(1) as f64;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let std = self.sq.iter().zip(&mean).map(|(q, m)| (q / n - m * m).max(0.0).sqrt());
        mean.iter().map(|&m| m as f32).chain(std.map(|s| s as f32)).collect()
    }
}

/// What the encoder-begin callback saw: whisper's raw context and state of the current run.
struct EncoderCapture {
    ctx: *mut whisper_rs_sys::whisper_context,
    state: *mut whisper_rs_sys::whisper_state,
    runs: u32,
}

unsafe extern "C" fn on_encoder_begin(
    ctx: *mut whisper_rs_sys::whisper_context,
    state: *mut whisper_rs_sys::whisper_state,
    user_data: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: user_data is the &mut EncoderCapture that `transcribe` set for this `full` call,
    // alive and not otherwise borrowed while whisper.cpp runs.
    let cap = unsafe { &mut *(user_data as *mut EncoderCapture) };
    cap.ctx = ctx;
    cap.state = state;
    cap.runs += 1;
    true
}

/// The words recognised in one speech segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Media time of the first kept whisper segment, seconds.
    pub start: f64,
    /// Media time of the end of the last kept whisper segment, seconds.
    pub end: f64,
    /// The kept segments' text joined with single spaces.
    pub text: String,
    /// The kept whisper segments.
    pub segments: Vec<TranscriptSegment>,
    /// The pooled encoder output over the whole speech segment, when
    /// [`AsrParams::encoder_features`] is on.
    pub encoder: Option<EncoderPool>,
}

/// One whisper segment, in media time.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptSegment {
    /// Media time of the start (speech segment start + whisper offset), seconds.
    pub start: f64,
    /// Media time of the end, seconds.
    pub end: f64,
    /// The text, trimmed.
    pub text: String,
    /// whisper's probability that the window holds no speech.
    pub no_speech_prob: f32,
}

/// What [`check_ggml`] found in a whisper ggml file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgmlInfo {
    /// The eleven hyper-parameters in file order: n_vocab, n_audio_ctx, n_audio_state,
    /// n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype.
    pub hparams: [i32; 11],
    /// Mel filter bank shape (n_mel, n_fft).
    pub mel: (i32, i32),
    /// Number of vocabulary entries stored.
    pub n_tokens: usize,
    /// Number of tensors stored.
    pub n_tensors: usize,
}

impl GgmlInfo {
    /// The file's ftype (`qnt_version * 1000 + ggml ftype`).
    pub fn ftype(&self) -> i32 {
        self.hparams[10]
    }
}

/// (block size, bytes per block) of a ggml tensor type, for the types whisper files use.
fn type_size(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (1, 4),   // f32
        1 => (1, 2),   // f16
        2 => (32, 18), // q4_0
        3 => (32, 20), // q4_1
        6 => (32, 22), // q5_0
        7 => (32, 24), // q5_1
        8 => (32, 34), // q8_0
        _ => return None,
    })
}

/// Walks a whisper.cpp ggml file (magic, hparams, mel filters, vocabulary, every tensor header and
/// payload size) without loading the weights, so that a corrupt or truncated file is an error
/// naming it rather than an abort inside whisper.cpp.
pub fn check_ggml(path: &Path) -> Result<GgmlInfo> {
    let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
    let file = std::fs::File::open(path).map_err(|e| {
        bad(format!("cannot open the whisper model: {e} (regenerate it as models/manifest.toml says)"))
    })?;
    let len = file.metadata().map_err(|e| bad(format!("cannot stat: {e}")))?.len();
    let mut r = std::io::BufReader::new(file);
    let mut pos: u64 = 0;
    let truncated = |what: &str, pos: u64| {
        format!(
            "truncated or corrupt whisper ggml file: {what} at byte {pos} runs past the end ({len} bytes)"
        )
    };
    let read_i32 = |r: &mut std::io::BufReader<std::fs::File>, pos: &mut u64, what: &str| {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(|_| bad(truncated(what, *pos)))?;
        *pos += 4;
        Ok::<i32, Error>(i32::from_le_bytes(b))
    };
    let magic = read_i32(&mut r, &mut pos, "magic")? as u32;
    if magic != GGML_MAGIC {
        return Err(bad(format!(
            "not a whisper.cpp ggml model: magic 0x{magic:08x}, expected 0x{GGML_MAGIC:08x}"
        )));
    }
    let names = [
        "n_vocab",
        "n_audio_ctx",
        "n_audio_state",
        "n_audio_head",
        "n_audio_layer",
        "n_text_ctx",
        "n_text_state",
        "n_text_head",
        "n_text_layer",
        "n_mels",
        "ftype",
    ];
    let limits = [1_000_000, 100_000, 16_384, 256, 256, 100_000, 16_384, 256, 256, 512, 3_000];
    let mut hparams = [0i32; 11];
    for (i, (name, limit)) in names.iter().zip(limits).enumerate() {
        let v = read_i32(&mut r, &mut pos, name)?;
        let min = if i == 10 { 0 } else { 1 };
        if v < min || v > limit {
            return Err(bad(format!("corrupt whisper ggml header: {name} = {v} (allowed {min}..={limit})")));
        }
        hparams[i] = v;
    }
    if !matches!(hparams[10] % 1000, 0..=3 | 7..=9) {
        return Err(bad(format!(
            "unsupported ftype {} (allowed: 0 f32, 1 f16, 2/3 q4, 7/8 q8_0/q5_0, 9 q5_1, plus 1000 x qnt version)",
            hparams[10]
        )));
    }
    let n_mel = read_i32(&mut r, &mut pos, "mel filter rows")?;
    let n_fft = read_i32(&mut r, &mut pos, "mel filter columns")?;
    if n_mel != hparams[9] || !(1..=4096).contains(&n_fft) {
        return Err(bad(format!(
            "corrupt mel filter bank {n_mel}x{n_fft} (expected n_mels = {} rows, 1..=4096 columns)",
            hparams[9]
        )));
    }
    let skip = |r: &mut std::io::BufReader<std::fs::File>, pos: &mut u64, n: u64, what: &str| {
        if *pos + n > len {
            return Err(bad(truncated(what, *pos)));
        }
        r.seek_relative(n as i64).map_err(|e| bad(format!("cannot seek: {e}")))?;
        *pos += n;
        Ok(())
    };
    skip(&mut r, &mut pos, n_mel as u64 * n_fft as u64 * 4, "mel filters")?;
    let n_tokens = read_i32(&mut r, &mut pos, "vocabulary size")?;
    if !(0..=hparams[0]).contains(&n_tokens) {
        return Err(bad(format!("corrupt vocabulary: {n_tokens} tokens (allowed 0..={})", hparams[0])));
    }
    for i in 0..n_tokens {
        let n = read_i32(&mut r, &mut pos, "token length")?;
        if !(0..=1024).contains(&n) {
            return Err(bad(format!("corrupt vocabulary: token {i} has length {n} (allowed 0..=1024)")));
        }
        skip(&mut r, &mut pos, n as u64, "token")?;
    }
    let mut n_tensors = 0usize;
    while pos < len {
        let n_dims = read_i32(&mut r, &mut pos, "tensor header")?;
        let name_len = read_i32(&mut r, &mut pos, "tensor header")?;
        let ttype = read_i32(&mut r, &mut pos, "tensor header")?;
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(bad(format!(
                "corrupt tensor {n_tensors} header: n_dims {n_dims} (allowed 1..=4), name length {name_len} (allowed 1..=256)"
            )));
        }
        let (block, bytes) = type_size(ttype).ok_or_else(|| {
            bad(format!("tensor {n_tensors} has unknown ggml type {ttype} (allowed 0, 1, 2, 3, 6, 7, 8)"))
        })?;
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = read_i32(&mut r, &mut pos, "tensor shape")?;
            if d < 1 {
                return Err(bad(format!("tensor {n_tensors} has dimension {d} (must be >= 1)")));
            }
            ne.push(d as u64);
        }
        let mut name = vec![0u8; name_len as usize];
        r.read_exact(&mut name).map_err(|_| bad(truncated("tensor name", pos)))?;
        pos += name_len as u64;
        let name = String::from_utf8_lossy(&name).into_owned();
        if !ne[0].is_multiple_of(block) {
            return Err(bad(format!("tensor {name}: row length {} is not a multiple of {block}", ne[0])));
        }
        let payload = ne.iter().product::<u64>() / block * bytes;
        skip(&mut r, &mut pos, payload, &format!("tensor {name}"))?;
        n_tensors += 1;
    }
    if n_tensors == 0 {
        return Err(bad("whisper ggml file holds no tensors (truncated?)".into()));
    }
    Ok(GgmlInfo { hparams, mel: (n_mel, n_fft), n_tokens: n_tokens as usize, n_tensors })
}

/// True when `text` holds nothing but bracketed annotations or music signs
/// (`[BLANK_AUDIO]`, `(music)`, `*sigh*`, `♪`).
pub fn is_non_speech(text: &str) -> bool {
    let mut depth = 0i32;
    let mut star = false;
    for c in text.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = (depth - 1).max(0),
            '*' => star = !star,
            c if c.is_alphanumeric() && depth == 0 && !star => return false,
            _ => {}
        }
    }
    true
}

/// whisper.cpp with one reusable state. `Send`: it can live in its own thread.
pub struct Asr {
    path: PathBuf,
    params: AsrParams,
    info: GgmlInfo,
    state: WhisperState,
    _ctx: WhisperContext,
}

impl std::fmt::Debug for Asr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Asr({}, {:?})", self.path.display(), self.params)
    }
}

impl Asr {
    /// Checks and loads a whisper ggml model; a missing, corrupt or truncated file is
    /// [`Error::Model`] naming it.
    pub fn load(path: &Path, params: AsrParams) -> Result<Asr> {
        if !(1..=64).contains(&params.threads) {
            return Err(Error::config("<asr>", format!("asr threads = {} (allowed 1..=64)", params.threads)));
        }
        if !(0.0..=1.0).contains(&params.no_speech_max) {
            return Err(Error::config(
                "<asr>",
                format!("asr no_speech_max = {} (allowed 0..=1)", params.no_speech_max),
            ));
        }
        if !path.is_file() {
            return Err(Error::Model {
                path: path.to_path_buf(),
                message: "file is missing (regenerate it as models/manifest.toml says)".into(),
            });
        }
        let info = check_ggml(path)?;
        static HOOKS: std::sync::Once = std::sync::Once::new();
        HOOKS.call_once(whisper_rs::install_logging_hooks);
        let err = |what: &str, e: whisper_rs::WhisperError| Error::Model {
            path: path.to_path_buf(),
            message: format!("{what}: {e} (regenerate it as models/manifest.toml says)"),
        };
        let utf8 = path.to_str().ok_or_else(|| Error::Model {
            path: path.to_path_buf(),
            message: "path is not valid UTF-8 (whisper.cpp needs a UTF-8 path)".into(),
        })?;
        let ctx = WhisperContext::new_with_params(utf8, WhisperContextParameters::default())
            .map_err(|e| err("whisper.cpp cannot load the model", e))?;
        let state = ctx.create_state().map_err(|e| err("whisper.cpp cannot create a state", e))?;
        Ok(Asr { path: path.to_path_buf(), params, info, state, _ctx: ctx })
    }

    /// Transcribes one speech segment (split into 30 s windows when longer); `None` when whisper
    /// hears nothing but non-speech.
    pub fn transcribe(&mut self, seg: &SpeechSegment) -> Result<Option<Transcript>> {
        let mut segments = Vec::new();
        // whisper.cpp must not see NaN or out-of-range samples.
        let clean: std::borrow::Cow<[f32]> = if seg.samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0) {
            std::borrow::Cow::Borrowed(&seg.samples)
        } else {
            seg.samples.iter().map(|s| if s.is_finite() { s.clamp(-1.0, 1.0) } else { 0.0 }).collect()
        };
        let n_state = self.info.hparams[2] as usize;
        let mut acc = self.params.encoder_features.then(|| PoolAcc::new(n_state));
        let (mut pool_s, mut reencoded) = (0.0f64, false);
        for (i, chunk) in clean.chunks(WINDOW).enumerate() {
            if chunk.len() < MIN_SAMPLES {
                continue;
            }
            let mut cap = EncoderCapture { ctx: std::ptr::null_mut(), state: std::ptr::null_mut(), runs: 0 };
            let offset = seg.start + (i * WINDOW) as f64 / AUDIO_RATE as f64;
            let chunk_end = offset + chunk.len() as f64 / AUDIO_RATE as f64;
            let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
            p.set_n_threads(self.params.threads as i32);
            p.set_language(Some("en"));
            p.set_translate(false);
            p.set_no_context(true);
            p.set_print_special(false);
            p.set_print_progress(false);
            p.set_print_realtime(false);
            p.set_print_timestamps(false);
            if self.params.fit_audio_ctx {
                let full = self.info.hparams[1] as usize;
                p.set_audio_ctx((chunk.len().div_ceil(ENCODER_HOP) + 64).max(FIT_MIN_CTX).min(full) as i32);
                // A short context invites repetition loops: no more tokens than fast speech
                // needs (6 per second + 16).
                p.set_max_tokens((chunk.len() as f64 / AUDIO_RATE as f64 * 6.0 + 16.0) as i32);
            }
            if acc.is_some() {
                // SAFETY: the callback only records the pointers whisper.cpp passes it; `cap`
                // outlives the `full` call below, which is the only one that uses it.
                unsafe {
                    p.set_start_encoder_callback(Some(on_encoder_begin));
                    p.set_start_encoder_callback_user_data(&mut cap as *mut EncoderCapture as *mut _);
                }
            }
            self.state.full(p, chunk).map_err(|e| Error::Model {
                path: self.path.clone(),
                message: format!("transcription failed: {e}"),
            })?;
            if let Some(acc) = acc.as_mut() {
                let (s, re) = self.pool_encoder(&cap, chunk.len(), n_state, acc)?;
                pool_s += s;
                reencoded |= re;
            }
            for s in self.state.as_iter() {
                let text = s
                    .to_str_lossy()
                    .map_err(|e| Error::Model {
                        path: self.path.clone(),
                        message: format!("cannot read a segment's text: {e}"),
                    })?
                    .trim()
                    .to_string();
                let no_speech_prob = s.no_speech_probability();
                if no_speech_prob > self.params.no_speech_max || is_non_speech(&text) {
                    continue;
                }
                let start = (offset + s.start_timestamp() as f64 / 100.0).min(chunk_end);
                let end = (offset + s.end_timestamp() as f64 / 100.0).clamp(start, chunk_end);
                segments.push(TranscriptSegment { start, end, text, no_speech_prob });
            }
        }
        if segments.is_empty() {
            return Ok(None);
        }
        let text = segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
        let encoder = acc.filter(|a| a.n > 0).map(|a| {
            let t0 = std::time::Instant::now();
            let features = a.finish();
            EncoderPool { features, frames: a.n, pool_s: pool_s + t0.elapsed().as_secs_f64(), reencoded }
        });
        Ok(Some(Transcript {
            start: segments[0].start,
            end: segments[segments.len() - 1].end,
            text,
            segments,
            encoder,
        }))
    }

    /// Adds the encoder frames of the real audio of the window just transcribed to `acc`; when
    /// whisper's last encoder run did not start at the window start (it seeks on after a first
    /// pass), runs the encoder once more from the start. Returns (seconds copying and pooling,
    /// re-encoded).
    fn pool_encoder(
        &mut self,
        cap: &EncoderCapture,
        n_samples: usize,
        n_state: usize,
        acc: &mut PoolAcc,
    ) -> Result<(f64, bool)> {
        let err = |message: String| Error::Model { path: self.path.clone(), message };
        if cap.runs == 0 || cap.state.is_null() {
            return Err(err("whisper.cpp ran no encoder for a segment it transcribed".into()));
        }
        let n_frames = n_samples.div_ceil(ENCODER_HOP).min(self.info.hparams[1] as usize);
        let mut buf = vec![0f32; n_frames * n_state];
        let mut offset: std::ffi::c_int = -1;
        // SAFETY: cap.state is this Asr's whisper state (whisper.cpp passed it to the callback
        // during the `full` call that just returned) and buf holds n_frames * n_state floats.
        let mut t0 = std::time::Instant::now();
        let mut got = unsafe {
            whisper_rs_sys::whisper_get_embd_enc(cap.state, buf.as_mut_ptr(), n_frames as i32, &mut offset)
        };
        let mut reencoded = false;
        if got >= 0 && offset != 0 {
            // SAFETY: the same context and state; the mel of this window is still in the state.
            let rc = unsafe {
                whisper_rs_sys::whisper_encode_with_state(cap.ctx, cap.state, 0, self.params.threads as i32)
            };
            if rc != 0 {
                return Err(err(format!("whisper.cpp encoder re-run failed (code {rc})")));
            }
            reencoded = true;
            t0 = std::time::Instant::now();
            // SAFETY: as above.
            got = unsafe {
                whisper_rs_sys::whisper_get_embd_enc(
                    cap.state,
                    buf.as_mut_ptr(),
                    n_frames as i32,
                    &mut offset,
                )
            };
        }
        if got < 0 || offset != 0 {
            return Err(err(format!(
                "cannot read whisper's encoder output (getter returned {got}, offset {offset})"
            )));
        }
        acc.add(&buf[..got as usize * n_state]);
        Ok((t0.elapsed().as_secs_f64(), reencoded))
    }

    /// Engine and model, e.g. `whisper.cpp 1.8.3 ggml-tiny.en-q8_0.bin ftype 2007`.
    pub fn version(&self) -> String {
        let file = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        format!("whisper.cpp {} {file} ftype {}", whisper_rs::get_whisper_version(), self.info.ftype())
    }

    /// What the model file's header says.
    pub fn info(&self) -> &GgmlInfo {
        &self.info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asr_is_send() {
        fn send<T: Send>() {}
        send::<Asr>();
    }

    #[test]
    fn bracket_only_text_is_non_speech() {
        assert!(is_non_speech("[BLANK_AUDIO]"));
        assert!(is_non_speech(" (music) ♪ "));
        assert!(is_non_speech("*sigh*"));
        assert!(is_non_speech(""));
        assert!(!is_non_speech("[laughs] okay then"));
        assert!(!is_non_speech("Ask not."));
    }

    #[test]
    fn garbage_and_missing_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.bin");
        std::fs::write(&p, (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap();
        let e = Asr::load(&p, AsrParams::default()).unwrap_err().to_string();
        assert!(e.contains("junk.bin") && e.contains("magic"), "{e}");
        let e = Asr::load(&dir.path().join("none.bin"), AsrParams::default()).unwrap_err().to_string();
        assert!(e.contains("none.bin") && e.contains("missing"), "{e}");
        let mut hdr = GGML_MAGIC.to_le_bytes().to_vec();
        hdr.extend(51864i32.to_le_bytes());
        std::fs::write(&p, &hdr).unwrap();
        let e = check_ggml(&p).unwrap_err().to_string();
        assert!(e.contains("junk.bin") && e.contains("truncated"), "{e}");
    }
}
