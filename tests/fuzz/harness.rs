//! A small mutation-based fuzzer that runs on stable Rust inside `cargo test` (no nightly, no
//! instrumented rebuild): seeds from `tests/fuzz/corpus/<target>/`, stacked mutations, every input
//! under `catch_unwind`, a watchdog for hangs and an allocation guard for unbounded allocations.
//!
//! It is not coverage-guided: the only feedback is the set of distinct outcomes (error messages
//! with numbers, quoted values and paths blanked): an input that produces a new outcome joins the
//! pool that later mutations start from.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// One input taking longer than this is a hang.
pub const HANG: Duration = Duration::from_secs(2);
/// One allocation larger than this while an input runs is a finding (inputs are at most
/// [`MAX_INPUT`] bytes; no parser needs more than a few times its input).
pub const ALLOC_FINDING: usize = 64 << 20;
/// Larger requests are refused (the process aborts) after the input is saved.
pub const ALLOC_HARD: usize = 1 << 30;
/// Panic messages of the harness's own failures start with this (they are not findings).
pub const HARNESS_FAILURE: &str = "fuzz harness:";
/// Longest input a mutation may produce.
pub const MAX_INPUT: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Allocation guard

/// The global allocator of the fuzz binary: `System`, recording the largest single request of the
/// current input (per thread) and refusing requests above [`ALLOC_HARD`] after saving the input.
pub struct Guard;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static CURRENT: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
    static DUMP_TO: Cell<Option<&'static Path>> = const { Cell::new(None) };
}

fn note(size: usize) -> bool {
    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
    if size <= ALLOC_HARD {
        return true;
    }
    // Save the input that asked for it before the process aborts (no allocation on this path:
    // short paths are converted on the stack, the slice is borrowed).
    let (ptr, len) = CURRENT.try_with(|c| c.get()).unwrap_or((std::ptr::null(), 0));
    if let (false, Ok(Some(path))) = (ptr.is_null(), DUMP_TO.try_with(|d| d.get())) {
        // SAFETY: `run_one` sets the pointer to the live input slice and clears it afterwards.
        let input = unsafe { std::slice::from_raw_parts(ptr, len) };
        let _ = std::fs::write(path, input);
        eprintln!("fuzz: allocation of {size} bytes refused; the input is saved in {}", path.display());
    }
    false
}

