//! lifeboat: provisions and operates per-hospital HiX emergency environments in Azure.
//!
//! Codemap, in pipeline order (each stage is a plain function of the previous one):
//!
//! - [`manifest`]: reads `platform.yaml` and `tenants/*.yaml`, validates every rule,
//!   reports all errors with file:line:column and field path.
//! - [`model`]: the typed, validated project; derived Azure names and address plan.
//! - [`graph`]: renders the Tera templates into resources with ARM ids and edges.
//! - [`plan`]: desired graph vs. prior state -> a serializable plan (pure).
//! - [`policy`]: CIS Azure and no-single-point-of-failure findings on the graph,
//!   with the manifests' waivers (pure; `check`, and the plan's changed resources).
//! - [`cost`]: idle-per-month and activated-per-hour cost per tenant from the
//!   price table (pure), and the Retail Prices API format for `pricing refresh`.
//! - [`apply`]: the plan as a DAG walk over the ARM client, journalled; emits events.
//! - [`report`]: plan as text, JSON, Markdown; findings (SARIF); drill reports
//!   (HTML, JUnit); status (table, Prometheus, HTML).
//! - [`ops`]: operations on a running estate: the HiX image lifecycle, the Disaster
//!   Activation Plan (activate, deactivate, drill), fleet status, the signed
//!   endpoint catalog.
//! - [`state`]: locks, the apply journal, the hash-chained audit trail and saved
//!   plans, behind one interface: `.lifeboat/state/`, or Azure Blob Storage
//!   (`--state azblob://`) for pipeline agents that share them.
//! - [`export`]: the graph as Terraform JSON (azapi).
//! - [`cloud`]: the generic ARM client (LRO, retry, rate limits, auth), prior state,
//!   and the Blob Storage client behind the shared state.
//! - [`emulator`]: the embedded local cloud (ARM over HTTP on loopback, persisted).
//! - [`cli`], [`commands`], [`ui`]: argument parsing, command wiring, printing.

pub mod apply;
pub mod cli;
pub mod cloud;
pub mod commands;
pub mod cost;
pub mod emulator;
pub mod export;
pub mod graph;
pub mod manifest;
pub mod model;
pub mod ops;
pub mod plan;
pub mod policy;
pub mod report;
pub mod state;
pub mod ui;
