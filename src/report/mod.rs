//! The HTML report of an analysed call (`affectd analyze --report`, `affectd report`): reads
//! interval and alert messages (from a JSONL file, or collected from a running `analyze`), groups
//! them by session, summarises each session and renders one self-contained HTML file with inline
//! SVG ([`html`]). No network, no script framework: it opens from a USB stick on an offline kiosk.

pub mod html;
pub mod thumbs;

use crate::error::{Error, Result};
use crate::message::{
    AlertMessage, IntervalReport, Output, ALERT_SCHEMA, INTERVAL_SCHEMA, METRICS_SCHEMA, STATUS_SCHEMA,
};
use crate::sink::Sink;
use std::io::BufRead;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The messages of one session (one run of the agent), in media-time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    /// The session's id.
    pub session_id: String,
    /// The device's id.
    pub device_id: String,
    /// Interval messages, sorted by `seq`, duplicates (at-least-once delivery) removed.
    pub intervals: Vec<IntervalReport>,
    /// Alert messages, in the order they were raised.
    pub alerts: Vec<AlertMessage>,
}

/// Groups interval and alert messages by session, in order of first appearance; sorts each
/// session's intervals by `seq` and drops repeated `seq`s. Status and metrics are ignored.
pub fn sessions(messages: impl IntoIterator<Item = Output>) -> Vec<Session> {
    let mut out: Vec<Session> = Vec::new();
    fn slot<'a>(out: &'a mut Vec<Session>, session: &str, device: &str) -> &'a mut Session {
        if let Some(i) = out.iter().position(|s| s.session_id == session) {
            return &mut out[i];
        }
        out.push(Session { session_id: session.into(), device_id: device.into(), ..Default::default() });
        out.last_mut().expect("just pushed")
    }
    for m in messages {
        match m {
            Output::Interval(r) => slot(&mut out, &r.session_id, &r.device_id).intervals.push(*r),
            Output::Alert(a) => slot(&mut out, &a.session_id, &a.device_id).alerts.push(*a),
            Output::Status(_) | Output::Metrics(_) => {}
        }
    }
    for s in &mut out {
        s.intervals.sort_by_key(|r| r.seq);
        s.intervals.dedup_by_key(|r| r.seq);
        s.alerts.dedup_by(|a, b| a.intervals == b.intervals);
    }
    out.retain(|s| !s.intervals.is_empty());
    out
}

/// Reads a JSONL file of messages (as `affectd analyze --out` or the daemon's JSONL sink write
/// them). Blank lines are skipped, status and metrics lines ignored; anything else that is not a
/// valid interval or alert message is an error naming the file, the line and what is wrong.
pub fn read_jsonl(path: &Path) -> Result<Vec<Session>> {
    let file = std::fs::File::open(path).map_err(|e| Error::input(path, format!("cannot open: {e}")))?;
    let mut messages = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| Error::input(path, format!("line {n}: cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(m) = parse_line(&line).map_err(|why| Error::input(path, format!("line {n}: {why}")))? {
            messages.push(m);
        }
    }
    let out = sessions(messages);
    if out.is_empty() {
        return Err(Error::input(path, format!("no `{INTERVAL_SCHEMA}` messages in the file")));
    }
    Ok(out)
}