/// Runs `f` and returns its result with the largest single allocation it made on this thread.
pub fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = PEAK.with(|p| p.replace(0));
    let out = f();
    let peak = PEAK.with(|p| p.replace(before.max(p.get())));
    (out, peak)
}

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if note(layout.size()) {
            unsafe { System.alloc(layout) }
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if note(layout.size()) {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if note(new_size) {
            unsafe { System.realloc(ptr, layout, new_size) }
        } else {
            std::ptr::null_mut()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random numbers and mutations

/// SplitMix64: tiny, deterministic, good enough for picking mutations.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    /// A random element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const INTERESTING_U32: [u32; 22] = [
    0,
    1,
    2,
    3,
    7,
    8,
    16,
    255,
    256,
    1000,
    16000,
    44100,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x0010_0000,
    0x4000_0000,
    8000,
    384_001,
];
const INTERESTING_TEXT: [&str; 24] = [
    "0",
    "-1",
    "1",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "-2147483648",
    "2147483647",
    "1e20",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "0.0",
    "-0",
    "65536",
    "16384",
    "16385",
    "7680",
    "3.5",
    "1_000",
    "0x10",
];
const INVALID_UTF8: [&[u8]; 8] = [
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    "\u{feff}".as_bytes(),
    "é€😀".as_bytes(),
];

/// Applies 1 to 8 random mutations to `data`; `pool` is for splicing, `dict` holds tokens of the
/// target's format.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[&[u8]]) {
    let most = if rng.one_in(4) { 8 } else { 3 };
    let n = 1 + rng.below(most);
    for _ in 0..n {
        mutate_once(rng, data, pool, dict);
    }
    data.truncate(MAX_INPUT);
}

fn offset(rng: &mut Rng, len: usize) -> usize {
    // Headers live at the start: bias towards the first 64 bytes.
    if rng.one_in(2) {
        rng.below(len.min(64) + 1)
    } else {
        rng.below(len + 1)
    }
}

fn mutate_once(rng: &mut Rng, d: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[&[u8]]) {
    let len = d.len();
    match rng.below(16) {
        0 if len > 0 => {
            let i = offset(rng, len - 1);
            d[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = offset(rng, len - 1);
            d[i] = rng.next() as u8;
        }
        2 if len > 0 => {
            let i = offset(rng, len - 1);
            d[i] =
                *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'\n', b'\r', b' ', b',', b'"', b'\t', b'=', b'0', b'9']);
        }
        3 if len >= 4 => {
            // An interesting integer, little or big endian, at an aligned header offset.
            let width = *rng.pick(&[2usize, 4]);
            let i = (offset(rng, len - width) / width * width).min(len - width);
            let v = *rng.pick(&INTERESTING_U32);
            let bytes = if rng.one_in(2) { v.to_le_bytes() } else { v.to_be_bytes() };
            let b = if width == 2 { &bytes[..2] } else { &bytes[..] };
            d[i..i + width].copy_from_slice(b);
        }
        4 if len > 0 => {
            let a = offset(rng, len - 1);
            let most = if rng.one_in(4) { len } else { 16 };
            let b = (a + 1 + rng.below(most)).min(len);
            d.drain(a..b);
        }
        5 if len > 0 => {
            // Duplicate a range, sometimes many times (very long lines).
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64)).min(len);
            let chunk = d[a..b].to_vec();
            let times = if rng.one_in(8) { 1 + rng.below(4096) } else { 1 };
            let at = offset(rng, len);
            let mut ins = Vec::with_capacity(chunk.len() * times);
            for _ in 0..times {
                ins.extend_from_slice(&chunk);
            }
            ins.truncate(MAX_INPUT.saturating_sub(len));
            d.splice(at..at, ins);
        }
        6 => {
            let at = offset(rng, len);
            let k = 1 + rng.below(16);
            let ins: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
            d.splice(at..at, ins);
        }
        7 if len > 0 => d.truncate(rng.below(len)),
        8 if !pool.is_empty() => {
            // Splice: a prefix of this input, a suffix of another.
            let other = rng.pick(pool);
            let a = rng.below(len + 1);
            let b = rng.below(other.len() + 1);
            d.truncate(a);
            d.extend_from_slice(&other[b..]);
        }
        9 | 10 if !dict.is_empty() => {
            let tok = *rng.pick(dict);
            let at = offset(rng, len);
            if rng.one_in(2) || len == 0 {
                d.splice(at..at, tok.iter().copied());
            } else {
                let end = (at + tok.len()).min(len);
                d.splice(at..end, tok.iter().copied());
            }
        }
        11 => {
            // Replace a decimal number of a text format by an interesting one.
            let starts: Vec<usize> = (0..len)
                .filter(|&i| d[i].is_ascii_digit() && (i == 0 || !d[i - 1].is_ascii_digit()))
                .collect();
            let tok = rng.pick(&INTERESTING_TEXT).as_bytes();
            if starts.is_empty() {
                let at = offset(rng, len);
                d.splice(at..at, tok.iter().copied());
            } else {
                let a = *rng.pick(&starts);
                let mut b = a;
                while b < len && (d[b].is_ascii_digit() || d[b] == b'.') {
                    b += 1;
                }
                d.splice(a..b, tok.iter().copied());
            }
        }
        12 => {
            let at = offset(rng, len);
            d.splice(at..at, rng.pick(&INVALID_UTF8).iter().copied());
        }
        13 if len > 1 => {
            // Swap two bytes.
            let (a, b) = (rng.below(len), rng.below(len));
            d.swap(a, b);
        }
        14 if len > 0 => {
            // Add or subtract a small number at an offset (lengths off by one).
            let i = offset(rng, len - 1);
            d[i] = d[i].wrapping_add((rng.below(33) as u8).wrapping_sub(16));
        }
        _ => {
            let at = offset(rng, len);
            let b = *rng.pick(b"\n\r\0 \",\t#[]\\");
            d.insert(at, b);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The loop

/// What one input did: `Ok(kind)` for accepted input, `Err(message)` for a clean rejection.
/// Invariant violations are panics (findings).
pub type Outcome = Result<String, String>;

/// A fuzz target.
pub struct Target {
    /// Name: the corpus folder under `tests/fuzz/corpus/` and the findings folder.
    pub name: &'static str,
    /// Tokens of the input format, inserted by mutations.
    pub dict: &'static [&'static [u8]],
}

/// Counters printed at the end of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs run.
    pub execs: u64,
    /// Seconds spent.
    pub secs: f64,
    /// Inputs that panicked or allocated too much (distinct by message).
    pub crashes: Vec<String>,
    /// The harness itself failed (e.g. a full disk while writing an input): the run stopped.
    pub harness_failure: Option<String>,
    /// Distinct outcome kinds seen.
    pub outcomes: usize,
    /// Inputs in the pool at the end (seeds plus those that produced a new outcome).
    pub pool: usize,
}

