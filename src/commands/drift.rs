//! `drift`: what changed outside lifeboat, on declared properties only. A plan
//! against the live state, reported as expected-vs-actual per property; resources
//! that do not exist yet are counted as missing, not as drift.

use std::process::ExitCode;

use super::plan::scope_from;
use super::session::{PlanRequest, connect};
use super::{load_project, load_templates};
use crate::cli::{Cli, DriftArgs, Refresh};
use crate::plan::Action;
use crate::report;
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui, args: &DriftArgs) -> anyhow::Result<ExitCode> {
    let project = match load_project(cli, ui) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let scope = scope_from(&project, &args.tenants, args.shared)?;
    let templates = load_templates(cli)?;
    let session = connect(cli)?;
    let plan = session.plan(PlanRequest {
        project: &project,
        templates: &templates,
        scope: &scope,
        refresh: Refresh::Graph,
        allow_data_loss: &[],
    })?;
    if ui.json() {
        ui.print(&report::drift_json(&plan).to_string());
    } else {
        ui.print(&report::drift_human(&plan));
    }
    let drifted = plan
        .changes
        .iter()
        .any(|c| matches!(c.action, Action::Update | Action::Replace));
    Ok(if args.detailed_exitcode && drifted {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
