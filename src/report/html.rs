//! Renders sessions as one self-contained HTML page: a header with the summary, then per session
//! an inline SVG timeline on one media-time axis (fused sentiment with a confidence band,
//! attention per modality, incongruence with the threshold and the alerts, face, voice, speech),
//! the alerts table and a per-interval table. Colours are the Okabe–Ito palette, every colour has
//! a text label next to it and negative marks are also hatched, so the page reads in greyscale
//! print. Hover details are SVG `<title>` elements: no script at all.
//!
//! Structure a test can rely on: each interval is exactly one element with class `iv` and a
//! `data-seq` attribute (the sentiment mark); each alert one element with class `alert`.

use super::{summarize, thumbs, ReportOptions, Session, Summary};
use crate::message::IntervalReport;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Class of the one element per interval (the fused-sentiment mark).
pub const INTERVAL_MARK_CLASS: &str = "iv";
/// Class of the one element per alert on the timeline.
pub const ALERT_MARK_CLASS: &str = "alert";

macro_rules! w {
    ($o:expr, $($t:tt)*) => {{
        let _ = write!($o, $($t)*);
    }};
}

/// Okabe–Ito colours (colour-blind safe) and the page's style.
const CSS: &str = r#"
:root{--neg:#D55E00;--neu:#8C8C8C;--pos:#0072B2;--face:#E69F00;--voice:#009E73;--text:#56B4E9;--inc:#CC79A7;--alert:#F0E442;--ink:#1a1a1a}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);margin:24px auto;max-width:1280px;padding:0 16px;-webkit-print-color-adjust:exact;print-color-adjust:exact}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:18px 0 6px}
.src{color:#444;margin:0 0 12px;word-break:break-all}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
dl.meta dt{color:#555}dl.meta dd{margin:0;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{border:1px solid #ccc;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:18px}.card span{color:#555;font-size:12px}
.share{display:flex;height:22px;border:1px solid #999;margin:8px 0 4px;max-width:720px}
.share div{height:100%}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:8px 0;font-size:13px}
.legend span{display:inline-flex;align-items:center;gap:5px}
.legend svg{border:1px solid #999}
.scroll{overflow-x:auto;border:1px solid #ddd;border-radius:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}
.note{color:#555;font-size:12px}
svg text{font-family:inherit}
.lt{font-size:12px;font-weight:600}.ls{font-size:10px;fill:#555}.tk{font-size:10px;fill:#444}
.neg{fill:url(#hn)}.neu{fill:var(--neu)}.pos{fill:var(--pos)}
.na{fill:none;stroke:#999;stroke-dasharray:2 2}
.band{fill:#000;fill-opacity:.12}
.af{fill:var(--face)}.av{fill:var(--voice)}.at{fill:var(--text)}
.ic{fill:var(--inc)}.ic.fl{stroke:#000;stroke-width:1}
.thr{stroke:#000;stroke-dasharray:5 3}
.alspan{fill:var(--alert);fill-opacity:.45}
.alert path{fill:#000}.alert text{font-size:11px;font-weight:600}
.sp{fill:#555}.spi{fill:#999}
.grid{stroke:#ddd}.zero{stroke:#777}.axis{stroke:#444}
.el{font-size:10px;fill:#000}
.hit{fill:#000;fill-opacity:0}.hit:hover{fill-opacity:.07}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}.thumbs figure{margin:0;font-size:12px}
@media print{body{margin:0;max-width:none}.scroll{overflow:visible;border:0}svg.chart{width:100%;height:auto}.hit{display:none}details:not([open]){display:none}}
"#;

/// Renders the whole page.
pub fn render(sessions: &[Session], opts: &ReportOptions) -> String {
    let mut o =
        String::with_capacity(64 * 1024 + sessions.iter().map(|s| s.intervals.len()).sum::<usize>() * 900);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    w!(o, "<title>affectd report: {}</title><style>{CSS}</style></head><body>\n", esc(&opts.source));
    // Shared SVG definitions (the hatch of negative marks), in a zero-size SVG.
    o.push_str("<svg width=\"0\" height=\"0\" style=\"position:absolute\" aria-hidden=\"true\"><defs><pattern id=\"hn\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"5\" height=\"5\" fill=\"#D55E00\"/><rect width=\"1.6\" height=\"5\" fill=\"#fff\" fill-opacity=\".6\"/></pattern></defs></svg>\n");
    w!(o, "<header><h1>Call report</h1><p class=\"src\">{}</p></header>\n", esc(&opts.source));
    legend(&mut o);
    for (k, s) in sessions.iter().enumerate() {
        let thumbs = opts.thumbnails.get(k).map(Vec::as_slice).unwrap_or(&[]);
        session(&mut o, k, s, sessions.len() > 1, opts, thumbs);
    }
    w!(
        o,
        "<footer><p class=\"note\">Generated by affectd {} from interval messages (docs/messages.md). Media time on the axis; estimates, not verdicts: read docs/fusion.md before acting on them.</p></footer>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    o
}

fn legend(o: &mut String) {
    o.push_str("<div class=\"legend\" aria-label=\"Legend\">");
    for (class, label) in [
        ("neg", "negative (hatched)"),
        ("neu", "neutral"),
        ("pos", "positive"),
        ("band", "confidence band: wider = less sure"),
        ("af", "attention: face"),
        ("av", "attention: voice"),
        ("at", "attention: words"),
        ("ic", "incongruence probability"),
        ("alspan", "alert span"),
        ("sp", "speech"),
    ] {
        w!(
            o,
            "<span><svg width=\"22\" height=\"12\" aria-hidden=\"true\"><rect class=\"{class}\" width=\"22\" height=\"12\"/></svg>{label}</span>"
        );
    }
    o.push_str("<span><svg width=\"22\" height=\"12\" aria-hidden=\"true\"><line class=\"thr\" x1=\"0\" y1=\"6\" x2=\"22\" y2=\"6\"/></svg>incongruence threshold</span>");
    o.push_str("<span><svg width=\"14\" height=\"12\" aria-hidden=\"true\"><path d=\"M7 12 L1 2 H13 Z\"/></svg>alert</span></div>\n");
}

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Media time as `m:ss` or `h:mm:ss`, with `decimals` digits of seconds.
pub fn clock(t: f64, decimals: usize) -> String {
    let scale = 10u64.pow(decimals as u32);
    let total = (t.max(0.0) * scale as f64).round() as u64;
    let (secs, frac) = (total / scale, total % scale);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = if decimals > 0 { format!(".{frac:0decimals$}") } else { String::new() };
    if h > 0 {
        format!("{h}:{m:02}:{s:02}{frac}")
    } else {
        format!("{m}:{s:02}{frac}")
    }
}

/// A duration in words: `42 s`, `3 min 05 s`, `1 h 02 min`.
fn span_words(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{:.1} s", secs),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s / 60) % 60),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn text_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `neg`/`neu`/`pos` for a sentiment label.
fn label_class(label: &str) -> &'static str {
    match label {
        "negative" => "neg",
        "positive" => "pos",
        _ => "neu",
    }
}

/// Which way a facial expression leans.
fn expression_class(expr: &str) -> &'static str {
    match expr {
        "angry" | "disgust" | "fear" | "sad" | "contempt" => "neg",
        "happy" => "pos",
        _ => "neu",
    }
}

/// The horizontal scale of one session's timeline.
struct Axis {
    t0: f64,
    t1: f64,
    /// Pixels per second.
    pps: f64,
    /// Left edge of the plot (after the label column).
    left: f64,
}

impl Axis {
    fn x(&self, t: f64) -> f64 {
        self.left + (t - self.t0) * self.pps
    }
    fn width(&self) -> f64 {
        (self.t1 - self.t0) * self.pps
    }
}

const LABEL_W: f64 = 160.0;
const RIGHT_PAD: f64 = 32.0;
const GAP: f64 = 14.0;

/// Vertical placement of one lane.
#[derive(Clone, Copy)]
struct Lane {
    y: f64,
    h: f64,
}

impl Lane {
    fn bottom(&self) -> f64 {
        self.y + self.h
    }
    fn mid(&self) -> f64 {
        self.y + self.h / 2.0
    }
    /// y of a value in [-1, 1] (up = positive), with a little headroom.
    fn signed(&self, v: f64) -> f64 {
        self.mid() - v.clamp(-1.0, 1.0) * (self.h / 2.0 - 2.0)
    }
    /// y of a value in [0, 1] from the bottom.
    fn unit(&self, v: f64) -> f64 {
        self.bottom() - v.clamp(0.0, 1.0) * (self.h - 2.0)
    }
}

struct Lanes {
    alerts: Lane,
    sentiment: Lane,
    attention: Lane,
    incongruence: Lane,
    face: Lane,
    voice: Lane,
    speech: Lane,
    axis_y: f64,
    height: f64,
}

fn lanes() -> Lanes {
    let mut y = 8.0;
    let mut next = |h: f64| {
        let l = Lane { y, h };
        y += h + GAP;
        l
    };
    let alerts = next(18.0);
    let sentiment = next(130.0);
    let attention = next(60.0);
    let incongruence = next(70.0);
    let face = next(50.0);
    let voice = next(50.0);
    let speech = next(26.0);
    let axis_y = speech.bottom() + 4.0;
    Lanes { alerts, sentiment, attention, incongruence, face, voice, speech, axis_y, height: axis_y + 24.0 }
}

/// The threshold to draw: the caller's (the config's), else the one the alerts carry.
fn threshold(s: &Session, opts: &ReportOptions) -> Option<f64> {
    opts.threshold.or_else(|| s.alerts.first().map(|a| a.threshold))
}

fn session(
    o: &mut String,
    k: usize,
    s: &Session,
    many: bool,
    opts: &ReportOptions,
    thumbs: &[Option<thumbs::Thumbnail>],
) {
    let sum = summarize(s);
    let first = &s.intervals[0];
    let interval_len = first.interval.end_s - first.interval.start_s;
    w!(o, "<section class=\"session\" id=\"session-{k}\">\n");
    if many {
        w!(o, "<h2>Session {} of the file: {}</h2>\n", k + 1, esc(&s.session_id));
    }
    header(o, s, &sum, interval_len);
    timeline(o, k, s, &sum, opts);
    alerts_table(o, s, thumbs);
    models(o, s);
    interval_table(o, s);
    o.push_str("</section>\n");
}

fn header(o: &mut String, s: &Session, sum: &Summary, interval_len: f64) {
    let first = &s.intervals[0];
    let last = &s.intervals[s.intervals.len() - 1];
    o.push_str("<dl class=\"meta\">");
    w!(
        o,
        "<dt>Duration</dt><dd>{} (media time {} – {})</dd>",
        span_words(sum.duration_s),
        clock(first.interval.start_s, 1),
        clock(last.interval.end_s, 1)
    );
    w!(o, "<dt>Started</dt><dd>{} (wall clock, UTC)</dd>", esc(&first.interval.wall_start));
    w!(o, "<dt>Device</dt><dd>{}</dd>", esc(&s.device_id));
    w!(o, "<dt>Session</dt><dd>{}</dd>", esc(&s.session_id));
    w!(
        o,
        "<dt>Intervals</dt><dd>{} of {:.1} s (seq {}–{})</dd>",
        sum.intervals,
        interval_len,
        first.seq,
        last.seq
    );
    let heads: BTreeSet<&str> =
        s.intervals.iter().filter_map(|r| r.fusion.as_ref()).map(|f| f.model.as_str()).collect();
    let heads: Vec<&str> = heads.into_iter().collect();
    w!(
        o,
        "<dt>Fusion head</dt><dd>{}</dd>",
        if heads.is_empty() { "none (fusion off)".to_string() } else { esc(&heads.join(", ")).into_owned() }
    );
    o.push_str("</dl>\n");
    o.push_str(
        "<h3>Summary</h3><div class=\"share\" role=\"img\" aria-label=\"Share of time by fused sentiment\">",
    );
    for (class, secs, label) in [
        ("neg", sum.negative_s, "negative"),
        ("neu", sum.neutral_s, "neutral"),
        ("pos", sum.positive_s, "positive"),
        ("na", sum.unknown_s, "no estimate"),
    ] {
        if secs <= 0.0 {
            continue;
        }
        let share = sum.share(secs);
        if class == "na" {
            w!(o, "<div title=\"{label}: {}\" style=\"width:{:.2}%;background:repeating-linear-gradient(90deg,#fff 0 4px,#bbb 4px 6px)\"></div>", pct(share), share * 100.0);
        } else {
            w!(o, "<div title=\"{label}: {}\" style=\"width:{:.2}%\"><svg width=\"100%\" height=\"100%\" aria-hidden=\"true\"><rect class=\"{class}\" width=\"100%\" height=\"100%\"/></svg></div>", pct(share), share * 100.0);
        }
    }
    o.push_str("</div>\n");
    w!(
        o,
        "<p>Share of time: <b>negative {}</b> ({}), <b>neutral {}</b> ({}), <b>positive {}</b> ({}), no estimate {} ({}).</p>\n",
        pct(sum.share(sum.negative_s)),
        span_words(sum.negative_s),
        pct(sum.share(sum.neutral_s)),
        span_words(sum.neutral_s),
        pct(sum.share(sum.positive_s)),
        span_words(sum.positive_s),
        pct(sum.share(sum.unknown_s)),
        span_words(sum.unknown_s)
    );
    o.push_str("<div class=\"cards\">");
    let card = |o: &mut String, big: String, small: &str| {
        w!(o, "<div class=\"card\"><b>{}</b><span>{}</span></div>", esc(&big), esc(small));
    };
    card(o, sum.alerts.to_string(), "alerts (unexpressed dissatisfaction)");
    card(o, sum.flagged.to_string(), "intervals flagged incongruent");
    match sum.longest_negative {
        Some((a, b)) => card(
            o,
            span_words(b - a),
            &format!("longest negative stretch ({} – {})", clock(a, 0), clock(b, 0)),
        ),
        None => card(o, "none".into(), "longest negative stretch"),
    }
    let dropped = if sum.frames + sum.frames_dropped > 0 {
        format!(
            "frames dropped of {} ({:.1} %)",
            sum.frames + sum.frames_dropped,
            100.0 * sum.frames_dropped as f64 / (sum.frames + sum.frames_dropped) as f64
        )
    } else {
        "frames dropped (no video)".to_string()
    };
    card(o, sum.frames_dropped.to_string(), &dropped);
    o.push_str("</div>\n");
}

/// Per-interval details shown on hover.
fn hover_text(r: &IntervalReport) -> String {
    let mut t = format!("#{} {}–{}", r.seq, clock(r.interval.start_s, 1), clock(r.interval.end_s, 1));
    match &r.sentiment {
        Some(s) => w!(t, "\nsentiment {} {:+.2} (confidence {:.2})", s.label, s.score, s.confidence),
        None => t.push_str("\nsentiment: no estimate"),
    }
    if let Some(f) = &r.fusion {
        let a = |m: &str| f.attention.get(m).copied().unwrap_or(0.0);
        w!(t, "\nattention face {:.2} · voice {:.2} · words {:.2}", a("face"), a("voice"), a("text"));
        for (m, why) in &f.missing {
            w!(t, "\n{m} missing: {why}");
        }
    }
    if let Some(i) = &r.incongruence {
        w!(t, "\nincongruence {:.2}{}", i.probability, if i.flag { " FLAGGED" } else { "" });
    }
    if let Some(f) = &r.modalities.face {
        match text_of(f, "dominant") {
            Some(d) => w!(
                t,
                "\nface {d} (in {}/{} frames)",
                f.get("face_frames").and_then(Value::as_u64).unwrap_or(0),
                f.get("frames").and_then(Value::as_u64).unwrap_or(0)
            ),
            None => t.push_str("\nno face"),
        }
    }
    if let Some(v) = &r.modalities.voice {
        if let Some(e) = v.get("emotion").filter(|e| !e.is_null()) {
            w!(
                t,
                "\nvoice {} ({:.2})",
                text_of(e, "label").unwrap_or("?"),
                num(e, "confidence").unwrap_or(0.0)
            );
        }
    }
    if let Some(x) = &r.modalities.text {
        let words = x.get("words").and_then(Value::as_u64).unwrap_or(0);
        if words > 0 {
            w!(t, "\nspeech {:.1} s, {words} words", num(x, "speech_s").unwrap_or(0.0));
            if let Some(s) = x.get("sentiment").filter(|s| !s.is_null()) {
                w!(t, ", words {}", text_of(s, "label").unwrap_or("?"));
            }
        }
    }
    t
}

fn lane_label(o: &mut String, lane: Lane, title: &str, sub: &str) {
    w!(o, "<text class=\"lt\" x=\"8\" y=\"{:.1}\">{}</text>", lane.y + 12.0, esc(title));
    if !sub.is_empty() {
        w!(o, "<text class=\"ls\" x=\"8\" y=\"{:.1}\">{}</text>", lane.y + 25.0, esc(sub));
    }
}

/// A rectangle from y `a` to y `b` (either order), at least `min_h` tall.
fn rect(o: &mut String, class: &str, x: f64, w: f64, a: f64, b: f64, min_h: f64) {
    let (mut top, mut h) = (a.min(b), (a - b).abs());
    if h < min_h {
        top -= (min_h - h) / 2.0;
        h = min_h;
    }
    w!(o, "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{h:.1}\"/>");
}

fn tick_step(pps: f64) -> f64 {
    const STEPS: [f64; 16] = [
        0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0,
    ];
    STEPS.into_iter().find(|s| s * pps >= 70.0).unwrap_or(14400.0)
}

fn timeline(o: &mut String, k: usize, s: &Session, sum: &Summary, opts: &ReportOptions) {
    let t0 = s.intervals[0].interval.start_s;
    let t1 = s.intervals[s.intervals.len() - 1].interval.end_s.max(t0 + 1e-3);
    let mut lens: Vec<f64> = s.intervals.iter().map(|r| r.interval.end_s - r.interval.start_s).collect();
    lens.sort_by(f64::total_cmp);
    let typical = lens[lens.len() / 2].max(1e-3);
    // At least 1000 px for the call, at least 4 px per interval (long calls scroll).
    let pps = (1000.0 / (t1 - t0)).max(4.0 / typical);
    let ax = Axis { t0, t1, pps, left: LABEL_W };
    let l = lanes();
    let width = LABEL_W + ax.width() + RIGHT_PAD;
    let thr = threshold(s, opts);
    let has_voice = s.intervals.iter().any(|r| r.modalities.voice.as_ref().is_some_and(|v| !v.is_null()));
    let has_video = s.intervals.iter().any(|r| r.inputs.video.is_some() || r.modalities.face.is_some());
    let segments: Vec<(f64, f64, String)> = s
        .intervals
        .iter()
        .filter_map(|r| r.modalities.text.as_ref()?.get("segments")?.as_array())
        .flatten()
        .filter_map(|g| {
            Some((num(g, "start_s")?, num(g, "end_s")?, text_of(g, "text").unwrap_or("").to_string()))
        })
        .collect();

    o.push_str("<h3>Timeline</h3>\n<div class=\"scroll\">");
    w!(
        o,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {width:.0} {h:.0}\" role=\"img\" aria-labelledby=\"tt{k} td{k}\">",
        h = l.height
    );
    w!(o, "<title id=\"tt{k}\">Timeline of session {}</title>", esc(&s.session_id));
    w!(
        o,
        "<desc id=\"td{k}\">{} intervals over {}: negative {}, neutral {}, positive {} of the time; {} alerts.</desc>",
        sum.intervals,
        span_words(sum.duration_s),
        pct(sum.share(sum.negative_s)),
        pct(sum.share(sum.neutral_s)),
        pct(sum.share(sum.positive_s)),
        sum.alerts
    );
    let top = l.alerts.y;
    let bottom = l.speech.bottom();
    // Alert spans behind everything.
    for a in &s.alerts {
        let (x0, x1) = (ax.x(a.start_s), ax.x(a.end_s));
        w!(
            o,
            "<rect class=\"alspan\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
            l.sentiment.y,
            (x1 - x0).max(1.0),
            l.incongruence.bottom() - l.sentiment.y
        );
    }
    // Vertical grid at the ticks.
    let step = tick_step(pps);
    let mut ticks = Vec::new();
    let mut t = (t0 / step).ceil() * step;
    while t <= t1 + 1e-9 {
        ticks.push(t);
        t += step;
    }
    for &t in &ticks {
        let x = ax.x(t);
        w!(o, "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>");
    }

    // Lane labels and scales.
    lane_label(o, l.alerts, "Alerts", "");
    lane_label(o, l.sentiment, "Fused sentiment", "score −1…+1 by label");
    w!(o, "<text class=\"ls\" x=\"8\" y=\"{:.1}\">grey band: confidence</text>", l.sentiment.y + 37.0);
    lane_label(o, l.attention, "Attention", "face / voice / words");
    lane_label(
        o,
        l.incongruence,
        "Incongruence",
        &match thr {
            Some(t) => format!("probability 0…1, threshold {t:.2}"),
            None => "probability 0…1".to_string(),
        },
    );
    lane_label(
        o,
        l.face,
        "Face",
        if has_video { "seen share, top expression" } else { "no video in this session" },
    );
    lane_label(o, l.voice, "Voice", if has_voice { "valence −1…+1, emotion" } else { "no voice estimates" });
    lane_label(
        o,
        l.speech,
        "Speech",
        if segments.is_empty() { "speech time (no transcripts)" } else { "utterances (hover: words)" },
    );
    let (xl, xr) = (ax.x(t0), ax.x(t1));
    for (lane, zero) in [(l.sentiment, true), (l.voice, has_voice)] {
        if zero {
            let y = lane.mid();
            w!(o, "<line class=\"zero\" x1=\"{xl:.1}\" y1=\"{y:.1}\" x2=\"{xr:.1}\" y2=\"{y:.1}\"/>");
        }
    }
    for (v, txt) in [(1.0, "+1"), (0.0, "0"), (-1.0, "−1")] {
        w!(
            o,
            "<text class=\"tk\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{txt}</text>",
            LABEL_W - 4.0,
            l.sentiment.signed(v) + 3.5
        );
    }
    for lane in [l.attention, l.incongruence, l.face] {
        let y = lane.bottom();
        w!(o, "<line class=\"grid\" x1=\"{xl:.1}\" y1=\"{y:.1}\" x2=\"{xr:.1}\" y2=\"{y:.1}\"/>");
        w!(o, "<text class=\"tk\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>", LABEL_W - 4.0, y);
        w!(
            o,
            "<text class=\"tk\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1</text>",
            LABEL_W - 4.0,
            lane.unit(1.0) + 7.0
        );
    }

    // Confidence band: the score ± (1 − confidence), one path per run of estimated intervals.
    let mut runs: Vec<Vec<(f64, f64, f64, f64)>> = Vec::new();
    let mut prev_end: Option<f64> = None;
    for r in &s.intervals {
        match &r.sentiment {
            Some(se) => {
                let u = (1.0 - se.confidence).clamp(0.0, 1.0);
                let p = (
                    ax.x(r.interval.start_s),
                    ax.x(r.interval.end_s),
                    l.sentiment.signed(se.score + u),
                    l.sentiment.signed(se.score - u),
                );
                match (runs.last_mut(), prev_end) {
                    (Some(run), Some(e)) if (r.interval.start_s - e).abs() < 1e-6 => run.push(p),
                    _ => runs.push(vec![p]),
                }
                prev_end = Some(r.interval.end_s);
            }
            None => prev_end = None,
        }
    }
    for run in &runs {
        o.push_str("<path class=\"band\" d=\"M");
        for (i, (x0, x1, hi, _)) in run.iter().enumerate() {
            w!(o, "{}{x0:.1} {hi:.1}H{x1:.1}", if i == 0 { "" } else { "V" });
        }
        for (x0, _, _, lo) in run.iter().rev() {
            w!(o, "V{lo:.1}H{x0:.1}");
        }
        o.push_str("Z\"/>");
    }

    for r in &s.intervals {
        let (x0, x1) = (ax.x(r.interval.start_s), ax.x(r.interval.end_s));
        let wd = x1 - x0;
        let gap = if wd > 6.0 { 1.0 } else { wd * 0.15 };
        let (bx, bw) = (x0 + gap / 2.0, (wd - gap).max(0.5));
        // The interval's one mark: the fused sentiment.
        match &r.sentiment {
            Some(se) => {
                let class = format!("{INTERVAL_MARK_CLASS} {}", label_class(&se.label));
                let (a, b) = (l.sentiment.mid(), l.sentiment.signed(se.score));
                let (mut top_y, mut h) = (a.min(b), (a - b).abs());
                if h < 3.0 {
                    top_y -= (3.0 - h) / 2.0;
                    h = 3.0;
                }
                w!(o, "<rect class=\"{class}\" data-seq=\"{}\" data-label=\"{}\" x=\"{bx:.1}\" y=\"{top_y:.1}\" width=\"{bw:.1}\" height=\"{h:.1}\"/>", r.seq, esc(&se.label));
                if bw >= 34.0 {
                    let short = match se.label.as_str() {
                        "negative" => "neg",
                        "positive" => "pos",
                        _ => "neu",
                    };
                    // Text label beside the colour: above a positive/neutral bar, below a negative one.
                    let ty = if se.score < 0.0 { top_y + h + 11.0 } else { top_y - 3.0 };
                    w!(o, "<text class=\"el\" x=\"{:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{short} {:+.2}</text>", bx + bw / 2.0, se.score);
                }
            }
            None => {
                let y = l.sentiment.mid() - 3.0;
                w!(o, "<rect class=\"{INTERVAL_MARK_CLASS} na\" data-seq=\"{}\" data-label=\"none\" x=\"{bx:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"6\"/>", r.seq);
            }
        }
        // Attention, stacked from the bottom: face, voice, words.
        if let Some(f) = &r.fusion {
            let mut y = l.attention.bottom();
            for (m, class) in [("face", "af"), ("voice", "av"), ("text", "at")] {
                let a = f.attention.get(m).copied().unwrap_or(0.0).clamp(0.0, 1.0);
                if a > 0.0 {
                    let h = a * (l.attention.h - 2.0);
                    rect(o, class, bx, bw, y, y - h, 0.0);
                    y -= h;
                }
            }
        }
        if let Some(i) = &r.incongruence {
            let class = if i.flag { "ic fl" } else { "ic" };
            rect(o, class, bx, bw, l.incongruence.bottom(), l.incongruence.unit(i.probability), 1.0);
        }
        if let Some(f) = &r.modalities.face {
            let frames = f.get("frames").and_then(Value::as_u64).unwrap_or(0);
            let seen = f.get("face_frames").and_then(Value::as_u64).unwrap_or(0);
            match text_of(f, "dominant") {
                Some(d) if seen > 0 => {
                    let share = if frames > 0 { seen as f64 / frames as f64 } else { 1.0 };
                    rect(o, expression_class(d), bx, bw, l.face.bottom(), l.face.unit(share), 1.0);
                    let label: Cow<str> = if bw >= 6.5 * d.len() as f64 {
                        Cow::Borrowed(d)
                    } else if bw >= 22.0 {
                        Cow::Owned(d.chars().take(3).collect())
                    } else {
                        Cow::Borrowed("")
                    };
                    if !label.is_empty() {
                        w!(o, "<text class=\"el\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#000\" style=\"paint-order:stroke;stroke:#fff;stroke-width:3px\">{}</text>", bx + bw / 2.0, l.face.bottom() - 5.0, esc(&label));
                    }
                }
                _ => rect(o, "na", bx, bw, l.face.bottom() - 6.0, l.face.bottom(), 6.0),
            }
        }
        if let Some(v) = r.modalities.voice.as_ref().filter(|v| !v.is_null()) {
            let val = num(v, "valence");
            let label = v.get("sentiment").and_then(|s| text_of(s, "label")).unwrap_or("neutral");
            match val {
                Some(val) => {
                    rect(o, label_class(label), bx, bw, l.voice.mid(), l.voice.signed(val), 2.0);
                    if let Some(e) = v.get("emotion").and_then(|e| text_of(e, "label")) {
                        if bw >= 6.5 * e.len() as f64 {
                            let ty = if val < 0.0 { l.voice.y + 10.0 } else { l.voice.bottom() - 2.0 };
                            w!(o, "<text class=\"el\" x=\"{:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{}</text>", bx + bw / 2.0, esc(e));
                        }
                    }
                }
                None => rect(o, "na", bx, bw, l.voice.mid() - 3.0, l.voice.mid() + 3.0, 6.0),
            }
        }
        if segments.is_empty() {
            if let Some(x) = &r.modalities.text {
                let sp = num(x, "speech_s").unwrap_or(0.0);
                if sp > 0.0 {
                    let frac = (sp / (r.interval.end_s - r.interval.start_s)).clamp(0.0, 1.0);
                    w!(
                        o,
                        "<rect class=\"spi\" x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
                        l.speech.y + 4.0,
                        (bw * frac).max(0.5),
                        l.speech.h - 8.0
                    );
                }
            }
        }
    }
    // Utterance spans with their (already redacted) words.
    for (a, b, txt) in &segments {
        let (x0, x1) = (ax.x(*a), ax.x(*b));
        w!(
            o,
            "<rect class=\"sp\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}–{}: {}</title></rect>",
            l.speech.y + 4.0,
            (x1 - x0).max(1.0),
            l.speech.h - 8.0,
            clock(*a, 1),
            clock(*b, 1),
            esc(txt)
        );
    }
    // Threshold.
    if let Some(t) = thr {
        let y = l.incongruence.unit(t);
        w!(o, "<line class=\"thr\" x1=\"{xl:.1}\" y1=\"{y:.1}\" x2=\"{xr:.1}\" y2=\"{y:.1}\"/>");
        w!(
            o,
            "<text class=\"tk\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{t:.2}</text>",
            LABEL_W - 4.0,
            y + 3.5
        );
    }
    // Alert markers.
    for (i, a) in s.alerts.iter().enumerate() {
        let x = ax.x(thumbs::alert_time(a));
        w!(
            o,
            "<g class=\"{ALERT_MARK_CLASS}\" data-alert=\"{}\"><path d=\"M{x:.1} {:.1}l-6 -11h12z\"/><text x=\"{:.1}\" y=\"{:.1}\">alert {}</text><title>Alert {}: {}–{}, incongruence {:.2} (threshold {:.2}); face {}, voice {}, words {}</title></g>",
            i + 1,
            l.alerts.bottom(),
            x + 8.0,
            l.alerts.bottom() - 2.0,
            i + 1,
            i + 1,
            clock(a.start_s, 1),
            clock(a.end_s, 1),
            a.probability,
            a.threshold,
            a.face.as_deref().unwrap_or("—"),
            a.voice.as_deref().unwrap_or("—"),
            a.words.as_deref().unwrap_or("—")
        );
    }
    if s.alerts.is_empty() {
        w!(
            o,
            "<text class=\"ls\" x=\"{:.1}\" y=\"{:.1}\">no alerts</text>",
            xl + 4.0,
            l.alerts.bottom() - 4.0
        );
    }
    // Hover targets: one per interval over the estimate lanes, with every detail as a tooltip.
    for r in &s.intervals {
        let (x0, x1) = (ax.x(r.interval.start_s), ax.x(r.interval.end_s));
        w!(
            o,
            "<rect class=\"hit\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
            l.sentiment.y,
            x1 - x0,
            l.voice.bottom() - l.sentiment.y,
            esc(&hover_text(r))
        );
    }
    // Time axis.
    w!(
        o,
        "<line class=\"axis\" x1=\"{xl:.1}\" y1=\"{:.1}\" x2=\"{xr:.1}\" y2=\"{:.1}\"/>",
        l.axis_y,
        l.axis_y
    );
    let decimals = if step < 1.0 { 1 } else { 0 };
    for &t in &ticks {
        let x = ax.x(t);
        w!(
            o,
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
            l.axis_y,
            l.axis_y + 4.0
        );
        w!(
            o,
            "<text class=\"tk\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            l.axis_y + 15.0,
            clock(t, decimals)
        );
    }
    w!(o, "<text class=\"ls\" x=\"8\" y=\"{:.1}\">media time</text>", l.axis_y + 15.0);
    o.push_str("</svg></div>\n");
    o.push_str("<p class=\"note\">Hover an interval for its details. Each interval is one column; alerts are marked above the chart with their span shaded.</p>\n");
}

fn alerts_table(o: &mut String, s: &Session, thumbs: &[Option<thumbs::Thumbnail>]) {
    w!(o, "<h3>Alerts ({})</h3>\n", s.alerts.len());
    if s.alerts.is_empty() {
        o.push_str("<p>No unexpressed-dissatisfaction alert was raised.</p>\n");
        return;
    }
    let with_thumbs = thumbs.iter().any(Option::is_some);
    o.push_str("<table><thead><tr><th>#</th><th>media time</th><th>intervals</th><th>incongruence</th><th>sentiment</th><th>face</th><th>voice</th><th>words</th><th>transcript</th>");
    if with_thumbs {
        o.push_str("<th>keyframe</th>");
    }
    o.push_str("</tr></thead><tbody>");
    for (i, a) in s.alerts.iter().enumerate() {
        let ivs: Vec<String> = a.intervals.iter().map(u64::to_string).collect();
        w!(
            o,
            "<tr><td>{}</td><td>{}–{}</td><td>{}</td><td>{:.2} (≥ {:.2})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            i + 1,
            clock(a.start_s, 1),
            clock(a.end_s, 1),
            ivs.join(", "),
            a.probability,
            a.threshold,
            a.sentiment.as_ref().map(|x| format!("{} {:+.2}", x.label, x.score)).unwrap_or_else(|| "—".into()),
            esc(a.face.as_deref().unwrap_or("—")),
            esc(a.voice.as_deref().unwrap_or("—")),
            esc(a.words.as_deref().unwrap_or("—")),
            esc(a.transcript.as_deref().unwrap_or("(not published)"))
        );
        if with_thumbs {
            match thumbs.get(i).and_then(Option::as_ref) {
                Some(t) => w!(
                    o,
                    "<td><img src=\"data:image/jpeg;base64,{}\" width=\"{}\" alt=\"frame at {}\"></td>",
                    t.jpeg_base64,
                    thumbs::WIDTH,
                    clock(t.t, 1)
                ),
                None => o.push_str("<td>—</td>"),
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>\n");
}

fn models(o: &mut String, s: &Session) {
    let mut all: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &s.intervals {
        for (k, v) in &r.models {
            all.entry(k.as_str()).or_default().insert(v.as_str());
        }
    }
    o.push_str("<details><summary>Model versions</summary><table><thead><tr><th>model</th><th>version</th></tr></thead><tbody>");
    if all.is_empty() {
        o.push_str("<tr><td colspan=\"2\">none recorded</td></tr>");
    }
    for (k, vs) in all {
        let vs: Vec<&str> = vs.into_iter().collect();
        w!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&vs.join(", ")));
    }
    o.push_str("</tbody></table></details>\n");
}

fn interval_table(o: &mut String, s: &Session) {
    o.push_str("<details><summary>Every interval as a table</summary><table><thead><tr><th>seq</th><th>media time</th><th>sentiment</th><th>confidence</th><th>attention face/voice/words</th><th>incongruence</th><th>face</th><th>voice</th><th>speech s</th></tr></thead><tbody>");
    for r in &s.intervals {
        let sent = r
            .sentiment
            .as_ref()
            .map(|x| format!("{} {:+.2}", x.label, x.score))
            .unwrap_or_else(|| "—".into());
        let conf = r.sentiment.as_ref().map(|x| format!("{:.2}", x.confidence)).unwrap_or_else(|| "—".into());
        let att = r
            .fusion
            .as_ref()
            .map(|f| {
                let a = |m: &str| f.attention.get(m).copied().unwrap_or(0.0);
                format!("{:.2}/{:.2}/{:.2}", a("face"), a("voice"), a("text"))
            })
            .unwrap_or_else(|| "—".into());
        let inc = r
            .incongruence
            .as_ref()
            .map(|i| format!("{:.2}{}", i.probability, if i.flag { " flagged" } else { "" }))
            .unwrap_or_else(|| "—".into());
        let face = r.modalities.face.as_ref().and_then(|f| text_of(f, "dominant")).unwrap_or("—");
        let voice = r
            .modalities
            .voice
            .as_ref()
            .and_then(|v| v.get("emotion"))
            .and_then(|e| text_of(e, "label"))
            .unwrap_or("—");
        let speech = r
            .modalities
            .text
            .as_ref()
            .and_then(|x| num(x, "speech_s"))
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "—".into());
        w!(
            o,
            "<tr><td>{}</td><td>{}–{}</td><td>{sent}</td><td>{conf}</td><td>{att}</td><td>{inc}</td><td>{}</td><td>{}</td><td>{speech}</td></tr>",
            r.seq,
            clock(r.interval.start_s, 1),
            clock(r.interval.end_s, 1),
            esc(face),
            esc(voice)
        );
    }
    o.push_str("</tbody></table></details>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_media_time() {
        assert_eq!(clock(0.0, 0), "0:00");
        assert_eq!(clock(65.4, 1), "1:05.4");
        assert_eq!(clock(59.96, 1), "1:00.0");
        assert_eq!(clock(3725.0, 0), "1:02:05");
    }

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(esc("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
        assert!(matches!(esc("plain"), Cow::Borrowed(_)));
    }
}
