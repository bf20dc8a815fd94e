//! Keeps secrets out of logs, errors and child processes: URL user-info (`rtsp://user:pass@…`),
//! `password=` style parameters and every secret the configuration loaded (the MQTT password) are
//! replaced by `***` in every log line (see [`log_format`]) and in the errors the binary prints.

use std::borrow::Cow;
use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Environment variables never passed to child processes (ffmpeg, pipe sources): affectd's own
/// and any whose name says it holds a credential.
pub fn is_secret_env(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.starts_with("AFFECTD_")
        || ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "API_KEY", "APIKEY", "PRIVATE_KEY"]
            .iter()
            .any(|w| n.contains(w))
}

/// Registers a secret value (e.g. the MQTT password) so that it is masked wherever it appears.
/// Values shorter than 4 characters are not registered: masking them would garble ordinary text.
pub fn register(secret: &str) {
    let s = secret.trim();
    if s.chars().count() < 4 {
        return;
    }
    if let Ok(mut v) = SECRETS.write() {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
            // Longest first, so a secret containing another is masked whole.
            v.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }
}

/// `s` with URL user-info, `password=`-style values and registered secrets masked.
pub fn redact(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    if let Ok(v) = SECRETS.read() {
        for secret in v.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
    }
    if out.contains("://") {
        out = Cow::Owned(mask_userinfo(&out));
    }
    let lower = out.to_ascii_lowercase();
    if ["password=", "passwd=", "pwd=", "token=", "secret="].iter().any(|k| lower.contains(k)) {
        out = Cow::Owned(mask_params(&out));
    }
    out
}

/// Replaces the `user:password@` of every `scheme://user:password@host` with `***@`.
fn mask_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or backtick.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ')' | ';' | ','))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Masks the value after `password=`, `passwd=`, `pwd=`, `token=` and `secret=` (up to `&`,
/// whitespace or a quote), whatever the case of the key.
fn mask_params(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hit = ["password=", "passwd=", "pwd=", "token=", "secret="]
            .iter()
            .filter_map(|k| lower[i..].find(k).map(|p| (i + p, k.len())))
            .min();
        let Some((at, klen)) = hit else {
            out.push_str(&s[i..]);
            break;
        };
        let vstart = at + klen;
        out.push_str(&s[i..vstart]);
        let vend = s[vstart..]
            .find(|c: char| c == '&' || c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .map_or(s.len(), |p| vstart + p);
        if vend > vstart {
            out.push_str(MASK);
        }
        i = vend;
    }
    out
}

/// The log line format used by the binary: `[time level target] message`, message redacted.
pub fn log_format(buf: &mut env_logger::fmt::Formatter, record: &log::Record) -> std::io::Result<()> {
    use std::io::Write;
    let msg = record.args().to_string();
    writeln!(buf, "[{} {:<5} {}] {}", buf.timestamp(), record.level(), record.target(), redact(&msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_user_info_and_password_params_are_masked() {
        let s = "ffmpeg -rtsp_transport tcp -i rtsp://admin:hunter22@10.0.0.5:554/stream1 -f rawvideo -";
        assert_eq!(redact(s), "ffmpeg -rtsp_transport tcp -i rtsp://***@10.0.0.5:554/stream1 -f rawvideo -");
        assert_eq!(redact("`rtsp://u@cam/x`"), "`rtsp://***@cam/x`");
        assert_eq!(
            redact("http://cam/snap?user=a&Password=p4ss&x=1"),
            "http://cam/snap?user=a&Password=***&x=1"
        );
        assert_eq!(redact("no secrets here: mqtt://broker:1883"), "no secrets here: mqtt://broker:1883");
        assert!(matches!(redact("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn registered_secrets_are_masked_anywhere() {
        register("s3cr3t-mqtt-pw");
        register("ab"); // too short to register
        assert_eq!(redact("connect failed for s3cr3t-mqtt-pw at ab"), "connect failed for *** at ab");
    }

    #[test]
    fn credential_variables_are_recognised() {
        for n in
            ["AFFECTD_MQTT_PASSWORD", "RTSP_PASSWORD", "github_token", "AWS_SECRET_ACCESS_KEY", "MY_API_KEY"]
        {
            assert!(is_secret_env(n), "{n}");
        }
        for n in ["PATH", "HOME", "LANG", "GST_PLUGIN_PATH", "XDG_RUNTIME_DIR"] {
            assert!(!is_secret_env(n), "{n}");
        }
    }
}
