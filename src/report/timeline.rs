//! The SVG timeline of one session: lanes on one media-time axis (fused sentiment with its
//! confidence band, attention per modality, incongruence with the threshold and alerts, face,
//! voice, speech) and the hover text of each interval.

use super::*;

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
        match &f.dominant {
            Some(d) => w!(t, "\nface {d} (in {}/{} frames)", f.face_frames, f.frames),
            None => t.push_str("\nno face"),
        }
    }
    if let Some(v) = &r.modalities.voice {
        if let Some(e) = &v.emotion {
            w!(t, "\nvoice {} ({:.2})", e.label, e.confidence);
        }
    }
    if let Some(x) = &r.modalities.text {
        if x.words > 0 {
            w!(t, "\nspeech {:.1} s, {} words", x.speech_s, x.words);
            if let Some(s) = &x.sentiment {
                w!(t, ", words {}", s.label);
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

pub(super) fn timeline(o: &mut String, k: usize, s: &Session, sum: &Summary, opts: &ReportOptions) {
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
    let has_voice = s.intervals.iter().any(|r| r.modalities.voice.is_some());
    let has_video = s.intervals.iter().any(|r| r.inputs.video.is_some() || r.modalities.face.is_some());
    let segments: Vec<(f64, f64, String)> = s
        .intervals
        .iter()
        .filter_map(|r| r.modalities.text.as_ref()?.segments.as_ref())
        .flatten()
        .map(|g| (g.start_s, g.end_s, g.text.clone()))
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
            let (frames, seen) = (f.frames, f.face_frames);
            match f.dominant.as_deref() {
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
        if let Some(v) = &r.modalities.voice {
            let val = v.valence;
            let label = v.sentiment.as_ref().map_or("neutral", |s| s.label.as_str());
            match val {
                Some(val) => {
                    rect(o, label_class(label), bx, bw, l.voice.mid(), l.voice.signed(val), 2.0);
                    if let Some(e) = v.emotion.as_ref().map(|e| e.label.as_str()) {
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
                let sp = x.speech_s;
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
