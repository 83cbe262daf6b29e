//! Command implementations: each wires the pipeline stages together for one
//! subcommand and hands the result to the `ui`. This is the `anyhow` boundary.

mod apply;
mod audit;
mod catalog;
mod check;
mod dap;
mod drift;
mod emulator;
mod export;
mod image;
mod plan;
mod pricing;
mod roster;
mod session;
mod status;
mod validate;

use std::process::ExitCode;

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

use crate::args::{Cli, Command, EmulatorCommand, ExportCommand};
use crate::ui::Ui;
use lifeboat_core::graph::templates::TemplateSet;
use lifeboat_core::manifest;
use lifeboat_core::model::Project;

pub fn run(cli: &Cli, ui: &Ui) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Validate => validate::run(cli, ui),
        Command::Plan(args) => plan::run(cli, ui, args),
        Command::Apply(args) => apply::run(cli, ui, args),
        Command::Drift(args) => drift::run(cli, ui, args),
        Command::Destroy(args) => apply::destroy(cli, ui, args),
        Command::Export(ExportCommand::Terraform { out }) => export::run(cli, ui, out),
        Command::Image(cmd) => image::run(cli, ui, cmd),
        Command::Roster(cmd) => roster::run(cli, ui, cmd),
        Command::Check(args) => check::run(cli, ui, args),
        Command::Pricing(cmd) => pricing::run(cli, ui, cmd),
        Command::Audit(cmd) => audit::run(cli, ui, cmd),
        Command::Activate(args) => dap::activate(cli, ui, args),
        Command::Deactivate(args) => dap::deactivate(cli, ui, args),
        Command::Drill(args) => dap::drill(cli, ui, args),
        Command::Status(args) => status::run(cli, ui, args),
        Command::Catalog(cmd) => catalog::run(cli, ui, cmd),
        Command::Emulator(EmulatorCommand::Serve {
            listen,
            data,
            allow_remote,
        }) => emulator::serve(cli, ui, listen, data, *allow_remote),
    }
}

/// Ask before a change; refuses on a non-terminal (pipelines pass `--auto-approve`).
pub(crate) fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "not applying without confirmation: stdin is not a terminal; pass --auto-approve (pipelines) after reviewing the plan"
        );
    }
    crate::ui::stderr_text(&format!("{question} Only 'yes' is accepted: "));
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if answer.trim() != "yes" {
        bail!("not applied: the answer was not 'yes'");
    }
    Ok(())
}

/// Leave a large value to the process exit instead of freeing it: the command ends
/// right after, and freeing a fleet's millions of small allocations one by one
/// costs tens of milliseconds (rustc does the same with its arenas). A
/// workspace left so keeps its runtime's idle threads, which the exit ends
/// (shutting them down took ~5 ms); nothing of a read-only command is still
/// in flight by then, and a state lock (which `plan` never takes) would be
/// released by the OS with the process.
pub(crate) fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}

/// Validated project, or the diagnostics printed and exit 1.
pub(crate) fn load_project(cli: &Cli, ui: &Ui) -> Result<Project, ExitCode> {
    manifest::load(&cli.dir).map_err(|d| {
        ui.diagnostics(&d);
        crate::exit::FAILURE
    })
}

pub(crate) fn load_templates(cli: &Cli) -> anyhow::Result<TemplateSet> {
    TemplateSet::load(&cli.dir).context("loading templates")
}

/// The validated project, its templates and its full graph (every layer), or the
/// exit code after the diagnostics were printed.
pub(crate) fn load_full_graph(
    cli: &Cli,
    ui: &Ui,
) -> anyhow::Result<Result<(Project, TemplateSet, lifeboat_core::graph::Graph), ExitCode>> {
    let project = match load_project(cli, ui) {
        Ok(p) => p,
        Err(code) => return Ok(Err(code)),
    };
    let templates = load_templates(cli)?;
    let graph = lifeboat_core::graph::build(
        &project,
        &templates,
        &lifeboat_core::graph::Scope::everything(),
    )
    .context("rendering the resource graph")?;
    Ok(Ok((project, templates, graph)))
}

/// `--lock-timeout` as a duration: finite, not negative, and small enough to
/// be one (a typo like `1e300` is an error, not a panic).
pub(crate) fn lock_timeout(seconds: f64) -> anyhow::Result<std::time::Duration> {
    if seconds.is_nan() || seconds < 0.0 {
        bail!("--lock-timeout {seconds}: must be a number of seconds, 0 or more");
    }
    std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| anyhow::anyhow!("--lock-timeout {seconds}: too long to wait"))
}

/// Append to the audit trail; a command whose record cannot be written fails.
pub(crate) fn audit(
    session: &lifeboat_engine::review::Session,
    entry: lifeboat_engine::state::audit::Entry,
) -> anyhow::Result<()> {
    let head = session
        .audit(entry)
        .context("recording in the audit trail")?;
    publish_head(&head);
    Ok(())
}

/// Publish the audit trail's new head where the writer cannot take it back:
/// this command's output (stderr) and, in Azure Pipelines, the run's log and a
/// variable later steps can pass to `audit verify --expect-head`.
pub(crate) fn publish_head(head: &lifeboat_engine::state::audit::Head) {
    crate::ui::stderr_line(&format!("Audit trail head: {head}"));
    if std::env::var_os("TF_BUILD").is_some() {
        crate::ui::stderr_line(&format!(
            "##vso[task.setvariable variable=LIFEBOAT_AUDIT_HEAD]{head}"
        ));
    }
}