/// Parses one JSONL line: `Some` interval or alert, `None` for status and metrics lines.
fn parse_line(line: &str) -> std::result::Result<Option<Output>, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let Some(schema) = v.get("schema").and_then(|s| s.as_str()).map(str::to_owned) else {
        return Err(format!(
            "no \"schema\" field (expected a message with \"schema\": \"{INTERVAL_SCHEMA}\" or \"{ALERT_SCHEMA}\")"
        ));
    };
    match schema.as_str() {
        INTERVAL_SCHEMA => {
            let field = bad_field(&v, INTERVAL_FIELDS);
            let r: IntervalReport = serde_json::from_value(v)
                .map_err(|e| format!("not a valid {INTERVAL_SCHEMA} message: {}{e}", field.unwrap_or_default()))?;
            let (s, e) = (r.interval.start_s, r.interval.end_s);
            if !(s.is_finite() && e.is_finite() && s >= 0.0 && e > s) {
                return Err(format!(
                    "interval seq {} spans {s}..{e} s (allowed: 0 <= start_s < end_s)",
                    r.seq
                ));
            }
            Ok(Some(Output::Interval(Box::new(r))))
        }
        ALERT_SCHEMA => {
            let field = bad_field(&v, ALERT_FIELDS);
            let a: AlertMessage = serde_json::from_value(v)
                .map_err(|e| format!("not a valid {ALERT_SCHEMA} message: {}{e}", field.unwrap_or_default()))?;
            Ok(Some(Output::Alert(Box::new(a))))
        }
        STATUS_SCHEMA | METRICS_SCHEMA => Ok(None),
        other => Err(format!(
            "unknown schema {other:?} (allowed: {INTERVAL_SCHEMA}, {ALERT_SCHEMA}, {STATUS_SCHEMA}, {METRICS_SCHEMA})"
        )),
    }
}

/// A check that one field of a message has the right shape.
type FieldCheck = (&'static str, fn(&serde_json::Value) -> bool);

fn is<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> bool {
    T::deserialize(v).is_ok()
}

/// The top-level fields of an interval message and their types (to name the field at fault).
const INTERVAL_FIELDS: &[FieldCheck] = &[
    ("device_id", is::<String>),
    ("session_id", is::<String>),
    ("seq", is::<u64>),
    ("interval", is::<crate::message::IntervalSpan>),
    ("sentiment", is::<Option<crate::message::Sentiment>>),
    ("incongruence", is::<Option<crate::message::Incongruence>>),
    ("modalities", is::<crate::message::Modalities>),
    ("fusion", is::<Option<crate::message::FusionInfo>>),
    ("inputs", is::<crate::message::Inputs>),
    ("models", is::<std::collections::BTreeMap<String, String>>),
];

/// The top-level fields of an alert message and their types.
const ALERT_FIELDS: &[FieldCheck] = &[
    ("device_id", is::<String>),
    ("session_id", is::<String>),
    ("intervals", is::<Vec<u64>>),
    ("start_s", is::<f64>),
    ("end_s", is::<f64>),
    ("probability", is::<f64>),
    ("threshold", is::<f64>),
    ("sentiment", is::<Option<crate::message::Sentiment>>),
];

/// `field `x`: ` for the first present top-level field whose value has the wrong shape.
fn bad_field(v: &serde_json::Value, fields: &[FieldCheck]) -> Option<String> {
    fields.iter().find(|(k, ok)| v.get(*k).is_some_and(|x| !ok(x))).map(|(k, _)| format!("field `{k}`: "))
}

/// The figures in a report's header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Media time from the first interval's start to the last one's end, seconds.
    pub duration_s: f64,
    /// Seconds of intervals whose fused sentiment was negative.
    pub negative_s: f64,
    /// Seconds of intervals whose fused sentiment was neutral.
    pub neutral_s: f64,
    /// Seconds of intervals whose fused sentiment was positive.
    pub positive_s: f64,
    /// Seconds of intervals without a fused sentiment (nothing seen or heard, or fusion off).
    pub unknown_s: f64,
    /// Intervals.
    pub intervals: usize,
    /// Alerts raised.
    pub alerts: usize,
    /// Intervals flagged as incongruent.
    pub flagged: usize,
    /// The longest run of consecutive negative intervals: (start_s, end_s).
    pub longest_negative: Option<(f64, f64)>,
    /// Frames analysed.
    pub frames: u64,
    /// Frames dropped under load before analysis.
    pub frames_dropped: u64,
}

