//! `validate`: manifests, then the rendered graph (templates, ids, cycles).

use std::process::ExitCode;

use serde_json::json;

use crate::args::Cli;
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui) -> anyhow::Result<ExitCode> {
    let (project, _templates, graph) = match super::load_full_graph(cli, ui)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
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
    super::leave_to_exit(graph);
    Ok(ExitCode::SUCCESS)
}
