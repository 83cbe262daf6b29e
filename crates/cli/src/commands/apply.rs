//! `apply` and `destroy`: get a plan (saved, or made now and confirmed), take the
//! layer locks, run the engine with the journal, and print its report.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use super::plan::print_plan;
use super::session::{Session, Workspace, declared_elsewhere, inputs, lock_scopes};
use crate::args::{ApplyArgs, Cli, DestroyArgs, ExecArgs, PlanFormat, Refresh};
use crate::ui::Ui;
use lifeboat_core::graph::{Graph, Scope};
use lifeboat_core::model::Project;
use lifeboat_core::plan::{Action, Plan, PlanOptions, window};
use lifeboat_engine::apply::{self, ApplyOptions, ApplyReport};
use lifeboat_engine::state;

pub fn run(cli: &Cli, ui: &Ui, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let ws = match Workspace::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let Some(file) = &args.planfile else {
        let plan = ws.plan(
            &args.tenants,
            args.shared,
            args.refresh,
            &args.allow_data_loss,
        )?;
        return review_and_execute(
            ui,
            &ws,
            &plan,
            args.auto_approve,
            "Apply these changes?",
            &args.exec,
            "apply",
        );
    };
    if !args.tenants.is_empty() || args.shared || !args.allow_data_loss.is_empty() {
        bail!(
            "a saved plan carries its own scope and --allow-data-loss; give either PLANFILE or --tenant/--shared/--allow-data-loss"
        );
    }
    let (plan, hash) = saved_plan(&ws.session, &ws.project, &ws.templates, file, args.refresh)?;
    execute(ui, &ws, &plan, hash, &args.exec, "apply")
}

/// Show a freshly made plan, ask (unless `auto_approve`), then execute it.
fn review_and_execute(
    ui: &Ui,
    ws: &Workspace,
    plan: &Plan,
    auto_approve: bool,
    question: &str,
    exec: &ExecArgs,
    command: &str,
) -> anyhow::Result<ExitCode> {
    if !ui.json() {
        print_plan(ui, plan, PlanFormat::Human);
    }
    guards(&ws.project, plan, exec)?;
    if plan.has_changes() && !auto_approve {
        super::confirm(question)?;
    }
    execute(ui, ws, plan, plan.hash(), exec, command)
}

/// A saved plan, checked against what it was computed from. After a crash the
/// cloud differs from the plan's prior state by exactly what the journal records
/// for this plan; then the plan resumes with its finished changes left out.
fn saved_plan(
    session: &Session,
    project: &lifeboat_core::model::Project,
    templates: &lifeboat_core::graph::templates::TemplateSet,
    file: &Path,
    refresh: Refresh,
) -> anyhow::Result<(Plan, String)> {
    let (bytes, expected) = read_plan(session, file)?;
    let mut plan: Plan = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: not a lifeboat plan (saved with `plan --out`)",
            file.display()
        )
    })?;
    let hash = plan.hash();
    if let Some((want, location)) = expected
        && want != hash
    {
        bail!(
            "{location}: its content hashes to {hash}, not {want}: refusing a plan that was changed after it was saved"
        );
    }
    let graph = lifeboat_core::graph::build(project, templates, &plan.scope)
        .context("rendering the resource graph")?;
    let prior = session.prior_state(project, &graph, refresh)?;
    let now = inputs(project, templates, &prior);
    let journal = session
        .rt
        .block_on(session.state.journal())
        .context("reading the apply journal")?;
    let resumed = journal.iter().any(|e| e.plan == hash);
    let mut stale = Vec::new();
    if now.lifeboat_version != plan.inputs.lifeboat_version {
        stale.push(format!(
            "lifeboat {} made it, this is {}",
            plan.inputs.lifeboat_version, now.lifeboat_version
        ));
    }
    for (what, a, b) in [
        ("manifest", &plan.inputs.manifests, &now.manifests),
        ("template", &plan.inputs.templates, &now.templates),
    ] {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            if a.get(k) != b.get(k) {
                stale.push(format!("{what} {k} changed"));
            }
        }
    }
    if now.prior_state != plan.inputs.prior_state && !resumed {
        stale.push("the cloud changed since the plan was made".into());
    }
    if !stale.is_empty() {
        bail!(
            "{}: refusing a stale plan: {}. Run `lifeboat plan` again.",
            file.display(),
            stale.join("; ")
        );
    }
    if resumed {
        let done: HashSet<String> = journal
            .iter()
            .filter(|e| e.plan == hash && e.event == "done")
            .map(|e| e.id.key().to_string())
            .collect();
        let pending = plan
            .changes
            .iter()
            .filter(|c| c.action != Action::NoOp && !done.contains(c.id.key()))
            .count();
        if pending == 0 {
            bail!(
                "{}: this plan was already applied in full; a saved plan applies once. Run `lifeboat plan` again.",
                file.display()
            );
        }
        for c in &mut plan.changes {
            if done.contains(c.id.key()) {
                c.action = Action::NoOp;
            }
        }
    }
    Ok((plan, hash))
}

