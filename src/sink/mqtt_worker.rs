//! The MQTT connection thread: connects and reconnects with backoff, publishes spooled
//! messages in order, deletes each on its PUBACK, and tells transient faults from fatal ones.

use super::*;

pub(super) enum Outcome {
    Closed,
    Lost(String),
    Fatal(String),
}

pub(super) struct Worker {
    pub(super) opts: MqttOptions,
    pub(super) spool: Arc<Mutex<Spool>>,
    pub(super) cmd: Receiver<Cmd>,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) status_topic: String,
    pub(super) metrics_topic: String,
    pub(super) backoff_max: Duration,
    pub(super) status: Option<Vec<u8>>,
    pub(super) retained: Vec<crate::sink::ha_discovery::Retained>,
    pub(super) closing: Option<Instant>,
}

/// A small xorshift for back-off jitter (no need for cryptographic randomness).
pub(super) fn jitter(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

impl Worker {
    pub(super) fn set_shared(&self, f: impl FnOnce(&mut Shared)) {
        if let Ok(mut s) = self.shared.lock() {
            f(&mut s);
        }
    }

    pub(super) fn run(mut self) {
        let mut backoff = Duration::from_millis(500);
        let mut rng =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0x9e37, |d| d.as_nanos() as u64)
                | 1;
        loop {
            let connects_before = self.shared.lock().map(|s| s.connects).unwrap_or(0);
            match self.connection() {
                Outcome::Closed => return,
                Outcome::Fatal(msg) => {
                    log::error!("mqtt: {msg}");
                    self.set_shared(|s| s.fatal = Some(msg));
                    return;
                }
                Outcome::Lost(why) => {
                    self.set_shared(|s| s.connected = false);
                    log::warn!(
                        "mqtt: connection lost or refused ({why}); retrying in about {:.1} s",
                        backoff.as_secs_f64()
                    );
                }
            }
            if self.shared.lock().map(|s| s.connects).unwrap_or(0) > connects_before {
                backoff = Duration::from_millis(500);
            }
            let wait = backoff.mul_f64(0.5 + jitter(&mut rng));
            backoff = (backoff * 2).min(self.backoff_max);
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if self.closing.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                match self.cmd.recv_timeout(
                    until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)),
                ) {
                    Ok(Cmd::Status(s)) => self.status = Some(s),
                    Ok(Cmd::Retained(r)) => self.retained = r,
                    Ok(Cmd::Close(d)) => self.closing = Some(d),
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        self.closing = Some(self.closing.unwrap_or_else(Instant::now))
                    }
                }
            }
            if self.closing.is_some_and(|d| Instant::now() >= d) {
                return;
            }
        }
    }

    /// Publishes the retained (discovery) messages, QoS 1.
    pub(super) fn publish_retained(&self, client: &Client, requested: &mut VecDeque<Option<u64>>) {
        for r in &self.retained {
            if client.try_publish(&r.topic, QoS::AtLeastOnce, true, r.payload.clone()).is_ok() {
                requested.push_back(None);
            }
        }
    }

    /// One connection, from CONNECT until it is lost or closed.
    pub(super) fn connection(&mut self) -> Outcome {
        let (client, mut conn) = Client::new(self.opts.clone(), 256);
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let pump = std::thread::Builder::new().name("mqtt-io".into()).spawn(move || {
            for ev in conn.iter() {
                let end = ev.is_err();
                if ev_tx.send(ev).is_err() || end {
                    break;
                }
            }
        });
        let pump = match pump {
            Ok(p) => p,
            Err(e) => return Outcome::Fatal(format!("cannot spawn thread: {e}")),
        };
        let outcome = self.drive(&client, &ev_rx);
        drop(client);
        // The pump ends once its connection fails or the client is gone.
        let _ = pump.join();
        outcome
    }

    pub(super) fn drive(
        &mut self,
        client: &Client,
        events: &Receiver<std::result::Result<Event, ConnectionError>>,
    ) -> Outcome {
        let mut connected = false;
        let mut requested: VecDeque<Option<u64>> = VecDeque::new();
        let mut inflight: HashMap<u16, Option<u64>> = HashMap::new();
        let mut cursor: Option<u64> = None;
        let mut disconnecting = false;
        loop {
            // Commands from the pipeline.
            loop {
                let cmd = match self.cmd.try_recv() {
                    Ok(c) => c,
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        self.closing.get_or_insert_with(Instant::now);
                        break;
                    }
                };
                match cmd {
                    Cmd::Wake => {}
                    Cmd::Retained(r) => {
                        self.retained = r;
                        if connected {
                            self.publish_retained(client, &mut requested);
                        }
                    }
                    Cmd::Status(s) => {
                        if connected
                            && client
                                .try_publish(&self.status_topic, QoS::AtLeastOnce, true, s.clone())
                                .is_ok()
                        {
                            requested.push_back(None);
                        }
                        self.status = Some(s);
                    }
                    Cmd::Metrics(m) => {
                        if connected
                            && client.try_publish(&self.metrics_topic, QoS::AtMostOnce, false, m).is_ok()
                        {
                            requested.push_back(None);
                        }
                    }
                    Cmd::Close(d) => self.closing = Some(d),
                }
            }
            // Spooled messages, oldest first, a bounded number in flight.
            if connected && !disconnecting {
                while requested.len() + inflight.len() < MAX_INFLIGHT {
                    let rec = {
                        let Ok(mut spool) = self.spool.lock() else {
                            return Outcome::Fatal("spool lock poisoned".into());
                        };
                        match spool.next_after(cursor) {
                            Some(id) => (id, spool.read(id)),
                            None => break,
                        }
                    };
                    let rec = match rec {
                        (_, Ok(Some(r))) => r,
                        // Torn or corrupt: quarantined and counted by the spool; go on with the next.
                        (id, Ok(None)) => {
                            cursor = Some(id);
                            continue;
                        }
                        (id, Err(e)) => {
                            // Unreadable (I/O): skip it this connection; it stays for the next.
                            log::error!("mqtt: {e}");
                            cursor = Some(id);
                            continue;
                        }
                    };
                    if client.try_publish(&rec.topic, QoS::AtLeastOnce, false, rec.payload).is_err() {
                        break;
                    }
                    requested.push_back(Some(rec.id));
                    cursor = Some(rec.id);
                }
            }
            // Closing: once everything is acknowledged (or time is up), say goodbye.
            if let Some(deadline) = self.closing {
                let drained = self.spool.lock().map(|s| s.is_empty()).unwrap_or(true)
                    && inflight.is_empty()
                    && requested.is_empty();
                if Instant::now() >= deadline
                    || (connected && drained && !disconnecting)
                    || (!connected && Instant::now() >= deadline)
                {
                    if connected && !disconnecting {
                        disconnecting = true;
                        let _ = client.try_disconnect();
                    } else if !connected || Instant::now() >= deadline + Duration::from_secs(1) {
                        return Outcome::Closed;
                    }
                }
            }
            match events.recv_timeout(Duration::from_millis(20)) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    connected = true;
                    self.set_shared(|s| {
                        s.connected = true;
                        s.connects += 1;
                    });
                    log::info!("mqtt: connected");
                    self.publish_retained(client, &mut requested);
                    if let Some(s) = &self.status {
                        if client.try_publish(&self.status_topic, QoS::AtLeastOnce, true, s.clone()).is_ok() {
                            requested.push_back(None);
                        }
                    }
                }
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(entry) = requested.pop_front() {
                        if pkid != 0 {
                            inflight.insert(pkid, entry);
                        }
                    }
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(Some(id)) = inflight.remove(&ack.pkid) {
                        if let Ok(mut s) = self.spool.lock() {
                            if let Err(e) = s.ack(id) {
                                return Outcome::Fatal(e.to_string());
                            }
                        }
                    }
                }
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) if disconnecting => {}
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    if disconnecting {
                        return Outcome::Closed;
                    }
                    return classify(e);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return if disconnecting {
                        Outcome::Closed
                    } else {
                        Outcome::Lost("event loop ended".into())
                    };
                }
            }
        }
    }
}

