//! `apply` and `destroy`: arguments -> the engine's plan (saved, or made now,
//! shown and confirmed) -> the engine's execution under the layer locks -> the
//! report. The rules (guards, saved-plan checks, locks, journal, audit) are the
//! engine's (`lifeboat_engine::review`).

use std::process::ExitCode;

use anyhow::bail;

use super::plan::print_plan;
use crate::args::{ApplyArgs, Cli, DestroyArgs, ExecArgs, PlanFormat};
use crate::exit;
use crate::ui::Ui;
use lifeboat_core::plan::Plan;
use lifeboat_engine::review::{self, ExecOptions, Executed, GuardOptions, PlanRequest, Workspace};

pub fn run(cli: &Cli, ui: &Ui, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let opts = exec_options(&args.exec)?;
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let Some(file) = &args.planfile else {
        let plan = ws.plan(PlanRequest::review(
            &args.tenants,
            args.shared,
            args.refresh.into(),
            &args.allow_data_loss,
        ))?;
        return review_and_execute(
            ui,
            &ws,
            &plan,
            args.auto_approve,
            "Apply these changes?",
            opts,
            "apply",
        );
    };
    if !args.tenants.is_empty() || args.shared || !args.allow_data_loss.is_empty() {
        bail!(
            "a saved plan carries its own scope and --allow-data-loss; give either PLANFILE or --tenant/--shared/--allow-data-loss"
        );
    }
    let (plan, hash) = ws.saved_plan(file, args.refresh.into())?;
    execute(ui, &ws, &plan, hash, opts, "apply")
}

pub fn destroy(cli: &Cli, ui: &Ui, args: &DestroyArgs) -> anyhow::Result<ExitCode> {
    let opts = exec_options(&args.exec)?;
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let plan = ws.destroy_plan(&args.tenant, &args.allow_data_loss)?;
    let question = format!("Destroy tenant {}?", args.tenant);
    review_and_execute(
        ui,
        &ws,
        &plan,
        args.auto_approve,
        &question,
        opts,
        "destroy",
    )
}

/// The engine's options from `--max-parallel`, `--lock-timeout` and the guard flags.
fn exec_options(exec: &ExecArgs) -> anyhow::Result<ExecOptions> {
    Ok(ExecOptions {
        max_parallel: exec.max_parallel,
        lock_timeout: super::lock_timeout(exec.lock_timeout)?,
        guards: GuardOptions {
            allow_capacity_reduction: exec.allow_capacity_reduction,
            outside_window: exec.outside_window,
        },
    })
}

/// Show a freshly made plan, refuse it early if a guard would, ask (unless
/// `auto_approve`), then execute it.
fn review_and_execute(
    ui: &Ui,
    ws: &Workspace,
    plan: &Plan,
    auto_approve: bool,
    question: &str,
    opts: ExecOptions,
    command: &str,
) -> anyhow::Result<ExitCode> {
    if !ui.json() {
        print_plan(ui, plan, PlanFormat::Human);
    }
    review::guards::check(&ws.project, plan, opts.guards, lifeboat_core::clock::now()?)?;
    if plan.has_changes() && !auto_approve {
        super::confirm(question)?;
    }
    execute(ui, ws, plan, plan.hash(), opts, command)
}

fn execute(
    ui: &Ui,
    ws: &Workspace,
    plan: &Plan,
    hash: String,
    opts: ExecOptions,
    command: &str,
) -> anyhow::Result<ExitCode> {
    let emit = |e: lifeboat_engine::apply::Event| ui.event(&e);
    match ws.execute(plan, hash.clone(), opts, command, &emit)? {
        Executed::NoChanges => {
            ui.note("No changes. Nothing to apply.");
            if ui.json() {
                ui.print(
                    &serde_json::json!({"format_version": "1", "outcome": "no-changes", "plan": hash})
                        .to_string(),
                );
            }
            Ok(exit::SUCCESS)
        }
        Executed::Applied(report) => {
            if ui.json() {
                ui.print(&serde_json::to_string(&report).expect("report serializes"));
            } else {
                ui.print(&crate::report::apply_human(&report));
            }
            Ok(if report.outcome == "succeeded" {
                exit::SUCCESS
            } else {
                exit::FAILURE
            })
        }
    }
}