impl Summary {
    /// Share of the duration in `secs` (0 when the duration is 0).
    pub fn share(&self, secs: f64) -> f64 {
        if self.duration_s > 0.0 {
            secs / self.duration_s
        } else {
            0.0
        }
    }
}

/// Summarises one session.
pub fn summarize(s: &Session) -> Summary {
    let mut out = Summary { intervals: s.intervals.len(), alerts: s.alerts.len(), ..Default::default() };
    let (Some(first), Some(last)) = (s.intervals.first(), s.intervals.last()) else {
        return out;
    };
    out.duration_s = last.interval.end_s - first.interval.start_s;
    let mut run: Option<(f64, f64)> = None;
    for r in &s.intervals {
        let d = r.interval.end_s - r.interval.start_s;
        let label = r.sentiment.as_ref().map(|x| x.label.as_str());
        match label {
            Some("negative") => out.negative_s += d,
            Some("neutral") => out.neutral_s += d,
            Some("positive") => out.positive_s += d,
            _ => out.unknown_s += d,
        }
        if r.incongruence.as_ref().is_some_and(|i| i.flag) {
            out.flagged += 1;
        }
        if let Some(v) = &r.inputs.video {
            out.frames += v.frames;
            out.frames_dropped += v.dropped;
        }
        run = match (label == Some("negative"), run) {
            // A run continues only over contiguous intervals (no gap in media time).
            (true, Some((a, b))) if (r.interval.start_s - b).abs() < 1e-6 => Some((a, r.interval.end_s)),
            (true, _) => Some((r.interval.start_s, r.interval.end_s)),
            (false, _) => None,
        };
        if let Some((a, b)) = run {
            if out.longest_negative.is_none_or(|(x, y)| b - a > y - x + 1e-9) {
                out.longest_negative = Some((a, b));
            }
        }
    }
    out
}

/// What to render besides the messages.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// What the report is about, shown in the header (the recording or the JSONL file).
    pub source: String,
    /// The incongruence threshold, when known (from the config); alerts carry it too.
    pub threshold: Option<f64>,
    /// Keyframes at alert moments, per session (same order as the sessions' alerts).
    pub thumbnails: Vec<Vec<Option<thumbs::Thumbnail>>>,
}

/// Renders the sessions as one self-contained HTML document and writes it to `out`; with
/// `thumbnails_from`, a keyframe of that recording at each alert is embedded. Returns the size
/// of the file in bytes.
pub fn write_report(
    sessions: &[Session],
    source: &str,
    threshold: Option<f64>,
    thumbnails_from: Option<&Path>,
    out: &Path,
) -> Result<u64> {
    if sessions.is_empty() {
        return Err(Error::input(out, "no interval was published, so there is nothing to report"));
    }
    let thumbnails = match thumbnails_from {
        Some(rec) => thumbs::for_alerts(rec, sessions)?,
        None => Vec::new(),
    };
    let opts = ReportOptions { source: source.to_string(), threshold, thumbnails };
    let html = html::render(sessions, &opts);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(out, &html).map_err(|e| Error::io(out, e))?;
    Ok(html.len() as u64)
}

/// A sink that keeps every interval and alert message in memory, for `analyze --report`.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    messages: Arc<Mutex<Vec<Output>>>,
}

impl Collector {
    /// An empty collector; clone it to keep a handle after the pipeline takes the sink.
    pub fn new() -> Collector {
        Collector::default()
    }

    /// The collected messages grouped by session.
    pub fn sessions(&self) -> Vec<Session> {
        let msgs = self.messages.lock().map(|m| m.clone()).unwrap_or_default();
        sessions(msgs)
    }
}

impl Sink for Collector {
    fn name(&self) -> &str {
        "report"
    }