/// A saved plan found in the state store: the hash it must have, and where it was.
type StoredPlan = (String, String);

/// The bytes of a saved plan: a file, or else (a plan hash, or `plans/<hash>.json`)
/// the artifact in the state store, with the hash it must have and where it was.
fn read_plan(session: &Session, file: &Path) -> anyhow::Result<(Vec<u8>, Option<StoredPlan>)> {
    match std::fs::read(file) {
        Ok(b) => return Ok((b, None)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("reading the plan {}", file.display()));
        }
        Err(_) => {}
    }
    let name = file.to_string_lossy();
    let hash = name
        .strip_prefix("plans/")
        .unwrap_or(&name)
        .trim_end_matches(".json");
    if hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "reading the plan {}: no such file (a saved plan in the state store is named by its 32-character hash)",
            file.display()
        );
    }
    let hash = hash.to_ascii_lowercase();
    match session
        .rt
        .block_on(session.state.load_plan(&hash))
        .context("reading a saved plan from the state store")?
    {
        Some((bytes, location)) => Ok((bytes, Some((hash, location)))),
        None => bail!(
            "no plan file {} here, and no saved plan {hash} in {}",
            file.display(),
            session.state.describe()
        ),
    }
}

/// What a plan must pass before anything is written: capacity reductions need
/// their flag; disruptive tenant changes need the tenant's maintenance window (or
/// `--outside-window`) and are refused outright while the tenant is activated.
fn guards(project: &Project, plan: &Plan, exec: &ExecArgs) -> anyhow::Result<()> {
    let blocking: Vec<String> = plan
        .blocking_findings()
        .map(|f| {
            let what = f.resource.as_deref().map_or_else(
                || format!("tenant {}", f.tenant.as_deref().unwrap_or("shared")),
                |id| {
                    lifeboat_core::id::ResourceId::parse(id)
                        .map_or(id.to_string(), |i| i.display_name())
                },
            );
            format!("{} on {what}: {} ({})", f.rule, f.message, f.location)
        })
        .collect();
    if !blocking.is_empty() {
        bail!(
            "refusing a plan with {} unwaived policy error(s):\n  {}\nFix them, or add a waiver (exceptions: rule, reason, expires) to the manifest after review",
            blocking.len(),
            blocking.join("\n  ")
        );
    }
    if !plan.capacity_reductions.is_empty() && !exec.allow_capacity_reduction {
        let list: Vec<String> = plan
            .capacity_reductions
            .iter()
            .map(|c| c.describe())
            .collect();
        bail!(
            "refusing to lower capacity: {}. Check that the workload fits, then re-run with --allow-capacity-reduction",
            list.join("; ")
        );
    }
    let mut by_tenant: BTreeMap<&str, Vec<&lifeboat_core::plan::Kept>> = BTreeMap::new();
    for d in &plan.disruptions {
        by_tenant
            .entry(d.tenant.as_deref().unwrap_or("shared"))
            .or_default()
            .push(d);
    }
    if by_tenant.is_empty() {
        return Ok(());
    }
    let now = super::now()?;
    let mut problems = Vec::new();
    for (tenant, ds) in by_tenant {
        let example = format!("{} {}", ds[0].id.display_name(), ds[0].reason);
        let n = ds.len();
        if plan.activated.iter().any(|a| a == tenant) {
            problems.push(format!(
                "tenant {tenant} is activated (an emergency is in progress): {n} disruptive change(s) refused (e.g. {example}); deactivate it first"
            ));
            continue;
        }
        if exec.outside_window {
            continue;
        }
        let Some(t) = project.tenant(tenant) else {
            problems.push(format!(
                "tenant {tenant} has no manifest, so no maintenance window: {n} disruptive change(s) (e.g. {example}) need --outside-window"
            ));
            continue;
        };
        let w = &t.maintenance_window;
        let state = window::state(w, now).map_err(|e| anyhow::anyhow!("tenant {tenant}: {e}"))?;
        if state.open_until.is_none() {
            let next = state
                .next_start
                .to_zoned_datetime(jiff::tz::TimeZone::get(&w.timezone)?)
                .strftime("%A %Y-%m-%d %H:%M %Z");
            problems.push(format!(
                "tenant {tenant}: {n} disruptive change(s) (e.g. {example}) wait for its maintenance window ({} {} {}, {} h; next opens {next}); or pass --outside-window",
                w.day, w.start, w.timezone, w.hours
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

/// The time windows are judged at: now, or `LIFEBOAT_NOW` (RFC 3339), which lets a
/// change review rehearse an apply at its planned time (and tests pin the clock).
fn execute(
    ui: &Ui,
    ws: &Workspace,
    plan: &Plan,
    hash: String,
    exec: &ExecArgs,
    command: &str,
) -> anyhow::Result<ExitCode> {
    let (max_parallel, lock_timeout) = (exec.max_parallel, exec.lock_timeout);
    guards(&ws.project, plan, exec)?;
    let session = &ws.session;
    if !plan.has_changes() || plan.changes.iter().all(|c| c.action == Action::NoOp) {
        ui.note("No changes. Nothing to apply.");
        if ui.json() {
            ui.print(
                &serde_json::json!({"format_version": "1", "outcome": "no-changes", "plan": hash})
                    .to_string(),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::ensure!(lock_timeout >= 0.0, "--lock-timeout must not be negative");
    let timeout = Duration::from_secs_f64(lock_timeout);
    // UTC time first (runs sort by it), then enough to be unique across agents.
    let run_id = format!(
        "{}-{}-{:04x}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
        std::process::id(),
        fastrand::u16(..)
    );
    let scopes = lock_scopes(plan);
    let report: ApplyReport =
        session
            .rt
            .block_on(session.holding_locks(&scopes, command, timeout, async {
                let journal_entries = session
                    .state
                    .journal()
                    .await
                    .context("reading the apply journal")?;
                let in_doubt = state::in_doubt(&journal_entries)
                    .into_iter()
                    .map(|e| e.id)
                    .collect();
                session
                    .state
                    .compact_journal(&journal_entries, 5)
                    .await
                    .context("compacting the apply journal")?;
                let journal = session
                    .state
                    .journal_writer(&run_id)
                    .await
                    .context("opening the apply journal")?;
                let opts = ApplyOptions {
                    max_parallel,
                    run: run_id.clone(),
                    in_doubt,
                    plan_hash: hash,
                };
                let emit = |e: lifeboat_engine::apply::Event| ui.event(&e);
                Ok(apply::apply(plan, &session.client, &journal, opts, &emit).await)
            }))?;
    let mut tenants: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| c.tenant.clone().unwrap_or_else(|| "shared".into()))
        .collect();
    tenants.dedup();
    tenants.sort();
    tenants.dedup();
    super::audit(
        session,
        lifeboat_engine::state::audit::Entry {
            command: command.into(),
            tenants,
            reason: None,
            plan: Some(report.plan.clone()),
            outcome: report.outcome.into(),
            details: serde_json::json!({"summary": report.summary, "makespan_ms": report.makespan_ms}),
        },
    )?;
    if ui.json() {
        ui.print(&serde_json::to_string(&report).expect("report serializes"));
    } else {
        ui.print(&crate::report::apply_human(&report));
    }
    Ok(if report.outcome == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn destroy(cli: &Cli, ui: &Ui, args: &DestroyArgs) -> anyhow::Result<ExitCode> {
    let ws = match Workspace::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let (project, templates, session) = (&ws.project, &ws.templates, &ws.session);
    let shared = args.tenant == "shared";
    let scope = if shared {
        Scope {
            shared: true,
            tenants: Some(Vec::new()),
        }
    } else {
        Scope {
            shared: false,
            tenants: Some(vec![args.tenant.clone()]),
        }
    };
    // The manifest's graph tells which resource groups to read; the desired graph
    // for the plan is empty, so everything found in scope is planned for delete.
    let known = lifeboat_core::graph::build(project, templates, &scope)
        .context("rendering the resource graph")?;
    let prior = session.prior_state(project, &known, Refresh::Graph)?;
    let owned = |r: &lifeboat_core::observed::ObservedResource| {
        prior
            .ownership(r)
            .is_some_and(|o| o.tenant.as_deref() == Some(args.tenant.as_str()))
    };
    if !shared && project.tenant(&args.tenant).is_none() && !prior.resources.iter().any(owned) {
        bail!(
            "--tenant {}: no tenants/{}.yaml and nothing in the cloud belongs to it (tag lifeboat-tenant={})",
            args.tenant,
            args.tenant,
            args.tenant
        );
    }
    if shared {
        let tenants: std::collections::BTreeSet<String> = prior
            .resources
            .iter()
            .filter_map(|r| prior.ownership(r)?.tenant)
            .collect();
        if !tenants.is_empty() {
            bail!(
                "refusing to destroy the shared layer while tenants exist ({}); destroy them first",
                tenants.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let inputs = inputs(project, templates, &prior);
    let elsewhere = declared_elsewhere(project, templates, &scope, &known)?;
    let plan = lifeboat_core::plan::plan(
        Graph::default(),
        &prior,
        PlanOptions {
            scope: &scope,
            allow_data_loss: &args.allow_data_loss,
            inputs,
            declared_elsewhere: &elsewhere,
        },
    )?;
    let question = format!("Destroy tenant {}?", args.tenant);
    review_and_execute(
        ui,
        &ws,
        &plan,
        args.auto_approve,
        &question,
        &args.exec,
        "destroy",
    )
}
