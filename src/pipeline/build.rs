//! Assembly: the stage graph a [`Config`] asks for, with every model loaded and checked before
//! any thread starts. Each component builds itself from its own config section
//! ([`VisionStage::from_config`], [`SpeechStages::from_config`], [`FusionStage::from_config`],
//! [`VideoFeed::from_config`], [`AudioFeed::from_config`], [`crate::sink::from_config`]); the
//! daemon, `analyze`, the benches and the tests all call [`Topology::from_config`].

use super::*;
use crate::config::{AudioSourceConfig, Config, VideoSourceConfig};
use crate::fusion::stage::FusionStage;
use crate::source;

impl SpeechStages {
    /// The speech branch a config asks for (`None` when speech is off): Whisper, the VAD, the
    /// voice head when `speech.voice` is on, the text models when `text.enabled` is on.
    pub fn from_config(cfg: &Config) -> Result<Option<SpeechStages>> {
        use crate::audio::{asr, vad};
        if !cfg.speech.enabled {
            return Ok(None);
        }
        let sp = &cfg.speech;
        let (path, _) = crate::model::locate(&cfg.models.dir, "asr", cfg.models.verify)?;
        let asr = asr::Asr::load(&path, asr::AsrParams::from_config(sp, sp.voice))?;
        let voice = if sp.voice {
            Some(crate::audio::voice::VoiceHead::load_from(&cfg.models.dir, cfg.models.verify)?)
        } else {
            None
        };
        let vad = vad::Vad::new(vad::VadParams {
            min_speech_s: sp.min_speech_s,
            min_silence_s: sp.min_silence_s,
            max_utterance_s: sp.max_utterance_s,
            ..Default::default()
        });
        let text = if cfg.text.enabled { Some(crate::text::TextModel::load(&cfg.models)?) } else { None };
        Ok(Some(SpeechStages { vad, asr, text, voice, publish_transcripts: cfg.privacy.publish_transcripts }))
    }
}

impl VideoFeed {
    /// Opens the video source a config names (`None` for `kind = "none"`); `stop` ends live
    /// sources, `health` hears of lost devices.
    pub fn from_config(
        cfg: &Config,
        stop: &Arc<AtomicBool>,
        health: &source::Health,
    ) -> Result<Option<VideoFeed>> {
        Ok(match &cfg.source.video {
            VideoSourceConfig::None => None,
            VideoSourceConfig::File { path, realtime } => Some(VideoFeed {
                source: source::open_video(path, cfg.pipeline.analysis_fps)?,
                realtime: *realtime,
            }),
            VideoSourceConfig::Webcam { device, width, height, fps, format, reconnect_max_s } => {
                let spec = source::webcam::WebcamSpec {
                    device: device.clone(),
                    width: *width,
                    height: *height,
                    fps: *fps,
                    format: *format,
                    reconnect_max_s: *reconnect_max_s,
                };
                let cam = source::webcam::Webcam::open(spec, stop.clone(), health.clone())?;
                Some(VideoFeed { source: Box::new(cam), realtime: false })
            }
            VideoSourceConfig::Pipe { command, width, height, fps, pixel_format } => {
                let spec = source::pipe::PipeSpec {
                    command: command.clone(),
                    width: *width,
                    height: *height,
                    fps: *fps,
                    pixel_format: *pixel_format,
                };
                Some(VideoFeed {
                    source: Box::new(source::pipe::PipeVideo::spawn(spec, stop.clone())?),
                    realtime: false,
                })
            }
        })
    }
}

impl AudioFeed {
    /// Opens the audio source a config names (`None` for `kind = "none"`).
    pub fn from_config(
        cfg: &Config,
        stop: &Arc<AtomicBool>,
        health: &source::Health,
    ) -> Result<Option<AudioFeed>> {
        Ok(match &cfg.source.audio {
            AudioSourceConfig::None => None,
            AudioSourceConfig::File { path, realtime, channel } => {
                Some(AudioFeed { source: source::open_audio_channel(path, *channel)?, realtime: *realtime })
            }
            AudioSourceConfig::Mic { device, sample_rate, restart_max_s } => {
                let spec = source::mic::MicSpec {
                    device: device.clone(),
                    sample_rate: *sample_rate,
                    restart_max_s: *restart_max_s,
                };
                Some(AudioFeed {
                    source: Box::new(source::mic::Mic::open(spec, stop.clone(), health.clone())?),
                    realtime: false,
                })
            }
        })
    }
}

/// The inputs and outputs of one session, opened by the caller (from the config, or from a
/// recording and command-line options).
pub struct Endpoints {
    /// Video branch, if any.
    pub video: Option<VideoFeed>,
    /// Audio branch, if any.
    pub audio: Option<AudioFeed>,
    /// Where messages go.
    pub sinks: Vec<Box<dyn Sink>>,
    /// `seq` of the first interval (continues an MQTT spool's numbering).
    pub first_seq: u64,
    /// Set to end the session gracefully (signal handler, caller).
    pub stop: Arc<AtomicBool>,
    /// Health of the live sources.
    pub health: crate::source::Health,
}

impl Topology {
    /// The stage graph `cfg` asks for around `io`, with the model stages loaded (vision when there
    /// is video, speech when there is audio, fusion when faces or words feed it).
    pub fn from_config(cfg: &Config, session_id: String, io: Endpoints) -> Result<Topology> {
        let vision = match io.video {
            Some(_) => Some(VisionStage::from_config(cfg)?),
            None => None,
        };
        let speech = match io.audio {
            Some(_) => SpeechStages::from_config(cfg)?,
            None => None,
        };
        let labels = vision.as_ref().map(|v| v.labels()).filter(|l| !l.is_empty());
        let has_text = speech.as_ref().is_some_and(|s| s.text.is_some());
        let fusion = FusionStage::from_config(cfg, labels.as_deref(), has_text)?;
        release_freed_heap();
        Ok(Topology {
            config: cfg.pipeline.clone(),
            device_id: cfg.device_id.clone(),
            session_id,
            first_seq: io.first_seq,
            fusion,
            vision,
            speech,
            video: io.video,
            audio: io.audio,
            sinks: io.sinks,
            stop: io.stop,
            health: io.health,
        })
    }
}

/// Hands the heap pages freed while the models loaded back to the OS. Loading leaves tens of MB of
/// freed transients behind (file bytes, decoded protobufs, tract's intermediate constant-folding
/// results: about 56 MB for the MiniLM encoder alone) as free chunks that glibc keeps resident in
/// the main heap, and the stage threads, which allocate from their own arenas, never reuse them.
/// Issue 20: peak RSS of `affectd analyze` on the bundled sample 293 → 237 MB
/// (`speech.fit_audio_ctx = true`). Nothing is moved: the outputs are the same bits.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel; live allocations stay.
    unsafe {
        libc::malloc_trim(0);
    }
}
