//! `audit verify`: checks the audit trail's hash chain and says where it breaks,
//! in whichever state store the project uses (no cloud connection needed).

use std::process::ExitCode;

use serde_json::json;

use super::session::{open_state, runtime, state_location};
use crate::args::{AuditCommand, Cli};
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui, cmd: &AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { expect_head } = cmd;
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
    let verified = rt.block_on(state.audit_verify()).map_err(|e| e.to_string());
    let verified = verified.and_then(|records| match expect_head {
        Some(head) => head
            .check(&records)
            .map(|()| records)
            .map_err(|reason| format!("Audit trail {where_}: {reason}")),
        None => Ok(records),
    });
    match verified {
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
                        r.entry.principal.as_deref().map_or_else(
                            || format!("{} (self-reported)", r.who),
                            |p| p.to_string()
                        ),
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
