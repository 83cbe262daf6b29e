//! `image build | list | prune`: wiring of the HiX image lifecycle (`ops::image`)
//! to the project, the locks and the output.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use crate::args::{Cli, ImageCommand};
use crate::ui::Ui;
use lifeboat_core::graph::{Graph, Layer, ResourceId};
use lifeboat_core::model::Project;
use lifeboat_core::model::naming::{PlatformNames, TenantNames};
use lifeboat_engine::cloud::inventory::Refresh;
use lifeboat_engine::ops::image::{self, BuildOutcome, BuildTarget, PruneStep, TenantImages};
use lifeboat_engine::review::Workspace;
use lifeboat_engine::review::scope_from;

pub fn run(cli: &Cli, ui: &Ui, cmd: &ImageCommand) -> anyhow::Result<ExitCode> {
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    match cmd {
        ImageCommand::Build {
            tenants,
            all: _,
            concurrency,
            lock_timeout,
        } => build(ui, &ws, tenants, *concurrency, *lock_timeout),
        ImageCommand::List { tenants } => list(ui, &ws, tenants),
        ImageCommand::Prune {
            keep,
            tenants,
            auto_approve,
        } => prune(ui, &ws, tenants, *keep, *auto_approve),
    }
}

/// The gallery image version a tenant's manifest declares.
fn declared_image(project: &Project, tenant: &lifeboat_core::model::Tenant) -> ResourceId {
    let p = &project.platform;
    let shared = PlatformNames::derive(p);
    let names = TenantNames::derive(p, tenant);
    ResourceId::parse(&format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/galleries/{}/images/{}/versions/{}",
        p.subscription_id, shared.rg, shared.gallery, names.image_definition, names.image_version
    ))
    .expect("derived names form an ARM id")
}

fn selected<'p>(
    project: &'p Project,
    tenants: &[String],
) -> anyhow::Result<Vec<&'p lifeboat_core::model::Tenant>> {
    scope_from(project, tenants, false)?;
    Ok(project
        .tenants
        .iter()
        .filter(|t| tenants.is_empty() || tenants.contains(&t.id.value))
        .collect())
}

fn build(
    ui: &Ui,
    ws: &Workspace,
    tenants: &[String],
    concurrency: usize,
    lock_timeout: f64,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
    let lock_timeout = super::lock_timeout(lock_timeout)?;
    let chosen = selected(&ws.project, tenants)?;
    let ids: Vec<String> = chosen.iter().map(|t| t.id.value.clone()).collect();
    let scope = scope_from(&ws.project, &ids, false)?;
    let graph = lifeboat_core::graph::build(&ws.project, &ws.templates, &scope)
        .context("rendering the resource graph")?;
    let mut targets = Vec::new();
    for t in &chosen {
        let resources: Vec<_> = graph
            .resources
            .iter()
            .filter(|r| r.layer == Layer::Image && r.tenant.as_deref() == Some(&t.id.value))
            .cloned()
            .collect();
        let Some(template) = resources.iter().find(|r| {
            r.resource_type
                .eq_ignore_ascii_case("Microsoft.VirtualMachineImages/imageTemplates")
        }) else {
            bail!(
                "tenant {}: the image templates render no Microsoft.VirtualMachineImages/imageTemplates resource",
                t.id.value
            );
        };
        targets.push(BuildTarget {
            tenant: t.id.value.clone(),
            template: template.id.clone(),
            version: declared_image(&ws.project, t),
            resources,
            lifetime_days: ws.project.platform.gallery.image_lifetime_days,
        });
    }
    let scopes: Vec<String> = ids.iter().map(|t| format!("image-{t}")).collect();
    let session = &ws.session;
    let started = std::time::Instant::now();
    let results = session.rt.block_on(session.holding_locks(
        &scopes,
        "image build",
        lock_timeout,
        async {
            let emit = |e: image::ImageEvent| ui.image_event(&e);
            Ok::<_, anyhow::Error>(
                image::build(&session.client, &targets, concurrency, &emit).await,
            )
        },
    ))?;
    let wall_ms = started.elapsed().as_millis() as u64;
    let count = |o| results.iter().filter(|r| r.outcome == o).count();
    let (built, exists, failed) = (
        count(BuildOutcome::Built),
        count(BuildOutcome::Exists),
        count(BuildOutcome::Failed),
    );
    super::audit(
        session,
        lifeboat_engine::state::audit::Entry {
            command: "image build".into(),
            tenants: ids.clone(),
            outcome: if failed == 0 { "succeeded" } else { "failed" }.into(),
            details: json!({"built": built, "existing": exists, "failed": failed}),
            ..Default::default()
        },
    )?;
    if ui.json() {
        ui.print(
            &json!({"builds": results, "built": built, "existing": exists, "failed": failed, "wall_ms": wall_ms})
                .to_string(),
        );
    } else {
        let mut s = format!(
            "\nImages: {built} built, {exists} already existed, {failed} failed in {:.1} s.\n",
            wall_ms as f64 / 1000.0
        );
        for r in results.iter().filter(|r| r.outcome == BuildOutcome::Failed) {
            let _ = writeln!(
                s,
                "  FAILED {} {}: {}\n    the front-ends stay on their current image.",
                r.tenant,
                r.version,
                r.error.as_deref().unwrap_or("")
            );
        }
        if built > 0 {
            s.push_str("Run `lifeboat plan` to see the front-ends move to the new images.\n");
        }
        ui.print(&s);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        crate::exit::FAILURE
    })
}

