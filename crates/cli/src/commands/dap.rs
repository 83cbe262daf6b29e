//! `activate`, `deactivate`, `drill`: resolve the tenant, hold its lock, run the
//! Disaster Activation Plan (`ops::dap`), print the timeline and the RTO, record
//! the run in the audit trail, and write a drill's reports.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::args::{ActivateArgs, Cli, DeactivateArgs, DrillArgs};
use crate::report;
use crate::ui::Ui;
use lifeboat_engine::ops::dap::{self, Options, Run, Target};
use lifeboat_engine::review::Workspace;
use lifeboat_engine::state::audit::Entry;

fn target(ws: &Workspace, tenant: &str) -> anyhow::Result<Target> {
    let Some(t) = ws.project.tenant(tenant) else {
        let known: Vec<&str> = ws
            .project
            .tenants
            .iter()
            .map(|t| t.id.value.as_str())
            .collect();
        bail!("unknown tenant `{tenant}` (tenants: {})", known.join(", "));
    };
    Ok(Target::derive(&ws.project.platform, t))
}

/// `--read-write` is irreversible: the tenant id typed again, or `--confirm ID`;
/// one tenant at a time.
fn confirm_read_write(args: &ActivateArgs) -> anyhow::Result<()> {
    let [tenant] = args.tenants.as_slice() else {
        bail!("--read-write takes one tenant at a time (RESTORE WITH RECOVERY is irreversible)");
    };
    if let Some(c) = &args.confirm {
        if c != tenant {
            bail!("--confirm {c} does not match tenant {tenant}");
        }
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "--read-write is irreversible (RESTORE WITH RECOVERY takes the database out of log shipping): pass --confirm {tenant} in a pipeline"
        );
    }
    crate::ui::stderr_text(&format!(
        "RESTORE WITH RECOVERY is irreversible: {tenant} leaves log shipping and must be re-seeded afterwards. Type the tenant id to continue: "
    ));
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if answer.trim() != tenant {
        bail!("not activated: the answer was not `{tenant}`");
    }
    Ok(())
}

fn show(ui: &Ui, run: &Run) {
    if ui.json() {
        ui.print(&serde_json::to_string(run).expect("run serializes"));
    } else {
        ui.print(&report::dap::run_human(run));
    }
}

fn record(ws: &Workspace, run: &Run, command: &str) -> anyhow::Result<()> {
    super::audit(
        &ws.session,
        Entry {
            command: command.into(),
            tenants: vec![run.tenant.clone()],
            reason: run.reason.clone(),
            plan: None,
            outcome: run.outcome.clone(),
            details: serde_json::json!({
                "rto_ms": run.rto_ms,
                "modelled_rto_seconds": run.modelled_rto_seconds,
                "read_write": run.read_write,
                "drill": run.drill,
                "error": run.error,
            }),
            principal: None,
        },
    )
}

fn code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        crate::exit::FAILURE
    }
}

/// Open the workspace and run `work` holding the tenant's lock.
fn with_tenant<T>(
    cli: &Cli,
    ui: &Ui,
    tenant: &str,
    command: &str,
    lock_timeout: f64,
    work: impl AsyncFnOnce(&Workspace, Target) -> anyhow::Result<T>,
) -> anyhow::Result<Result<(Workspace, T), ExitCode>> {
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(Err(code)),
    };
    let t = target(&ws, tenant)?;
    let timeout = super::lock_timeout(lock_timeout)?;
    let scopes = [format!("tenant-{tenant}")];
    let s = &ws.session;
    let out =
        s.rt.block_on(s.holding_locks(&scopes, command, timeout, work(&ws, t)))?;
    Ok(Ok((ws, out)))
}

/// Why `target` must not be activated: nobody in its emergency group, or no
/// enabled MFA policy over it (Microsoft Graph, see `ops::roster::access`).
/// When Graph cannot be read, `--force` activates anyway (an Entra outage must
/// not keep a hospital from its records; who can log in is then what the
/// directory last held).
async fn access_refusal(ws: &Workspace, target: &Target, opts: &Options) -> Option<String> {
    let t = ws.project.tenant(&target.tenant)?;
    match lifeboat_engine::ops::roster::access(&ws.session.graph, &ws.project.platform, t).await {
        Ok(a) => a.refusal(&target.tenant),
        Err(_) if opts.force => None,
        Err(e) => Some(format!(
            "cannot check who may log in ({e}); --force activates without the check"
        )),
    }
}

