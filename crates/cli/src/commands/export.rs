//! `export terraform --out DIR`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::Cli;
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui, out: &Path) -> anyhow::Result<ExitCode> {
    let (project, _templates, graph) = match super::load_full_graph(cli, ui)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let files = lifeboat_core::export::terraform(&graph, &project.platform.subscription_id);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, doc) in &files {
        let path = out.join(name);
        let text = serde_json::to_string_pretty(doc).expect("JSON serializes");
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    ui.print(&format!(
        "Wrote {} Terraform JSON files ({} resources) to {}.",
        files.len(),
        graph.len(),
        out.display()
    ));
    Ok(ExitCode::SUCCESS)
}