/// Run length per target: `AFFECTD_FUZZ_SECS` (default 2 s, so plain `cargo test` stays quick).
pub fn duration() -> Duration {
    let secs = std::env::var("AFFECTD_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(secs.clamp(0.0, 86_400.0))
}

/// The committed seed corpus of `target`.
pub fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no seed files", dir.display());
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// Where findings of `target` are saved: `<target dir>/fuzz-findings/<target>/`.
pub fn findings_dir(target: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("fuzz-findings").join(target)
}

/// Blanks the parts of a message that vary per input (numbers, quoted values, paths), leaving
/// its kind.
pub fn kind(msg: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut last_digit = false;
    for c in msg.chars().take(300) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
                out.push(c);
            }
            continue;
        }
        match c {
            '`' | '"' => {
                quote = Some(c);
                out.push(c);
                out.push('…');
            }
            c if c.is_ascii_digit() => {
                if !last_digit {
                    out.push('#');
                }
                last_digit = true;
                continue;
            }
            c => out.push(c),
        }
        last_digit = false;
    }
    // Temporary paths differ per run; words with digits are values (hex offsets, markers).
    out.split(' ')
        .map(|w| {
            if w.contains("/tmp") || w.contains("/.tmp") {
                "<path>"
            } else if w.contains('#')
                || w.rsplit(':')
                    .next()
                    .is_some_and(|h| h.len() >= 2 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                "#"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

thread_local! {
    static PANIC_MSG: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| q.get()) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                PANIC_MSG.with(|p| *p.borrow_mut() = Some(format!("panic at {at}: {msg}")));
            } else {
                default(info);
            }
        }));
    });
}

fn save(dir: &Path, prefix: &str, input: &[u8]) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in input {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let p = dir.join(format!("{prefix}-{h:016x}"));
    let _ = std::fs::write(&p, input);
    p
}

/// Shared between the fuzzing thread and the watchdog.
struct Progress {
    /// Milliseconds since `start` when the current input began, 0 when idle.
    began_ms: AtomicU64,
    current: Mutex<Vec<u8>>,
    done: AtomicBool,
}

/// Runs `target` for [`duration`] with `run` as the parser under test; prints the report and
/// panics (failing the test) on any crash or hang, naming the saved inputs.
pub fn fuzz<F>(target: Target, run: F) -> Report
where
    F: FnMut(&[u8]) -> Outcome + Send + 'static,
{
    install_panic_hook();
    let seeds = seeds(target.name);
    let findings = findings_dir(target.name);
    let budget = duration();
    let seed =
        std::env::var("AFFECTD_FUZZ_SEED").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
    let progress = Arc::new(Progress {
        began_ms: AtomicU64::new(0),
        current: Mutex::new(Vec::new()),
        done: AtomicBool::new(false),
    });
    let start = Instant::now();
    let worker = {
        let progress = progress.clone();
        let findings = findings.clone();
        let name = target.name;
        let dict = target.dict;
        std::thread::Builder::new()
            .name(format!("fuzz-{name}"))
            .spawn(move || fuzz_loop(name, dict, seeds, seed, budget, start, &findings, &progress, run))
            .expect("spawn the fuzzing thread")
    };
    // Watchdog: an input running longer than HANG is a hang; the thread cannot be killed, so the
    // input is saved and the test fails at once.
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if progress.done.load(Ordering::SeqCst) || worker.is_finished() {
            break;
        }
        let began = progress.began_ms.load(Ordering::SeqCst);
        let now = start.elapsed().as_millis() as u64;
        if began != 0 && now.saturating_sub(began) > HANG.as_millis() as u64 {
            let input = progress.current.lock().map(|c| c.clone()).unwrap_or_default();
            let p = save(&findings, "hang", &input);
            eprintln!(
                "fuzz {}: HANG: an input ran for more than {:?} (seed {seed}); saved in {}",
                target.name,
                HANG,
                p.display()
            );
            panic!("fuzz {}: 1 hang, input saved in {}", target.name, p.display());
        }
    }
    let report =
        worker.join().unwrap_or_else(|_| panic!("fuzz {}: the fuzzing thread itself panicked", target.name));
    eprintln!(
        "fuzz {}: {} execs in {:.1} s ({:.0}/s), {} crashes, 0 hangs, {} distinct outcomes, pool {} (seed {seed})",
        target.name,
        report.execs,
        report.secs,
        report.execs as f64 / report.secs.max(1e-9),
        report.crashes.len(),
        report.outcomes,
        report.pool
    );
    if let Some(why) = &report.harness_failure {
        panic!(
            "fuzz {}: the harness itself failed after {} execs (not a finding): {why}",
            target.name, report.execs
        );
    }
    if !report.crashes.is_empty() {
        panic!("fuzz {}: {} crashes:\n{}", target.name, report.crashes.len(), report.crashes.join("\n"));
    }
    report
}

