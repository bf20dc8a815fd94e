//! Measured bounded channels: every message is stamped when sent, so depth, send→receive latency
//! and drops can be reported (the idea of rerun's `re_smart_channel`).

use crossbeam_channel::{Receiver, RecvTimeoutError, SendError, Sender, TryRecvError, TrySendError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a full channel does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// The sender waits for room: nothing is ever lost (audio, observations, reports).
    Block,
    /// The oldest queued message is dropped and counted: newest wins (live video).
    DropOldest,
}

/// Counters shared by both ends of one channel.
pub struct ChannelStats {
    name: String,
    capacity: usize,
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    latency_total_us: AtomicU64,
    latency_max_us: AtomicU64,
    receiver_gone: AtomicBool,
}

/// A point-in-time copy of a channel's counters, as published in metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSnapshot {
    /// Channel name, `from->to`.
    pub name: String,
    /// Capacity in messages.
    pub capacity: usize,
    /// Messages queued now.
    pub depth: usize,
    /// Messages sent so far.
    pub sent: u64,
    /// Messages received so far.
    pub received: u64,
    /// Messages dropped by the overflow policy.
    pub dropped: u64,
    /// Mean send→receive latency, milliseconds.
    pub latency_mean_ms: f64,
    /// Largest send→receive latency, milliseconds.
    pub latency_max_ms: f64,
}

impl std::fmt::Debug for ChannelStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChannelStats({:?})", self.snapshot())
    }
}

