//! The pure core of lifeboat: everything that can be decided from the project's
//! files and a snapshot of the cloud, with no network, no async runtime and no
//! command line. Each pipeline stage is a plain function of the previous value.
//!
//! Codemap, bottom first (a module only uses modules above it in this list):
//!
//! - [`id`]: ARM resource ids ([`id::ResourceId`]), layers, hex.
//! - [`diag`]: file:line:column diagnostics and values that remember their origin.
//! - [`clock`]: the one clock (`LIFEBOAT_NOW`). [`api`]: the api-version table.
//! - [`quota`]: ARM's request quotas as token buckets (client and emulator).
//! - [`location`]: where state lives (`local` or `azblob://`), as a value.
//! - [`body`]: rendered ARM bodies held compactly, and the [`body::Json`] reader
//!   shared by desired and observed bodies.
//! - [`par`]: ordered parallel maps over the cores (fleet-sized passes).
//! - [`observed`]: the cloud's resources as read (prior state), and ownership.
//! - [`model`]: the typed, validated project; derived Azure names, address plan.
//! - [`manifest`]: reads `platform.yaml` and `tenants/*.yaml` into the model,
//!   reporting every error with file:line:column and field path.
//! - [`graph`]: renders the Tera templates into resources with ARM ids and edges.
//! - [`policy`]: CIS Azure and no-single-point-of-failure findings, with waivers.
//! - [`cost`]: idle-per-month and activated-per-hour cost from the price table.
//! - [`plan`]: desired graph vs. prior state -> a serializable plan (`settle`
//!   compares an observed resource the moment it is read).
//! - [`export`]: the graph as Terraform JSON (azapi).

pub mod api;
pub mod body;
pub mod clock;
pub mod cost;
pub mod diag;
pub mod export;
pub mod graph;
pub mod id;
pub mod location;
pub mod manifest;
pub mod model;
pub mod observed;
pub mod par;
pub mod plan;
pub mod policy;
pub mod quota;
pub mod roster;
