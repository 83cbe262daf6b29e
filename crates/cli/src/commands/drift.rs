//! `drift`: what changed outside lifeboat, on declared properties only. A plan
//! against the live state, reported as expected-vs-actual per property; resources
//! that do not exist yet are counted as missing, not as drift.

use std::process::ExitCode;

use crate::args::{Cli, DriftArgs};
use crate::report;
use crate::ui::Ui;
use lifeboat_core::plan::Action;
use lifeboat_engine::cloud::inventory::Refresh;
use lifeboat_engine::review::PlanRequest;

pub fn run(cli: &Cli, ui: &Ui, args: &DriftArgs) -> anyhow::Result<ExitCode> {
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let (plan, prior) = ws.plan_with_prior(PlanRequest::review(
        &args.tenants,
        args.shared,
        Refresh::Graph,
        &[],
    ))?;
    if ui.json() {
        ui.print(&report::drift_json(&plan).to_string());
    } else {
        ui.print(&report::drift_human(&plan));
    }
    let drifted = plan
        .changes
        .iter()
        .any(|c| matches!(c.action, Action::Update | Action::Replace));
    super::leave_to_exit((plan, prior, ws));
    Ok(if args.detailed_exitcode && drifted {
        crate::exit::changes()
    } else {
        crate::exit::SUCCESS
    })
}
