//! `roster plan`, `roster apply`, `roster report`: pick the tenants, run the
//! engine's roster (`ops::roster`) against Microsoft Graph, record every change
//! in the audit trail and print.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::args::{AttestationFormat, Cli, PlanFormat, RosterCommand};
use crate::exit;
use crate::report::roster as view;
use crate::ui::Ui;
use lifeboat_core::model::Tenant;
use lifeboat_engine::ops::roster::{self, RosterPlan};
use lifeboat_engine::review::Workspace;
use lifeboat_engine::state::audit::Entry;

pub fn run(cli: &Cli, ui: &Ui, cmd: &RosterCommand) -> anyhow::Result<ExitCode> {
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    match cmd {
        RosterCommand::Plan {
            tenants,
            format,
            detailed_exitcode,
            keep_unmanaged,
        } => {
            let plan = make_plan(&ws, tenants, *keep_unmanaged)?;
            match (ui.json(), format) {
                (true, _) | (_, PlanFormat::Json) => {
                    ui.print(&serde_json::to_string(&plan).expect("plan serializes"))
                }
                (_, PlanFormat::Markdown) => ui.print(&view::plan_text(&plan, true)),
                (_, PlanFormat::Human) => ui.print(&view::plan_text(&plan, false)),
            }
            Ok(if *detailed_exitcode && plan.changes() > 0 {
                exit::changes()
            } else {
                exit::SUCCESS
            })
        }
        RosterCommand::Apply {
            tenants,
            auto_approve,
            keep_unmanaged,
        } => apply(&ws, ui, tenants, *auto_approve, *keep_unmanaged),
        RosterCommand::Report { tenant, format } => report(&ws, ui, tenant, *format),
    }
}

/// The tenants named (each must exist and have a roster), or every tenant with one.
fn chosen<'p>(ws: &'p Workspace, names: &[String]) -> anyhow::Result<Vec<&'p Tenant>> {
    if names.is_empty() {
        let all: Vec<&Tenant> = ws
            .project
            .tenants
            .iter()
            .filter(|t| t.access.roster.is_some())
            .collect();
        if all.is_empty() {
            bail!("no tenant has spec.access.roster: nothing to reconcile");
        }
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            let t = ws
                .project
                .tenant(n)
                .with_context(|| format!("unknown tenant `{n}`"))?;
            if t.access.roster.is_none() {
                bail!("tenant {n} has no spec.access.roster in tenants/{n}.yaml");
            }
            Ok(t)
        })
        .collect()
}

fn make_plan(ws: &Workspace, names: &[String], keep_unmanaged: bool) -> anyhow::Result<RosterPlan> {
    ws.session.rt.block_on(plan_now(ws, names, keep_unmanaged))
}

async fn plan_now(
    ws: &Workspace,
    names: &[String],
    keep_unmanaged: bool,
) -> anyhow::Result<RosterPlan> {
    let tenants = chosen(ws, names)?;
    let s = &ws.session;
    let audit = s
        .state
        .audit_verify()
        .await
        .context("reading the audit trail (who the roster added)")?;
    let today = lifeboat_core::clock::today()?;
    Ok(roster::plan(
        &s.graph,
        &ws.project,
        &tenants,
        today,
        &audit,
        keep_unmanaged,
    )
    .await?)
}

