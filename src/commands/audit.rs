//! `audit verify`: checks the audit trail's hash chain and says where it breaks.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{AuditCommand, Cli};
use crate::state::LocalState;
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui, cmd: &AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = cmd;
    let log = LocalState::for_project(&cli.dir).audit();
    match log.verify() {
        Ok(records) => {
            let last = records.last();
            if ui.json() {
                ui.print_json(&json!({"intact": true, "records": records.len(), "last": last}));
            } else {
                ui.print(&match last {
                    None => format!("Audit trail {}: empty.", log.path().display()),
                    Some(r) => format!(
                        "Audit trail intact: {} record(s) in {}; the last: {} `{}` by {} on {} ({}).",
                        records.len(),
                        log.path().display(),
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
                eprintln!("error: {e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
