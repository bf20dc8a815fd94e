//! Language branch: what the customer's words mean, and what of them may leave the device.

pub mod redact;
