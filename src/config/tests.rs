use super::*;

fn parse(s: &str) -> Result<Config> {
    let c = Config::parse(s, Path::new("test.toml"))?;
    c.validate(Path::new("test.toml"))?;
    Ok(c)
}

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn unknown_key_names_file_key_and_allowed_keys() {
    let e = parse("[pipeline]\ninterval = 5\n").unwrap_err().to_string();
    assert!(e.starts_with("test.toml: "), "{e}");
    assert!(e.contains("line 2, key `pipeline.interval`"), "{e}");
    assert!(e.contains("interval_s") && e.contains("analysis_fps"), "should list allowed keys: {e}");
}

#[test]
fn unknown_source_kind_lists_allowed_kinds() {
    let e = parse("[source.video]\nkind = \"camera\"\n").unwrap_err().to_string();
    assert!(e.contains("key `source.video.kind`"), "{e}");
    assert!(e.contains("camera") && e.contains("none") && e.contains("file"), "{e}");
    assert!(e.contains("webcam") && e.contains("pipe"), "{e}");
    let e = parse("[source.audio]\nkind = \"camera\"\n").unwrap_err().to_string();
    assert!(e.contains("key `source.audio.kind`") && e.contains("mic"), "{e}");
}

#[test]
fn live_sources_parse_with_defaults_and_are_checked() {
    let c = parse("[source.video]\nkind = \"webcam\"\n[source.audio]\nkind = \"mic\"\n").unwrap();
    assert_eq!(
        c.source.video,
        VideoSourceConfig::Webcam {
            device: String::new(),
            width: 640,
            height: 480,
            fps: 30,
            format: crate::source::webcam::WebcamFormat::Auto,
            reconnect_max_s: 30.0
        }
    );
    assert_eq!(
        c.source.audio,
        AudioSourceConfig::Mic { device: String::new(), sample_rate: 0, restart_max_s: 30.0 }
    );
    let pipe =
        "[source.video]\nkind = \"pipe\"\ncommand = [\"cam\"]\nwidth = 640\nheight = 480\nfps = 15.0\n";
    let e = parse(&format!("{pipe}pixel_format = \"bgr48\"\n")).unwrap_err().to_string();
    assert!(e.contains("source.video.pixel_format") && e.contains("yuv420p") && e.contains("rgb24"), "{e}");
    let e = parse(pipe).unwrap_err().to_string();
    assert!(e.contains("pixel_format"), "missing field is named: {e}");
    let e = parse(
        &pipe
            .replace("width = 640", "width = 641")
            .replace("fps = 15.0\n", "fps = 15.0\npixel_format = \"nv12\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("source.video.pixel_format") && e.contains("641x480") && e.contains("even"), "{e}");
    let e = parse(
        &pipe.replace("[\"cam\"]", "[]").replace("fps = 15.0\n", "fps = 15.0\npixel_format = \"rgb24\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("source.video.command") && e.contains("a program"), "{e}");
    let e = parse("[source.video]\nkind = \"webcam\"\nformat = \"h264\"\n").unwrap_err().to_string();
    assert!(e.contains("source.video.format") && e.contains("mjpeg") && e.contains("auto"), "{e}");
    let e = parse("[source.audio]\nkind = \"mic\"\nsample_rate = 100\n").unwrap_err().to_string();
    assert!(e.contains("source.audio.sample_rate") && e.contains("8000"), "{e}");
    let e = parse("[source.audio]\nkind = \"mic\"\nchannels = 2\n").unwrap_err().to_string();
    assert!(e.contains("channels") && e.contains("sample_rate"), "unknown key lists allowed ones: {e}");
}

#[test]
fn fusion_values_are_checked() {
    let e = parse("[fusion]\nincongruence_threshold = 1.5\n").unwrap_err().to_string();
    assert!(e.contains("key `fusion.incongruence_threshold` = 1.5: allowed: 0 to 1"), "{e}");
    let e = parse("[fusion]\nalert_after = 0\n").unwrap_err().to_string();
    assert!(e.contains("key `fusion.alert_after` = 0"), "{e}");
    let e = parse("[fusion]\nalert_every = 3\n").unwrap_err().to_string();
    assert!(e.contains("alert_every"), "{e}");
    assert!(!parse("[fusion]\nenabled = false\n").unwrap().fusion.enabled);
}

#[test]
fn out_of_range_values_name_the_key() {
    let e = parse("[pipeline]\ninterval_s = 0.0\n").unwrap_err().to_string();
    assert!(e.contains("pipeline.interval_s") && e.contains("0.1 to 3600"), "{e}");
    let e = parse("device_id = \"kiosk/7\"\n").unwrap_err().to_string();
    assert!(e.contains("device_id") && e.contains("kiosk/7"), "{e}");
    let e = parse("[pipeline]\nvideo_overflow = \"sometimes\"\n").unwrap_err().to_string();
    assert!(e.contains("block") && e.contains("drop_oldest"), "{e}");
}

#[test]
fn customer_choice_is_parsed_and_checked() {
    use crate::vision::customer::CustomerPolicy;
    assert_eq!(parse("").unwrap().vision.customer, CustomerPolicy::Largest);
    let c = parse("[vision]\ncustomer = \"most_central\"\n").unwrap();
    assert_eq!(c.vision.customer, CustomerPolicy::MostCentral);
    let c = parse("[vision]\ncustomer = { region = [0.5, 0.0, 1.0, 1.0] }\n").unwrap();
    assert_eq!(c.vision.customer, CustomerPolicy::Region([0.5, 0.0, 1.0, 1.0]));
    assert_eq!(parse(&c.to_toml()).unwrap(), c, "a region round-trips through config check");
    let e = parse("[vision]\ncustomer = \"biggest\"\n").unwrap_err().to_string();
    assert!(
        e.contains("key `vision.customer`") && e.contains("largest") && e.contains("most_central"),
        "{e}"
    );
    assert!(e.contains("region"), "{e}");
    let e = parse("[vision]\ncustomer = { region = [0.6, 0.0, 0.4, 1.0] }\n").unwrap_err().to_string();
    assert!(
        e.contains("key `vision.customer` = { region = [0.6, 0, 0.4, 1] }: allowed:")
            && e.contains("0 <= x0 < x1 <= 1"),
        "{e}"
    );
    let e = parse("[vision]\ncustomer_gap_s = -1.0\n").unwrap_err().to_string();
    assert!(e.contains("key `vision.customer_gap_s` = -1: allowed: 0 to 600 seconds"), "{e}");
    let e = parse("[vision]\nexpression_every = 0\n").unwrap_err().to_string();
    assert!(e.contains("key `vision.expression_every` = 0: allowed: 1 to 10"), "{e}");
}

#[test]
fn wrong_type_is_reported() {
    let e = parse("[pipeline]\nanalysis_fps = \"ten\"\n").unwrap_err().to_string();
    assert!(e.contains("key `pipeline.analysis_fps`"), "{e}");
    assert!(e.contains("float") || e.contains("string"), "{e}");
}

#[test]
fn effective_config_round_trips() {
    let mut c = Config::default();
    c.source.video = VideoSourceConfig::File { path: "a.mp4".into(), realtime: true };
    let back = parse(&c.to_toml()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn broker_urls() {
    assert_eq!(
        BrokerUrl::parse("mqtt://localhost"),
        Ok(BrokerUrl { tls: false, host: "localhost".into(), port: 1883 })
    );
    assert_eq!(
        BrokerUrl::parse("mqtts://b.example:9000/"),
        Ok(BrokerUrl { tls: true, host: "b.example".into(), port: 9000 })
    );
    assert_eq!(
        BrokerUrl::parse("mqtt://[::1]:1884"),
        Ok(BrokerUrl { tls: false, host: "::1".into(), port: 1884 })
    );
    assert!(BrokerUrl::parse("http://x").unwrap_err().contains("allowed: mqtt://"));
    assert!(BrokerUrl::parse("mqtt://x:0").unwrap_err().contains("bad port"));
    assert!(BrokerUrl::parse("mqtt://u:p@x").is_err());
}

#[test]
fn mqtt_settings_are_checked() {
    let e = parse("[sink.mqtt]\nenabled = true\nurl = \"mqtts://h\"\n").unwrap_err().to_string();
    assert!(e.contains("sink.mqtt.ca_file") && e.contains("required with mqtts"), "{e}");
    let e = parse("[sink.mqtt]\nenabled = true\nurl = \"tcp://h\"\n").unwrap_err().to_string();
    assert!(e.contains("sink.mqtt.url") && e.contains("allowed"), "{e}");
    let e = parse("[sink.mqtt]\nenabled = true\ntopic_prefix = \"a/#\"\n").unwrap_err().to_string();
    assert!(e.contains("sink.mqtt.topic_prefix"), "{e}");
}

#[test]
fn durations_too_large_for_a_clock_are_rejected_by_name() {
    // Each of these once passed `config check` and then panicked `affectd run` (Duration overflow).
    for (toml, key) in [
        ("[pipeline]\nmetrics_interval_s = 1e20\n", "pipeline.metrics_interval_s"),
        ("[sink.mqtt]\nbackoff_max_s = 1e20\n", "sink.mqtt.backoff_max_s"),
        ("[sink.mqtt]\nflush_timeout_s = 1e20\n", "sink.mqtt.flush_timeout_s"),
        ("[sink.mqtt]\nflush_timeout_s = nan\n", "sink.mqtt.flush_timeout_s"),
        ("[sink.mqtt]\nspool_max_bytes = 1125899906842624\n", "sink.mqtt.spool_max_bytes"),
    ] {
        let e = parse(toml).unwrap_err().to_string();
        assert!(e.contains(&format!("key `{key}`")) && e.contains("allowed:"), "{toml}: {e}");
    }
    assert_eq!(crate::source::secs_duration(1e20), std::time::Duration::from_secs(365 * 86_400));
    assert_eq!(crate::source::secs_duration(f64::NAN), std::time::Duration::ZERO);
}

#[test]
fn missing_file_is_named() {
    let e = Config::load(Path::new("/nonexistent/affectd.toml")).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/affectd.toml") && e.contains("cannot read"), "{e}");
}
