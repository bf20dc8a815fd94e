//! Language branch: what the customer's words mean, and what of them may leave the device.

pub mod encoder;
pub mod redact;
pub mod sentiment;
pub mod tokenize;

pub use sentiment::{TextModel, TextSentiment, LABELS};
