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

// After the macro, so the timeline module can use `w!`.
#[path = "timeline.rs"]
mod timeline;
use timeline::timeline;

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
        let face = r.modalities.face.as_ref().and_then(|f| f.dominant.as_deref()).unwrap_or("—");
        let voice =
            r.modalities.voice.as_ref().and_then(|v| v.emotion.as_ref()).map_or("—", |e| e.label.as_str());
        let speech =
            r.modalities.text.as_ref().map(|x| format!("{:.1}", x.speech_s)).unwrap_or_else(|| "—".into());
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