fn apply(
    ws: &Workspace,
    ui: &Ui,
    names: &[String],
    auto_approve: bool,
    keep_unmanaged: bool,
) -> anyhow::Result<ExitCode> {
    let s = &ws.session;
    // One roster run at a time: two would invite and remove past each other.
    let timeout = super::lock_timeout(60.0)?;
    let work = async {
        let plan = plan_now(ws, names, keep_unmanaged).await?;
        if !ui.json() {
            ui.print(&view::plan_text(&plan, false));
        }
        if plan.changes() > 0 && !auto_approve {
            tokio::task::block_in_place(|| super::confirm("Apply these roster changes?"))?;
        }
        // With no member to change, the groups and the MFA policy are still
        // made as they must be (a policy switched off is switched on again).
        let applied = roster::apply(&s.graph, &plan).await?;
        // Recorded before the lock goes: the next roster run reads who was
        // added from these records.
        let principal = s.client.credential().principal().await;
        let mut head = None;
        for c in &applied.changes {
            let entry = Entry {
                command: roster::AUDIT_COMMAND.into(),
                tenants: vec![c.tenant.clone()],
                reason: Some(c.detail.clone()),
                plan: None,
                outcome: if c.ok { "succeeded" } else { "failed" }.into(),
                details: serde_json::json!({
                    "change": c.change,
                    "upn": c.upn,
                    "grant": c.grant,
                    "error": c.error,
                }),
                principal: principal.clone(),
            };
            head = Some(
                s.state
                    .audit_append(entry)
                    .await
                    .context("recording a roster change in the audit trail")?,
            );
        }
        Ok::<_, anyhow::Error>((applied, head))
    };
    let (applied, head) =
        s.rt.block_on(s.holding_locks(&["roster".to_string()], "roster apply", timeout, work))?;
    if let Some(h) = &head {
        super::publish_head(h);
    }
    if ui.json() {
        ui.print(&serde_json::to_string(&applied).expect("serializes"));
    } else {
        ui.print(&view::applied_text(&applied));
    }
    let failed = applied.failed();
    if failed.iter().any(|c| c.change == "leave") {
        let names: Vec<&str> = failed
            .iter()
            .filter(|c| c.change == "leave")
            .map(|c| c.upn.as_str())
            .collect();
        bail!(
            "leaver(s) still have access: {} (see above); run `lifeboat roster apply` again",
            names.join(", ")
        );
    }
    Ok(if failed.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

fn report(
    ws: &Workspace,
    ui: &Ui,
    tenant: &str,
    format: AttestationFormat,
) -> anyhow::Result<ExitCode> {
    let t = chosen(ws, &[tenant.to_string()])?[0];
    let s = &ws.session;
    let audit =
        s.rt.block_on(s.state.audit_verify())
            .context("reading the audit trail")?;
    let today = lifeboat_core::clock::today()?;
    let roster_ = t.access.roster.as_ref().expect("chosen has a roster");
    let soll = roster_.soll(today);
    let managed = roster::managed(&audit, tenant);
    let name = roster::group_name(&ws.project.platform, t);
    let members = s.rt.block_on(async {
        match roster::find_group(&s.graph, &name).await? {
            Some(g) => roster::members(&s.graph, &g).await,
            None => Ok(Vec::new()),
        }
    })?;
    let in_group = |upn: &str| {
        members
            .iter()
            .any(|m| m.account_enabled && m.mail.eq_ignore_ascii_case(upn))
    };
    let rows: Vec<view::Attested> = soll
        .iter()
        .map(|(k, g)| view::Attested {
            upn: g.upn.clone(),
            display_name: g.display_name.clone(),
            basis: if g.department.is_empty() {
                g.rule.clone()
            } else {
                format!("{} ({} / {})", g.rule, g.department, g.function)
            },
            // Access since lifeboat added them; the HR start otherwise.
            since: managed
                .get(k)
                .map(|(_, at)| {
                    at.parse::<jiff::Timestamp>().map_or_else(
                        |_| at.clone(),
                        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    )
                })
                .or_else(|| g.since.map(|d| d.to_string()))
                .unwrap_or_default(),
            member: in_group(&g.upn),
        })
        .collect();
    let text = match format {
        AttestationFormat::Csv => view::attestation_csv(&rows),
        AttestationFormat::Html => {
            view::attestation_html(tenant, &name, &lifeboat_core::clock::stamp(), &rows)
        }
    };
    ui.print(text.trim_end());
    Ok(exit::SUCCESS)
}
