//! Fusion: turns the stream of per-frame and per-utterance observations into one report per
//! media-time interval ([`window`]), lays each interval's observations out as modality tokens
//! ([`tokens`]) and fuses them with the attention head ([`head`]); [`stage`] fills the reports
//! and debounces the unexpressed-dissatisfaction alert.

pub mod head;
pub mod stage;
pub mod summary;
pub mod tokens;
pub mod window;
