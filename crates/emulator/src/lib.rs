//! The embedded local cloud: an ARM-compatible emulator on a loopback port,
//! persisting to `.lifeboat/cloud/` (see DESIGN.md). `--cloud local` starts it
//! in-process and the ordinary ARM client talks to it over HTTP; `lifeboat
//! emulator serve` runs it standalone.
//!
//! - [`store`]: one JSON file per resource, written atomically.
//! - [`arm`]: ARM semantics (operations, families, throttling, faults).
//! - [`query`]: the Resource Graph query subset.
//! - [`sql`]: the SQL Server restore-mode simulation behind runCommand.
//! - [`server`]: HTTP framing.

pub mod arm;
pub mod faults;
pub mod graph;
pub mod query;
pub mod server;
pub mod sql;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use arm::{Config, DEFAULT_GRAPH_LAG_SECS, Emulator};
pub use faults::Faults;

/// Default time scale of the embedded cloud: a hundred times faster than Azure.
pub const DEFAULT_TIME_SCALE: f64 = 0.01;

/// When the store is read into memory (see [`Emulator::warm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warm {
    /// Before the port is bound: `emulator serve` is a cloud service, and
    /// Azure's indexes exist before anyone asks. A client that can connect is
    /// never the one that pays for the load (on a 200-hospital store ~0.25 s,
    /// which a first activation measured against a fresh service would
    /// otherwise count as preflight time).
    BeforeListening,
    /// Alongside the command's own start-up: the embedded cloud of one
    /// command, whose first query would pay for the load anyway.
    Alongside,
}

/// Start the emulator for the store under `dir` on `listen` (port 0 = any free
/// port), inside the current tokio runtime. Returns the bound address.
pub async fn start(
    dir: &Path,
    listen: &str,
    cfg: Config,
    warm: Warm,
) -> std::io::Result<SocketAddr> {
    // Judged before binding: nothing listens on a wider address, not even briefly.
    if !cfg.allow_remote {
        for addr in tokio::net::lookup_host(listen).await? {
            if !addr.ip().is_loopback() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{addr} is not a loopback address: the emulator serves this machine only unless --allow-remote is given"
                    ),
                ));
            }
        }
    }
    if cfg.token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the emulator needs a token to answer requests",
        ));
    }
    let emu = Arc::new(Emulator::new(store::Store::at(dir.to_path_buf()), cfg));
    let warming = emu.clone();
    let warmed = tokio::task::spawn_blocking(move || warming.warm());
    if warm == Warm::BeforeListening {
        warmed.await.map_err(std::io::Error::other)?;
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server::serve(listener, emu));
    Ok(addr)
}
