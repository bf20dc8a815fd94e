//! affectd: watches a customer's face, listens to what they say and how, and publishes per
//! interval how that customer feels — entirely on the device.
//!
//! Start at [`pipeline`]: it builds the stage graph from [`config`] and wires [`source`]s,
//! the [`vision`] and [`audio`] branches, the [`fusion`] window and the [`sink`]s with measured
//! [`channel`]s carrying the [`message`] types.

// Every public item has a doc comment (clippy -D warnings makes this an error).
#![warn(missing_docs)]

pub mod app;
pub mod audio;
pub mod channel;
pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod fusion;
pub mod labels;
pub mod message;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod secrets;
pub mod sink;
pub mod source;
pub mod text;
pub mod vision;

pub use error::{Error, Result};
