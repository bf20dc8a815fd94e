//! Fusion: turns the stream of per-frame and per-utterance observations into one report per
//! media-time interval ([`window`]).

pub mod window;
