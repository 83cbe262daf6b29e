//! `plan`: manifests -> graph -> prior state -> plan -> report, optionally saved.

use std::process::ExitCode;

use anyhow::Context;

use crate::args::{Cli, PlanArgs, PlanFormat};
use crate::report;
use crate::ui::Ui;
use lifeboat_engine::review::PlanRequest;

pub fn run(cli: &Cli, ui: &Ui, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let (plan, prior) = ws.plan_with_prior(PlanRequest::review(
        &args.tenants,
        args.shared,
        args.refresh.into(),
        &args.allow_data_loss,
    ))?;
    if let Some(out) = &args.out {
        let text = serde_json::to_vec_pretty(&plan).expect("plan serializes");
        std::fs::write(out, &text)
            .with_context(|| format!("writing the plan to {}", out.display()))?;
        // The artifact in the state store lets another agent apply exactly
        // this plan by its hash (a pipeline's apply stage).
        // Named by the hash `apply` computes of the plan it reads back (what a
        // plan file holds, not the in-memory value it was written from).
        let hash = serde_json::from_slice::<lifeboat_core::plan::Plan>(&text)
            .context("reading back the saved plan")?
            .hash();
        let mut tenants: Vec<String> = plan
            .changes
            .iter()
            .filter_map(|c| c.tenant.clone())
            .collect();
        tenants.sort();
        tenants.dedup();
        let s = &ws.session;
        let artifact =
            s.rt.block_on(s.state.save_plan(&hash, text, &tenants))
                .context("keeping the saved plan in the state store")?;
        ui.note(&format!(
            "Saved the plan to {} and {artifact}; apply it with `lifeboat apply {}` (or `lifeboat apply {hash}` on any agent that shares the state).",
            out.display(),
            out.display()
        ));
    }
    let format = args.format.unwrap_or(if ui.json() {
        PlanFormat::Json
    } else {
        PlanFormat::Human
    });
    print_plan(ui, &plan, format);
    // Resources that wait (for their HiX image, or for an activation to end)
    // are pending work: a pipeline must not read "done" (see README).
    let pending = plan.has_changes() || !plan.deferred.is_empty();
    let code = if args.detailed_exitcode && pending {
        crate::exit::changes()
    } else {
        crate::exit::SUCCESS
    };
    super::leave_to_exit((plan, prior, ws));
    Ok(code)
}

pub fn print_plan(ui: &Ui, plan: &lifeboat_core::plan::Plan, format: PlanFormat) {
    match format {
        PlanFormat::Human => ui.print(&report::plan_human(plan)),
        PlanFormat::Json => ui.print_serialized(&report::plan_json(plan)),
        PlanFormat::Markdown => ui.print(&report::plan_markdown(plan)),
    }
}
