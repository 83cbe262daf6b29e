//! The engine of lifeboat: talks to the cloud and the state store, and owns the
//! rules that make that safe. It emits events and returns values; it never
//! prints and never parses a command line (the CLI crate converts its arguments
//! into the option types here).
//!
//! Codemap, bottom first:
//!
//! - [`cloud`]: the generic ARM client (LRO, retry, rate limits, auth), the
//!   Resource Graph reads that produce the prior state, the Blob Storage client.
//! - [`state`]: locks, the apply journal, the hash-chained audit trail and saved
//!   plans behind one interface (`.lifeboat/state/` or `azblob://`).
//! - [`apply`]: the plan as a DAG walk over the ARM client, journalled.
//! - [`review`]: the plan pipeline (project + cloud -> checked plan), the guards
//!   a plan must pass before anything is written, and lock-held execution.
//! - [`ops`]: operations on a running estate: HiX images, the Disaster Activation
//!   Plan, fleet status, the signed endpoint catalog.

pub mod apply;
pub mod cloud;
pub mod ops;
pub mod review;
pub mod state;
