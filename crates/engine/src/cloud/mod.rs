//! Access to a cloud's resources: one generic ARM client for Azure and the local
//! emulator alike, and the reads that produce the prior state `plan` compares
//! against (the observed-state types themselves live in `lifeboat_core::observed`).
//!
//! - [`client`]: the ARM client (GET/PUT/DELETE/POST/Resource Graph).
//! - [`lro`]: the async-operation protocol; [`retry`]: when to try again;
//!   [`ratelimit`]: token buckets; [`auth`]: where tokens come from.
//! - [`inventory`]: prior state in bulk (Resource Graph) or per resource.
//! - [`blob`]: the Blob Storage data-plane client behind `--state azblob://`.
//!
//! This module never decides what should change.

pub mod auth;
pub mod blob;
pub mod client;
pub mod graph;
pub mod inventory;
pub mod lro;
pub mod ratelimit;
pub mod retry;

/// rustls needs one process-wide crypto provider (lifeboat builds rustls with
/// `ring` only, so there is no ambiguity and no C/CMake toolchain in the build).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP clients a session sends with, to ARM and to Microsoft Graph.
/// Each loads the platform's root certificates as it is built (~3 ms): a
/// command builds them while it loads its manifests.
pub struct HttpClients {
    pub arm: reqwest::Client,
    pub graph: reqwest::Client,
}

impl HttpClients {
    pub fn build() -> HttpClients {
        HttpClients {
            arm: client::ArmClient::http(),
            graph: graph::GraphClient::http(),
        }
    }
}
