//! The embedded local cloud. Today this is its persistent resource store under
//! `.lifeboat/cloud/`; the ARM-compatible HTTP front end is built on top of it.

pub mod store;