/// I/O errors in a TLS handshake that say the connection went away (worth retrying), as opposed
/// to certificate problems (rustls reports those as `InvalidData`).
pub(super) fn tls_io_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            | NotConnected
            | Interrupted
            | WouldBlock
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    )
}

/// Refused credentials and certificate failures are configuration problems: retrying cannot help.
pub(super) fn classify(e: ConnectionError) -> Outcome {
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => {
                Outcome::Fatal("the broker refused the connection: bad user name or password (check sink.mqtt.username and AFFECTD_MQTT_PASSWORD / sink.mqtt.password_file)".into())
            }
            ConnectReturnCode::NotAuthorized => Outcome::Fatal(
                "the broker refused the connection: not authorized (wrong user name or password, or this client is not allowed; check sink.mqtt.username and AFFECTD_MQTT_PASSWORD / sink.mqtt.password_file)".into(),
            ),
            ConnectReturnCode::BadClientId => Outcome::Fatal("the broker refused the client id (set sink.mqtt.client_id)".into()),
            other => Outcome::Lost(format!("broker refused the connection: {other:?}")),
        },
        // A reset, refusal or timeout during the handshake is the network, not the set-up: retry.
        ConnectionError::Tls(rumqttc::TlsError::Io(e)) if tls_io_is_transient(&e) => {
            Outcome::Lost(format!("TLS handshake interrupted: {e}"))
        }
        ConnectionError::Tls(t) => Outcome::Fatal(format!("TLS failed: {t} (check sink.mqtt.ca_file, client_cert, client_key and the broker's certificate name)")),
        other => Outcome::Lost(other.to_string()),
    }
}
