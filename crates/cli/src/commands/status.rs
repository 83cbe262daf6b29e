//! `status`: the engine's status reading (`ops::status::collect`), shown as a
//! table, JSON, Prometheus text or HTML.

use std::process::ExitCode;

use crate::args::{Cli, StatusArgs, StatusFormat};
use crate::report;
use crate::ui::Ui;
use lifeboat_engine::ops::status;

pub fn run(cli: &Cli, ui: &Ui, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let reading = status::collect(&ws, &args.tenants)?;
    if let Some(e) = &reading.sql_unavailable {
        ui.note(&format!(
            "warning: SQL state unavailable: reading the log-shipping monitor rows from Log Analytics: {e}"
        ));
    }
    if let Some(e) = &reading.alerts_unavailable {
        ui.note(&format!(
            "warning: fired alerts unavailable: reading Alerts Management: {e}"
        ));
    }
    if let Some(e) = &reading.access_unavailable {
        ui.note(&format!(
            "warning: roster unavailable: reading the emergency groups from Microsoft Graph: {e}"
        ));
    }
    let ts = &reading.tenants;
    match (args.format, ui.json()) {
        (StatusFormat::Json, _) | (StatusFormat::Human, true) => {
            let mut v = report::status::json(ts);
            v["requests"] =
                serde_json::to_value(ws.session.client.stats.snapshot()).expect("stats serialize");
            ui.print_json(&v)
        }
        (StatusFormat::Human, false) => ui.print(&report::status::human(ts)),
        (StatusFormat::Prometheus, _) => ui.print(&report::status::prometheus(ts)),
        (StatusFormat::Html, _) => ui.print(&report::status::html(
            ts,
            &lifeboat_core::clock::now()?.to_string(),
        )),
    }
    super::leave_to_exit((reading, ws));
    Ok(crate::exit::SUCCESS)
}
