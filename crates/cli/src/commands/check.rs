//! `check`: policy findings on the full rendered graph, no cloud. Prints them (text
//! or JSON), writes SARIF on request, exits 3 when an error is not waived.

use std::process::ExitCode;

use anyhow::Context;

use crate::args::{CheckArgs, Cli};
use crate::report::findings;
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let (project, templates, graph) = match super::load_full_graph(cli, ui)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let found =
        lifeboat_core::policy::check(&project, &templates, &graph, lifeboat_core::clock::today()?);
    if let Some(path) = &args.sarif {
        let text = serde_json::to_string_pretty(&findings::sarif(&found)).expect("JSON");
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if ui.json() {
        ui.print_json(&findings::check_json(&found, graph.len()));
    } else {
        ui.print(&findings::check_human(&found, graph.len()));
    }
    let blocking = found.iter().any(|f| f.is_blocking());
    super::leave_to_exit(graph);
    Ok(if blocking {
        crate::exit::policy_violations()
    } else {
        ExitCode::SUCCESS
    })
}