    fn publish(&mut self, msg: &Output) -> Result<()> {
        if matches!(msg, Output::Interval(_) | Output::Alert(_)) {
            self.messages
                .lock()
                .map_err(|_| Error::sink("report", "collector lock poisoned"))?
                .push(msg.clone());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(seq: u64, label: Option<&str>, session: &str) -> String {
        let sent = match label {
            Some(l) => format!(
                r#"{{"label":"{l}","score":0.0,"probs":{{"negative":0.3,"neutral":0.4,"positive":0.3}},"confidence":0.4}}"#
            ),
            None => "null".into(),
        };
        format!(
            r#"{{"schema":"affectd.interval/1","device_id":"d","session_id":"{session}","seq":{seq},"interval":{{"start_s":{s},"end_s":{e},"wall_start":"x","wall_end":"y","partial":false}},"sentiment":{sent},"incongruence":null,"modalities":{{"face":null,"voice":null,"text":null}},"fusion":null,"inputs":{{"video":{{"frames":10,"dropped":1,"luma_mean":0.5}},"audio":null}},"models":{{}}}}"#,
            s = seq as f64 * 5.0,
            e = seq as f64 * 5.0 + 5.0
        )
    }

    #[test]
    fn summary_counts_time_shares_and_the_longest_negative_run() {
        let labels = [Some("negative"), Some("negative"), Some("neutral"), None, Some("negative")];
        let msgs = labels
            .iter()
            .enumerate()
            .map(|(i, l)| parse_line(&interval(i as u64, *l, "s1")).unwrap().unwrap());
        let ss = sessions(msgs);
        assert_eq!(ss.len(), 1);
        let sum = summarize(&ss[0]);
        assert_eq!(sum.duration_s, 25.0);
        assert_eq!((sum.negative_s, sum.neutral_s, sum.positive_s, sum.unknown_s), (15.0, 5.0, 0.0, 5.0));
        assert_eq!(sum.longest_negative, Some((0.0, 10.0)));
        assert_eq!((sum.frames, sum.frames_dropped), (50, 5));
    }

    #[test]
    fn sessions_are_split_sorted_and_deduplicated() {
        let lines =
            [interval(1, None, "a"), interval(0, None, "a"), interval(0, None, "b"), interval(1, None, "a")];
        let ss = sessions(lines.iter().map(|l| parse_line(l).unwrap().unwrap()));
        assert_eq!(ss.len(), 2);
        assert_eq!(ss[0].intervals.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(ss[1].session_id, "b");
    }

    #[test]
    fn bad_lines_name_the_file_the_line_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("call.jsonl");
        let cases: [(String, &str); 6] = [
            (format!("{}\n{{\"schema\": 3", interval(0, None, "a")), "line 2: not JSON"),
            (format!("\n\n{}", r#"{"seq":1}"#), "line 3: no \"schema\" field"),
            (
                r#"{"schema":"affectd.interval/1","seq":1}"#.into(),
                "line 1: not a valid affectd.interval/1 message: missing field",
            ),
            (
                r#"{"schema":"affectd.interval/1","seq":"one"}"#.into(),
                "line 1: not a valid affectd.interval/1 message: field `seq`: invalid type",
            ),
            (r#"{"schema":"other/9"}"#.into(), "line 1: unknown schema \"other/9\""),
            (r#"{"schema":"affectd.status/1"}"#.into(), "no `affectd.interval/1` messages"),
        ];
        for (body, want) in cases {
            std::fs::write(&p, body).unwrap();
            let e = read_jsonl(&p).unwrap_err().to_string();
            assert!(e.contains("call.jsonl") && e.contains(want), "{e} (wanted {want})");
        }
        let e = read_jsonl(&dir.path().join("missing.jsonl")).unwrap_err().to_string();
        assert!(e.contains("missing.jsonl") && e.contains("cannot open"), "{e}");
        let bad_span = interval(0, None, "a").replace("\"end_s\":5", "\"end_s\":0");
        std::fs::write(&p, bad_span).unwrap();
        let e = read_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("line 1: interval seq 0 spans 0..0 s"), "{e}");
    }
}
