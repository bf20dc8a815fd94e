//! The branch threads: sources (paced or not), vision, audio level + VAD, ASR + voice, text.

use super::*;

/// Sleeps until media time `t` is due on the wall clock; false if stopped meanwhile.
pub(super) fn pace(started: Instant, t: f64, stop: &AtomicBool) -> bool {
    let due = started + crate::source::secs_duration(t);
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(50)));
    }
}

pub(super) fn video_source(
    mut v: VideoFeed,
    fps: f64,
    tx: MeteredSender<Frame>,
    started: Instant,
    stop: &AtomicBool,
) -> Result<()> {
    log::info!("video source: {}", v.source.describe());
    let mut sampler = FrameSampler::new(fps);
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        let Some(raw) = v.source.next_frame()? else { break };
        if !sampler.keep(raw.t) {
            continue;
        }
        if v.realtime && !pace(started, raw.t, stop) {
            break;
        }
        let frame = Frame {
            seq,
            t: raw.t,
            width: raw.width,
            height: raw.height,
            duration: raw.duration,
            rgb: raw.rgb,
        };
        seq += 1;
        if tx.send(frame).is_err() {
            break;
        }
    }
    Ok(())
}

pub(super) fn audio_source(
    mut a: AudioFeed,
    tx: MeteredSender<AudioChunk>,
    started: Instant,
    stop: &AtomicBool,
) -> Result<()> {
    log::info!("audio source: {}", a.source.describe());
    let mut buf: Vec<f32> = Vec::with_capacity(AUDIO_CHUNK * 2);
    let (mut seq, mut sent) = (0u64, 0u64);
    let send = |samples: Vec<f32>, seq: &mut u64, sent: &mut u64| -> bool {
        let t = *sent as f64 / AUDIO_RATE as f64;
        let n = samples.len() as u64;
        if a.realtime && !pace(started, t + n as f64 / AUDIO_RATE as f64, stop) {
            return false;
        }
        let ok = tx.send(AudioChunk { seq: *seq, t, samples }).is_ok();
        *seq += 1;
        *sent += n;
        ok
    };
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        match a.source.next_samples()? {
            Some(s) => buf.extend(s),
            None => break,
        }
        while buf.len() >= AUDIO_CHUNK {
            let rest = buf.split_off(AUDIO_CHUNK);
            let chunk = std::mem::replace(&mut buf, rest);
            if !send(chunk, &mut seq, &mut sent) {
                return Ok(());
            }
        }
    }
    if !buf.is_empty() {
        send(buf, &mut seq, &mut sent);
    }
    Ok(())
}

/// How long a live video branch may go without a frame before the session clock moves its
/// watermark on (a camera that is reconnecting must not hold back every other branch).
pub(super) const HEARTBEAT_AFTER: Duration = Duration::from_millis(500);
/// How far behind the session clock a heartbeat watermark stays (a frame being captured now).
pub(super) const HEARTBEAT_MARGIN_S: f64 = 1.0;

pub(super) fn vision_stage(
    mut stage: VisionStage,
    rx: MeteredReceiver<Frame>,
    tx: MeteredSender<Envelope>,
    producer: usize,
    sup: &Supervisor,
    heartbeat: Option<crate::source::Health>,
) -> Result<()> {
    let c = &sup.counters;
    let mut end = 0.0f64;
    let mut errors = ItemErrors::new("vision");
    let hook = FaultHook::for_stage("vision");
    let mut n = 0u64;
    loop {
        let frame = match &heartbeat {
            None => match rx.recv() {
                Some(f) => f,
                None => break,
            },
            Some(clock) => match rx.recv_timeout(HEARTBEAT_AFTER) {
                Recv::Item(f) => f,
                Recv::Closed => break,
                Recv::Empty => {
                    // No frame for a while (camera lost or reconnecting): time goes on.
                    let now = clock.media_now() - HEARTBEAT_MARGIN_S;
                    if now > end && tx.send(Envelope { producer, event: Event::Progress(now) }).is_err() {
                        return Ok(());
                    }
                    continue;
                }
            },
        };
        n += 1;
        // Newest wins on overflow, so the last frame sent is never the one dropped.
        end = end.max(frame.t + frame.duration);
        match c.busy(0, || hook.check("vision", n).and_then(|_| stage.process(&frame))) {
            Ok(obs) => {
                errors.ok(sup);
                c.frames.fetch_add(1, Ordering::Relaxed);
                let t = obs.t;
                for event in [Event::Obs(Observation::Frame(obs)), Event::Progress(t)] {
                    if tx.send(Envelope { producer, event }).is_err() {
                        return Ok(());
                    }
                }
            }
            // One frame that cannot be analysed is skipped and counted; the branch goes on.
            Err(e) => {
                errors.failed(sup, &c.frames_failed, &format!("frame at {:.3} s", frame.t), &e);
                if tx.send(Envelope { producer, event: Event::Progress(frame.t) }).is_err() {
                    return Ok(());
                }
            }
        }
    }
    let _ = tx.send(Envelope { producer, event: Event::End(end) });
    Ok(())
}

