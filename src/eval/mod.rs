//! `affectd eval …`: accuracy checks anyone can run on their own data. One file per command;
//! the shared metrics are in [`metrics`].

pub mod asr;
pub mod expression;
pub mod fusion;
pub mod metrics;
pub mod pairs;
pub mod recordings;
pub mod text;
pub mod voice;