fn inventory(ws: &Workspace, tenants: &[String]) -> anyhow::Result<Vec<TenantImages>> {
    let chosen = selected(&ws.project, tenants)?;
    let prior = ws
        .session
        .prior_state(&ws.project, &Graph::default(), Refresh::Graph)?;
    let declared: Vec<(String, ResourceId)> = chosen
        .iter()
        .map(|t| (t.id.value.clone(), declared_image(&ws.project, t)))
        .collect();
    Ok(image::inventory(&prior, &declared))
}

fn list(ui: &Ui, ws: &Workspace, tenants: &[String]) -> anyhow::Result<ExitCode> {
    let images = inventory(ws, tenants)?;
    if ui.json() {
        ui.print(&json!({"tenants": images}).to_string());
        return Ok(ExitCode::SUCCESS);
    }
    let mut s = format!(
        "{:<9} {:<10} {:<10} {:<22} {:<44} {}\n",
        "TENANT",
        "DECLARED",
        "NEWEST",
        "IN USE (front-ends)",
        "REPLICATION (newest)",
        "END OF LIFE"
    );
    for t in &images {
        let in_use = if t.in_use.is_empty() {
            "-".to_string()
        } else {
            t.in_use
                .iter()
                .map(|(v, n)| format!("{v} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let newest = t.versions.first();
        let replication = newest.map_or("-".to_string(), |v| {
            v.replication
                .iter()
                .map(|r| {
                    let region = r["region"].as_str().unwrap_or("?");
                    match r["state"].as_str() {
                        Some("Completed") => format!("{region} done"),
                        _ => format!("{region} {}%", r["progress"]),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        });
        let eol = newest
            .and_then(|v| v.end_of_life.as_deref())
            .map_or("-", |d| d.get(..10).unwrap_or(d));
        let _ = writeln!(
            s,
            "{:<9} {:<10} {:<10} {:<22} {:<44} {}",
            t.tenant,
            t.declared,
            t.newest.as_deref().unwrap_or("(none)"),
            in_use,
            replication,
            eol
        );
    }
    ui.print(&s);
    Ok(ExitCode::SUCCESS)
}

fn prune(
    ui: &Ui,
    ws: &Workspace,
    tenants: &[String],
    keep: usize,
    auto_approve: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        keep >= 1,
        "--keep must be at least 1: the newest version always stays"
    );
    let images = inventory(ws, tenants)?;
    let actions = image::prune_plan(&images, keep);
    if actions.is_empty() {
        ui.note("Nothing to prune.");
        if ui.json() {
            ui.print(&json!({"actions": [], "errors": []}).to_string());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !ui.json() {
        let mut s = String::new();
        for a in &actions {
            let what = match a.step {
                PruneStep::Delete => "- delete",
                PruneStep::ExcludeFromLatest => "~ exclude from latest",
            };
            let _ = writeln!(s, "{what:<22} {} {}", a.tenant, a.version);
        }
        ui.print(&s);
    }
    if !auto_approve {
        super::confirm("Prune these image versions?")?;
    }
    let session = &ws.session;
    let errors = session.rt.block_on(image::prune(&session.client, &actions));
    let mut pruned: Vec<String> = actions.iter().map(|a| a.tenant.clone()).collect();
    pruned.sort();
    pruned.dedup();
    super::audit(
        session,
        lifeboat_engine::state::audit::Entry {
            command: "image prune".into(),
            tenants: pruned,
            outcome: if errors.is_empty() {
                "succeeded"
            } else {
                "failed"
            }
            .into(),
            details: json!({"steps": actions.len(), "failed": errors.len()}),
            ..Default::default()
        },
    )?;
    if ui.json() {
        let errs: Vec<_> = errors
            .iter()
            .map(|(id, e)| json!({"id": id, "error": e.to_string()}))
            .collect();
        ui.print(&json!({"actions": actions, "errors": errs}).to_string());
    } else {
        for (id, e) in &errors {
            ui.note(&format!("FAILED {id}: {e}"));
        }
        ui.note(&format!(
            "Pruned: {} of {} step(s) done.",
            actions.len() - errors.len(),
            actions.len()
        ));
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        crate::exit::FAILURE
    })
}
