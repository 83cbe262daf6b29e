//! `audit verify`: checks the audit trail's hash chain and says where it breaks,
//! in whichever state store the project uses (no cloud connection needed).

use std::process::ExitCode;

use serde_json::json;

use super::session::{open_state, runtime, state_location};
use crate::args::{AuditCommand, Cli};
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui, cmd: &AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = cmd;
    // `--state` needs no manifests; otherwise platform.yaml may name the store.
    let project = if cli.state.is_none() && cli.dir.join("platform.yaml").exists() {
        match super::load_project(cli, ui) {
            Ok(p) => Some(p),
            Err(code) => return Ok(code),
        }
    } else {
        None
    };
    let location = state_location(cli, project.as_ref())?;
    let rt = runtime()?;
    let state = open_state(&rt, cli, &location)?;
    let where_ = state.audit_location();
    match rt.block_on(state.audit_verify()) {
        Ok(records) => {
            let last = records.last();
            if ui.json() {
                ui.print_json(&json!({"intact": true, "records": records.len(), "last": last}));
            } else {
                ui.print(&match last {
                    None => format!("Audit trail {where_}: empty."),
                    Some(r) => format!(
                        "Audit trail intact: {} record(s) in {}; the last: {} `{}` by {} on {} ({}).",
                        records.len(),
                        where_,
                        r.at,
                        r.entry.command,
                        r.who,
                        r.host,
                        r.entry.outcome
                    ),
                });
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if ui.json() {
                ui.print_json(&json!({"intact": false, "error": e.to_string()}));
            } else {
                crate::ui::stderr_line(&format!("error: {e}"));
            }
            Ok(crate::exit::FAILURE)
        }
    }
}
