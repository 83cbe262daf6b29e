//! The one integration-test binary: every file drives the real `lifeboat` binary
//! (or the workspace crates) against the embedded cloud, Azurite, recorded Azure
//! sessions and Microsoft's published examples. Fixtures live in `tests/fixtures`
//! (the Azure material copied with its provenance and licence), so the suite
//! needs nothing beside the repository.

mod apply;
mod arm_bodies;
mod azure_sdk;
mod capacity;
mod check;
mod common;
mod dap;
mod emulator;
mod image;
mod pipelines;
mod plan;
mod recordings;
mod roster;
mod state_blob;
mod validate;
mod worst_hour;
