//! A real Mosquitto broker for tests: generated config on a free loopback port, started and
//! stopped by the test; and a subscriber that records what it receives.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running mosquitto.
pub struct Broker {
    child: Option<Child>,
    /// Plain listener port.
    pub port: u16,
    /// Folder with its config, persistence and any certificates.
    pub dir: PathBuf,
    conf: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Broker {
    /// Starts mosquitto with `listener <port>` plus `extra` config lines (written into the config
    /// file; `{dir}` is replaced by the broker's folder).
    pub fn start(extra: &str) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        // Run as whoever runs the tests: as root, mosquitto would otherwise switch to the
        // `mosquitto` user and could not read the generated keys or write persistence here.
        let me = Command::new("id")
            .arg("-un")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let body = format!(
            "user {me}\nper_listener_settings false\npersistence true\npersistence_location {d}/\nlog_dest file {d}/broker.log\nlog_type all\nlistener {port} 127.0.0.1\n{extra}\n",
            d = dir.display(),
            extra = extra.replace("{dir}", &dir.display().to_string())
        );
        std::fs::write(&conf, body).unwrap();
        let mut b = Broker { child: None, port, dir, conf, _tmp: tmp };
        b.resume();
        b
    }

    /// (Re)starts the broker process on the same port and config.
    pub fn resume(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (apt-get install mosquitto)");
        self.child = Some(child);
        wait_port(self.port);
    }

    /// Stops the broker gracefully (SIGTERM: it saves its persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's log (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until something accepts connections on `port`.
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Payload parsed as JSON.
    pub json: serde_json::Value,
    /// The payload's bytes as received.
    pub payload: Vec<u8>,
    /// When it arrived.
    pub at: std::time::SystemTime,
    /// The broker's retain flag.
    pub retain: bool,
}

/// A subscriber with a persistent session (QoS 1), reconnecting by itself, recording messages.
pub struct Subscriber {
    /// Everything received so far.
    pub got: Arc<Mutex<Vec<Received>>>,
    client: rumqttc::Client,
}

impl Subscriber {
    /// Subscribes to `filter` on `port` with client id `id`; returns once the subscription is acknowledged.
    pub fn start(port: u16, id: &str, filter: &str) -> Subscriber {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = rumqttc::Client::new(o, 100);
        let got = Arc::new(Mutex::new(Vec::new()));
        let (sub_tx, sub_rx) = std::sync::mpsc::channel();
        let (g, c, f) = (got.clone(), client.clone(), filter.to_string());
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = c.try_subscribe(f.clone(), rumqttc::QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let json = serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null);
                        g.lock().unwrap().push(Received {
                            topic: p.topic.clone(),
                            json,
                            payload: p.payload.to_vec(),
                            at: std::time::SystemTime::now(),
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        sub_rx.recv_timeout(Duration::from_secs(10)).expect("subscription acknowledged");
        Subscriber { got, client }
    }

    /// Messages received on topics ending with `leaf`.
    pub fn on(&self, leaf: &str) -> Vec<Received> {
        self.got.lock().unwrap().iter().filter(|r| r.topic.ends_with(leaf)).cloned().collect()
    }

    /// Waits until `pred` holds for the received messages (or panics after `secs`).
    pub fn wait_for(&self, secs: u64, what: &str, pred: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if pred(&self.got.lock().unwrap()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:?}",
                self.got
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|r| (&r.topic, &r.json["seq"], &r.json["state"]))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

/// The retained status of `device` as a new subscriber sees it.
pub fn retained_status(port: u16, device: &str) -> serde_json::Value {
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            &format!("affectd/{device}/status"),
            "-C",
            "1",
            "-W",
            "5",
        ])
        .output()
        .expect("mosquitto_sub is installed (apt-get install mosquitto-clients)");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no retained status: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Writes a test PKI with openssl into `dir`: ca.pem, server.pem/server.key (localhost,
/// 127.0.0.1), client.pem/client.key.
pub fn make_pki(dir: &Path) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
        assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    let key = |name: &str| {
        run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name])
    };
    key("ca.key");
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-days",
        "2",
        "-subj",
        "/CN=affectd test CA",
        "-out",
        "ca.pem",
    ]);
    for (name, cn, ext) in [
        ("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "affectd-client", "extendedKeyUsage=clientAuth\n"),
    ] {
        key(&format!("{name}.key"));
        run(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }
}
