//! `apply` and `destroy`: arguments -> the engine's options -> one engine call
//! (which takes the locks, plans against a fresh read, shows the plan through
//! [`Review`], asks, and applies) -> the report. The rules (locks, guards,
//! saved-plan checks, journal, audit) are the engine's (`lifeboat_engine::review`).

use std::process::ExitCode;

use anyhow::bail;

use super::plan::print_plan;
use crate::args::{ApplyArgs, Cli, DestroyArgs, ExecArgs, PlanFormat};
use crate::exit;
use crate::ui::Ui;
use lifeboat_core::plan::Plan;
use lifeboat_engine::review::{ExecOptions, Executed, GuardOptions, PlanRequest, Reviewer};

pub fn run(cli: &Cli, ui: &Ui, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let opts = exec_options(&args.exec, args.allow_capacity_reduction)?;
    if args.planfile.is_some()
        && (!args.tenants.is_empty() || args.shared || !args.allow_data_loss.is_empty())
    {
        bail!(
            "a saved plan carries its own scope and --allow-data-loss; give either PLANFILE or --tenant/--shared/--allow-data-loss"
        );
    }
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let emit = |e: lifeboat_engine::apply::Event| ui.event(&e);
    let executed = match &args.planfile {
        Some(file) => ws.apply_saved(file, args.refresh.into(), opts, &emit)?,
        None => {
            let review = Review {
                ui,
                auto_approve: args.auto_approve,
                question: "Apply these changes?".into(),
            };
            let req = PlanRequest::review(
                &args.tenants,
                args.shared,
                args.refresh.into(),
                &args.allow_data_loss,
            );
            ws.apply(req, opts, &review, &emit)?
        }
    };
    Ok(show(ui, "Apply", executed))
}

pub fn destroy(cli: &Cli, ui: &Ui, args: &DestroyArgs) -> anyhow::Result<ExitCode> {
    // Destroying lowers no capacity it could keep: the flag is apply's.
    let opts = exec_options(&args.exec, false)?;
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let review = Review {
        ui,
        auto_approve: args.auto_approve,
        question: format!("Destroy tenant {}?", args.tenant),
    };
    let emit = |e: lifeboat_engine::apply::Event| ui.event(&e);
    let executed = ws.destroy(&args.tenant, &args.allow_data_loss, opts, &review, &emit)?;
    Ok(show(ui, "Destroy", executed))
}

/// The engine's options from `--max-parallel`, `--lock-timeout` and the guard flags.
fn exec_options(exec: &ExecArgs, allow_capacity_reduction: bool) -> anyhow::Result<ExecOptions> {
    Ok(ExecOptions {
        max_parallel: exec.max_parallel,
        lock_timeout: super::lock_timeout(exec.lock_timeout)?,
        guards: GuardOptions {
            allow_capacity_reduction,
            outside_window: exec.outside_window,
        },
    })
}

/// The plan made under the locks, shown on the terminal and confirmed there
/// (unless `--auto-approve`).
struct Review<'u> {
    ui: &'u Ui,
    auto_approve: bool,
    question: String,
}

impl Reviewer for Review<'_> {
    fn show(&self, plan: &Plan) {
        if !self.ui.json() {
            print_plan(self.ui, plan, PlanFormat::Human);
        }
    }

    fn approve(&self, _plan: &Plan) -> Result<(), String> {
        if self.auto_approve {
            return Ok(());
        }
        super::confirm(&self.question).map_err(|e| format!("{e:#}"))
    }
}

/// The outcome as text or JSON, and its exit code.
fn show(ui: &Ui, verb: &str, executed: Executed) -> ExitCode {
    match executed {
        Executed::NoChanges { plan } => {
            // The plan shown above says what still waits, if anything.
            ui.note("Nothing to apply.");
            if ui.json() {
                ui.print(
                    &serde_json::json!({"format_version": "1", "outcome": "no-changes", "plan": plan})
                        .to_string(),
                );
            }
            exit::SUCCESS
        }
        Executed::Applied { report, audit } => {
            super::publish_head(&audit);
            if ui.json() {
                ui.print(&serde_json::to_string(&report).expect("report serializes"));
            } else {
                ui.print(&crate::report::apply_human(verb, &report));
            }
            if report.outcome == "succeeded" {
                exit::SUCCESS
            } else {
                exit::FAILURE
            }
        }
    }
}