#[allow(clippy::too_many_arguments)]
fn fuzz_loop<F>(
    name: &'static str,
    dict: &'static [&'static [u8]],
    seeds: Vec<(PathBuf, Vec<u8>)>,
    seed: u64,
    budget: Duration,
    start: Instant,
    findings: &Path,
    progress: &Progress,
    mut run: F,
) -> Report
where
    F: FnMut(&[u8]) -> Outcome,
{
    let dump: &'static Path = Box::leak(findings.join("alloc-refused").into_boxed_path());
    let _ = std::fs::create_dir_all(findings);
    DUMP_TO.with(|d| d.set(Some(dump)));
    let mut rng = Rng::new(seed);
    let mut pool: Vec<Vec<u8>> = seeds.iter().map(|(_, d)| d.clone()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut crash_kinds: HashSet<String> = HashSet::new();
    let mut report = Report::default();
    let mut i = 0usize;
    // AFFECTD_FUZZ_SHOW=1 prints every new outcome kind (to see what the feedback sees).
    let show = std::env::var_os("AFFECTD_FUZZ_SHOW").is_some();
    loop {
        let input: Vec<u8> = if i < seeds.len() {
            seeds[i].1.clone()
        } else {
            if start.elapsed() >= budget {
                break;
            }
            let mut d = rng.pick(&pool).clone();
            mutate(&mut rng, &mut d, &pool, dict);
            d
        };
        i += 1;
        if let Ok(mut c) = progress.current.lock() {
            c.clear();
            c.extend_from_slice(&input);
        }
        progress.began_ms.store(start.elapsed().as_millis().max(1) as u64, Ordering::SeqCst);
        PEAK.with(|p| p.set(0));
        CURRENT.with(|c| c.set((input.as_ptr(), input.len())));
        QUIET.with(|q| q.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| run(&input)));
        QUIET.with(|q| q.set(false));
        CURRENT.with(|c| c.set((std::ptr::null(), 0)));
        let peak = PEAK.with(|p| p.get());
        progress.began_ms.store(0, Ordering::SeqCst);
        report.execs += 1;
        let crash = match &result {
            Err(_) => Some(PANIC_MSG.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "panic".into())),
            Ok(_) if peak > ALLOC_FINDING => Some(format!(
                "allocation of {peak} bytes for a {}-byte input (limit {ALLOC_FINDING})",
                input.len()
            )),
            Ok(_) => None,
        };
        if let Some(msg) = crash.as_ref().filter(|m| m.contains(HARNESS_FAILURE)) {
            // The harness's own I/O failed (a full disk): not a finding; stop and say so.
            report.harness_failure = Some(msg.clone());
            break;
        }
        if let Some(msg) = crash {
            // One finding per place and message kind (values quoted in the message vary).
            let k = kind(msg.split(['\'', '`', '"']).next().unwrap_or(&msg));
            if crash_kinds.insert(k) {
                let p = save(findings, "crash", &input);
                let origin = if i <= seeds.len() {
                    format!(" (seed {})", seeds[i - 1].0.display())
                } else {
                    String::new()
                };
                eprintln!("fuzz {name}: CRASH{origin}: {msg}; input saved in {}", p.display());
                report.crashes.push(format!("{msg} -> {}", p.display()));
            }
            continue;
        }
        let k = match result {
            Ok(Ok(k)) => format!("ok: {}", kind(&k)),
            Ok(Err(e)) => format!("err: {}", kind(&e)),
            Err(_) => unreachable!("handled above"),
        };
        // A target that runs several readers joins their outcomes with " | ": an input is kept
        // when any of them is new.
        let mut new = false;
        for part in k.split(" | ") {
            if seen.len() < 100_000 && seen.insert(part.to_string()) {
                if show {
                    eprintln!("fuzz {name}: new outcome: {part}");
                }
                new = true;
            }
        }
        if new && i > seeds.len() && pool.len() < 4096 {
            pool.push(input);
        }
    }
    DUMP_TO.with(|d| d.set(None));
    progress.done.store(true, Ordering::SeqCst);
    report.secs = start.elapsed().as_secs_f64();
    report.outcomes = seen.len();
    report.pool = pool.len();
    report
}