impl ChannelStats {
    /// Copies the counters.
    pub fn snapshot(&self) -> ChannelSnapshot {
        let received = self.received.load(Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        let dropped = self.dropped.load(Ordering::Relaxed);
        let total = self.latency_total_us.load(Ordering::Relaxed) as f64;
        ChannelSnapshot {
            name: self.name.clone(),
            capacity: self.capacity,
            depth: sent.saturating_sub(received).saturating_sub(dropped) as usize,
            sent,
            received,
            dropped,
            latency_mean_ms: if received == 0 { 0.0 } else { total / received as f64 / 1000.0 },
            latency_max_ms: self.latency_max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A message with the instant it was sent.
#[derive(Debug)]
pub struct Stamped<T> {
    sent_at: Instant,
    value: T,
}

/// Sending end of a measured channel.
pub struct MeteredSender<T> {
    tx: Sender<Stamped<T>>,
    /// Kept only for [`Overflow::DropOldest`], to pop the oldest message when full.
    drain: Option<Receiver<Stamped<T>>>,
    stats: Arc<ChannelStats>,
}

impl<T> Clone for MeteredSender<T> {
    fn clone(&self) -> Self {
        MeteredSender { tx: self.tx.clone(), drain: self.drain.clone(), stats: self.stats.clone() }
    }
}

/// Receiving end of a measured channel.
pub struct MeteredReceiver<T> {
    rx: Receiver<Stamped<T>>,
    stats: Arc<ChannelStats>,
}

/// The receiver was dropped: the downstream stage has gone away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

/// Creates a measured bounded channel named `name` holding at most `capacity` messages.
pub fn bounded<T: Send + 'static>(
    name: &str,
    capacity: usize,
    overflow: Overflow,
) -> (MeteredSender<T>, MeteredReceiver<T>, Arc<ChannelStats>) {
    let capacity = capacity.max(1);
    let (tx, rx) = crossbeam_channel::bounded::<Stamped<T>>(capacity);
    let stats = Arc::new(ChannelStats {
        name: name.to_string(),
        capacity,
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        latency_total_us: AtomicU64::new(0),
        latency_max_us: AtomicU64::new(0),
        receiver_gone: AtomicBool::new(false),
    });
    let drain = (overflow == Overflow::DropOldest).then(|| rx.clone());
    (MeteredSender { tx, drain, stats: stats.clone() }, MeteredReceiver { rx, stats: stats.clone() }, stats)
}

impl<T> MeteredSender<T> {
    /// Sends `value` following the channel's overflow policy. Returns the number of older
    /// messages dropped to make room (always 0 for [`Overflow::Block`]).
    pub fn send(&self, value: T) -> Result<u64, Disconnected> {
        let mut msg = Stamped { sent_at: Instant::now(), value };
        let mut dropped = 0;
        match &self.drain {
            None => self.tx.send(msg).map_err(|SendError(_)| Disconnected)?,
            Some(drain) => loop {
                if self.stats.receiver_gone.load(Ordering::Acquire) {
                    return Err(Disconnected);
                }
                match self.tx.try_send(msg) {
                    Ok(()) => break,
                    Err(TrySendError::Disconnected(_)) => return Err(Disconnected),
                    Err(TrySendError::Full(back)) => {
                        msg = back;
                        if drain.try_recv().is_ok() {
                            dropped += 1;
                            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            },
        }
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        Ok(dropped)
    }

    /// The channel's counters.
    pub fn stats(&self) -> &Arc<ChannelStats> {
        &self.stats
    }
}

impl<T> MeteredReceiver<T> {
    fn account(&self, msg: Stamped<T>) -> T {
        let us = msg.sent_at.elapsed().as_micros() as u64;
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.stats.latency_total_us.fetch_add(us, Ordering::Relaxed);
        self.stats.latency_max_us.fetch_max(us, Ordering::Relaxed);
        msg.value
    }

    /// Blocks for the next message; `None` once every sender is gone and the queue is empty.
    pub fn recv(&self) -> Option<T> {
        self.rx.recv().ok().map(|m| self.account(m))
    }

    /// Waits at most `timeout` for the next message.
    pub fn recv_timeout(&self, timeout: Duration) -> Recv<T> {
        match self.rx.recv_timeout(timeout) {
            Ok(m) => Recv::Item(self.account(m)),
            Err(RecvTimeoutError::Timeout) => Recv::Empty,
            Err(RecvTimeoutError::Disconnected) => Recv::Closed,
        }
    }

    /// Takes a message if one is queued.
    pub fn try_recv(&self) -> Recv<T> {
        match self.rx.try_recv() {
            Ok(m) => Recv::Item(self.account(m)),
            Err(TryRecvError::Empty) => Recv::Empty,
            Err(TryRecvError::Disconnected) => Recv::Closed,
        }
    }

    /// The channel's counters.
    pub fn stats(&self) -> &Arc<ChannelStats> {
        &self.stats
    }
}

/// What a receive that does not block for ever got.
#[derive(Debug, PartialEq)]
pub enum Recv<T> {
    /// A message.
    Item(T),
    /// Nothing yet (timed out, or nothing queued); senders remain.
    Empty,
    /// Every sender is gone and the queue is empty: nothing more will come.
    Closed,
}

impl<T> Drop for MeteredReceiver<T> {
    fn drop(&mut self) {
        self.stats.receiver_gone.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_policy_delivers_everything_in_order() {
        let (tx, rx, stats) = bounded::<u32>("a->b", 2, Overflow::Block);
        let h = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<u32> = std::iter::from_fn(|| rx.recv()).collect();
        h.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        let s = stats.snapshot();
        assert_eq!((s.sent, s.received, s.dropped, s.depth), (100, 100, 0, 0));
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts_drops() {
        let (tx, rx, stats) = bounded::<u32>("v", 3, Overflow::DropOldest);
        let mut dropped = 0;
        for i in 0..10 {
            dropped += tx.send(i).unwrap();
        }
        assert_eq!(dropped, 7);
        assert_eq!(stats.snapshot().depth, 3);
        drop(tx);
        let got: Vec<u32> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(got, vec![7, 8, 9]);
        let s = stats.snapshot();
        assert_eq!((s.sent, s.received, s.dropped), (10, 3, 7));
    }

    #[test]
    fn latency_is_measured() {
        let (tx, rx, stats) = bounded::<u8>("l", 1, Overflow::Block);
        tx.send(1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        rx.recv().unwrap();
        let s = stats.snapshot();
        assert!(s.latency_max_ms >= 19.0, "{s:?}");
        assert!(s.latency_mean_ms >= 19.0);
    }

    #[test]
    fn send_to_a_dropped_receiver_is_an_error_not_a_hang() {
        for policy in [Overflow::Block, Overflow::DropOldest] {
            let (tx, rx, _) = bounded::<u8>("x", 1, policy);
            drop(rx);
            assert_eq!(tx.send(1), Err(Disconnected));
            assert_eq!(tx.send(2), Err(Disconnected));
        }
    }
}
