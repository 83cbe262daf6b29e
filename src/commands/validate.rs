//! `validate`: manifests, then the rendered graph (templates, ids, cycles).

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::{load_project, load_templates};
use crate::cli::Cli;
use crate::graph::{self, Scope};
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui) -> anyhow::Result<ExitCode> {
    let project = match load_project(cli, ui) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let templates = load_templates(cli)?;
    let graph = graph::build(&project, &templates, &Scope::everything())
        .context("rendering the resource graph")?;
    if ui.json() {
        ui.print_json(&json!({
            "valid": true,
            "errors": [],
            "tenants": project.tenants.len(),
            "resources": graph.len(),
        }));
    } else {
        ui.print(&format!(
            "Valid: platform.yaml and {} tenant manifest(s), {} resources.",
            project.tenants.len(),
            graph.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