pub(super) fn audio_stage(
    rx: MeteredReceiver<AudioChunk>,
    tx: MeteredSender<Envelope>,
    producer: usize,
    c: &Counters,
    mut vad: Option<(crate::audio::vad::Vad, MeteredSender<SpeechMsg>)>,
) -> Result<()> {
    let mut stage = LevelStage;
    let mut end_of_audio = 0.0f64;
    while let Some(chunk) = rx.recv() {
        let obs = c.busy(1, || stage.process(&chunk));
        c.audio_samples.fetch_add(chunk.samples.len() as u64, Ordering::Relaxed);
        let end = chunk.t + chunk.duration();
        end_of_audio = end;
        if let Some((v, seg_tx)) = vad.as_mut() {
            for seg in c.busy(1, || v.push(&chunk)) {
                let _ = seg_tx.send(Event::Obs(seg));
            }
            let _ = seg_tx.send(Event::Progress(v.watermark()));
        }
        for event in [Event::Obs(Observation::Audio(obs)), Event::Progress(end)] {
            if tx.send(Envelope { producer, event }).is_err() {
                return Ok(());
            }
        }
    }
    if let Some((mut v, seg_tx)) = vad {
        for seg in v.finish() {
            let _ = seg_tx.send(Event::Obs(seg));
        }
        let _ = seg_tx.send(Event::End(end_of_audio));
    }
    let _ = tx.send(Envelope { producer, event: Event::End(end_of_audio) });
    Ok(())
}

/// The voice estimate of one transcribed speech segment (None without a head or features).
pub(super) fn voice_of(
    head: Option<&mut crate::audio::voice::VoiceHead>,
    t: &crate::audio::asr::Transcript,
    seg: &crate::audio::vad::SpeechSegment,
) -> Result<Option<crate::message::VoiceObs>> {
    let (Some(head), Some(pool)) = (head, t.encoder.as_ref()) else {
        return Ok(None);
    };
    let est = head.predict(&pool.features)?;
    Ok(Some(crate::message::VoiceObs {
        quality: ((seg.end - seg.start) / 1.5).clamp(0.1, 1.0) as f32,
        probs: est.probs,
        sentiment: est.sentiment,
        negative: est.negative,
        valence: est.valence,
    }))
}

pub(super) fn asr_stage(
    mut asr: crate::audio::asr::Asr,
    mut voice: Option<crate::audio::voice::VoiceHead>,
    rx: MeteredReceiver<SpeechMsg>,
    tx: MeteredSender<UtteranceMsg>,
    sup: &Supervisor,
) -> Result<()> {
    let mut errors = ItemErrors::new("asr");
    let hook = FaultHook::for_stage("asr");
    let mut n = 0u64;
    while let Some(msg) = rx.recv() {
        let out = match msg {
            Event::Obs(seg) => {
                n += 1;
                match sup.counters.busy(2, || {
                    hook.check("asr", n).and_then(|_| asr.transcribe(&seg)).and_then(|t| {
                        t.map(|t| voice_of(voice.as_mut(), &t, &seg).map(|v| (t, v))).transpose()
                    })
                }) {
                    Ok(Some((t, v))) => {
                        errors.ok(sup);
                        Event::Obs((t, v))
                    }
                    Ok(None) => Event::Progress(seg.start),
                    // One segment that cannot be transcribed is skipped and counted.
                    Err(e) => {
                        let what = format!("speech {:.2}-{:.2} s", seg.start, seg.end);
                        errors.failed(sup, &sup.counters.utterances_failed, &what, &e);
                        Event::Progress(seg.end)
                    }
                }
            }
            Event::Progress(w) => Event::Progress(w),
            Event::End(t) => Event::End(t),
        };
        if tx.send(out).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

pub(super) fn text_stage(
    mut model: Option<crate::text::TextModel>,
    rx: MeteredReceiver<UtteranceMsg>,
    tx: MeteredSender<Envelope>,
    producer: usize,
    sup: &Supervisor,
) -> Result<()> {
    let c = &sup.counters;
    let mut errors = ItemErrors::new("text");
    let hook = FaultHook::for_stage("text");
    let mut seq = 0;
    let mut ended = None;
    while let Some(msg) = rx.recv() {
        let event = match msg {
            Event::Obs((t, voice)) => {
                let (probs, embedding) = match model.as_mut() {
                    Some(m) => {
                        match c.busy(3, || hook.check("text", seq + 1).and_then(|_| m.analyze(&t.text))) {
                            Ok(s) => {
                                errors.ok(sup);
                                (Some(s.probs), Some(s.embedding))
                            }
                            // The words stay (transcript, voice); only their sentiment is missing.
                            Err(e) => {
                                let what = format!("sentiment of speech {:.2}-{:.2} s", t.start, t.end);
                                errors.failed(sup, &c.utterances_failed, &what, &e);
                                (None, None)
                            }
                        }
                    }
                    None => (None, None),
                };
                c.utterances.fetch_add(1, Ordering::Relaxed);
                seq += 1;
                Event::Obs(Observation::Utterance(crate::message::UtteranceObs {
                    seq: seq - 1,
                    start: t.start,
                    end: t.end,
                    text: t.text,
                    probs,
                    embedding,
                    voice,
                }))
            }
            Event::Progress(w) => Event::Progress(w),
            Event::End(t) => {
                ended = Some(t);
                Event::End(t)
            }
        };
        if tx.send(Envelope { producer, event }).is_err() {
            return Ok(());
        }
    }
    if ended.is_none() {
        // The ASR thread failed before ending the stream: close the branch anyway.
        let _ = tx.send(Envelope { producer, event: Event::End(0.0) });
    }
    Ok(())
}