/// Run `kind` on every tenant at once, each under its own lock (a tenant
/// that waits or fails does not hold up the others; ARM's rate limits are
/// shared through the one client), then record, show and summarise.
fn run_all(
    cli: &Cli,
    ui: &Ui,
    tenants: &[String],
    kind: &str,
    lock_timeout: f64,
    opts: &Options,
) -> anyhow::Result<ExitCode> {
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let mut seen = std::collections::HashSet::new();
    let targets: Vec<Target> = tenants
        .iter()
        .filter(|t| seen.insert(t.as_str()))
        .map(|t| target(&ws, t))
        .collect::<anyhow::Result<_>>()?;
    let timeout = super::lock_timeout(lock_timeout)?;
    let emit = |e: dap::DapEvent| ui.dap_event(&e);
    let s = &ws.session;
    let ws_ref = &ws;
    let started = std::time::Instant::now();
    let runs: Vec<Run> =
        s.rt.block_on(futures::future::join_all(targets.iter().map(|t| {
            let emit = &emit;
            async move {
                let scopes = [format!("tenant-{}", t.tenant)];
                let work = async {
                    let run = match kind {
                        "activate" => match access_refusal(ws_ref, t, opts).await {
                            Some(why) => Run::refused(kind, &t.tenant, opts, why),
                            None => dap::activate(&s.client, t, opts, emit).await,
                        },
                        _ => dap::deactivate(&s.client, t, opts, None, emit).await,
                    };
                    // Before the lock goes: an apply queued behind reads it.
                    // Losing it costs only a stale status for the lag.
                    let _ = s.journal_dap(&run, t).await;
                    Ok::<_, lifeboat_engine::review::LockError>(run)
                };
                match s.holding_locks(&scopes, kind, timeout, work).await {
                    Ok(run) => run,
                    Err(e) => Run::not_started(kind, &t.tenant, opts, format!("{e:#}")),
                }
            }
        })));
    let makespan_ms = started.elapsed().as_millis() as u64;
    for run in &runs {
        record(&ws, run, kind)?;
        show(ui, run);
    }
    super::catalog::republish_if_configured(&ws, ui)?;
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| r.outcome != "succeeded")
        .map(|r| r.tenant.as_str())
        .collect();
    if runs.len() > 1 {
        let summary = serde_json::json!({
            "summary": kind,
            "makespan_ms": makespan_ms,
            "tenants": runs.len(),
            "succeeded": runs.len() - failed.len(),
            "failed": failed,
            "rto": runs.iter().map(|r| (r.tenant.clone(), serde_json::json!({
                "rto_ms": r.rto_ms,
                "critical_path_ms": r.critical_path_ms,
                "modelled_rto_seconds": r.modelled_rto_seconds,
                "outcome": r.outcome,
            }))).collect::<serde_json::Map<_, _>>(),
        });
        if ui.json() {
            ui.print(&summary.to_string());
        } else {
            ui.print(&report::dap::summary_human(kind, makespan_ms, &runs));
        }
    }
    Ok(code(failed.is_empty()))
}

pub fn activate(cli: &Cli, ui: &Ui, args: &ActivateArgs) -> anyhow::Result<ExitCode> {
    if args.read_write {
        confirm_read_write(args)?;
    }
    let opts = Options {
        reason: Some(args.reason.clone()),
        force: args.force,
        read_write: args.read_write,
        drill: false,
    };
    run_all(cli, ui, &args.tenants, "activate", args.lock_timeout, &opts)
}

pub fn deactivate(cli: &Cli, ui: &Ui, args: &DeactivateArgs) -> anyhow::Result<ExitCode> {
    let opts = Options {
        reason: args.reason.clone(),
        ..Options::default()
    };
    run_all(
        cli,
        ui,
        &args.tenants,
        "deactivate",
        args.lock_timeout,
        &opts,
    )
}

pub fn drill(cli: &Cli, ui: &Ui, args: &DrillArgs) -> anyhow::Result<ExitCode> {
    let emit = |e: dap::DapEvent| ui.dap_event(&e);
    let reason = Some(args.reason.clone());
    let (ws, d) = match with_tenant(
        cli,
        ui,
        &args.tenant,
        "drill",
        args.lock_timeout,
        async |ws, t| {
            let opts = Options {
                force: args.force,
                ..Options::default()
            };
            if let Some(why) = access_refusal(ws, &t, &opts).await {
                bail!("drill of {} refused: {why}", t.tenant);
            }
            let d = dap::drill(&ws.session.client, &t, reason, args.force, &emit).await;
            // See `run_all`: what the drill wrote is read directly for the lag.
            let _ = ws.session.journal_dap(&d.activation, &t).await;
            Ok(d)
        },
    )? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    super::audit(
        &ws.session,
        Entry {
            command: "drill".into(),
            tenants: vec![d.tenant.clone()],
            reason: d.reason.clone(),
            plan: None,
            outcome: d.outcome.clone(),
            details: serde_json::json!({"rto_ms": d.rto_ms, "modelled_rto_seconds": d.modelled_rto_seconds}),
            principal: None,
        },
    )?;
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, text) in [
            (
                "drill.json",
                serde_json::to_string_pretty(&d).expect("drill serializes"),
            ),
            ("drill.html", report::dap::drill_html(&d)),
            ("drill-junit.xml", report::dap::drill_junit(&d)),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        ui.note(&format!("Drill report written to {}", dir.display()));
    }
    if ui.json() {
        ui.print(&serde_json::to_string(&d).expect("drill serializes"));
    } else {
        ui.print(&report::dap::drill_human(&d));
    }
    Ok(code(d.outcome == "passed"))
}
