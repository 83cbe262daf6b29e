//! `image build | list | prune`: wiring of the HiX image lifecycle (`ops::image`)
//! to the project, the locks and the output.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde_json::json;

use crate::args::{Cli, ImageCommand};
use crate::ui::Ui;
use lifeboat_core::graph::{Graph, ResourceId};
use lifeboat_engine::cloud::inventory::Refresh;
use lifeboat_engine::ops::image::{self, BuildOutcome, PruneStep, TenantImages};
use lifeboat_engine::review::Workspace;

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

fn build(
    ui: &Ui,
    ws: &Workspace,
    tenants: &[String],
    concurrency: usize,
    lock_timeout: f64,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
    let lock_timeout = super::lock_timeout(lock_timeout)?;
    let emit = |e: image::ImageEvent| ui.image_event(&e);
    let summary = image::build_images(ws, tenants, concurrency, lock_timeout, &emit)?;
    if let Some(head) = &summary.audit {
        super::publish_head(head);
    }
    let (built, exists, failed) = (summary.built, summary.existing, summary.failed);
    if ui.json() {
        ui.print(
            &json!({"builds": summary.builds, "built": built, "existing": exists, "failed": failed, "wall_ms": summary.wall_ms})
                .to_string(),
        );
    } else {
        let mut s = format!(
            "\nImages: {built} built, {exists} already existed, {failed} failed in {:.1} s.\n",
            summary.wall_ms as f64 / 1000.0
        );
        for r in summary
            .builds
            .iter()
            .filter(|r| r.outcome == BuildOutcome::Failed)
        {
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
    let chosen = image::selected(&ws.project, tenants)?;
    let prior = ws
        .session
        .prior_state(&ws.project, &Graph::default(), Refresh::Graph)?;
    let declared: Vec<(String, ResourceId)> = chosen
        .iter()
        .map(|t| {
            (
                t.id.value.clone(),
                lifeboat_core::model::naming::declared_image(&ws.project.platform, t),
            )
        })
        .collect();
    Ok(image::inventory(&prior, &declared))
}

fn list(ui: &Ui, ws: &Workspace, tenants: &[String]) -> anyhow::Result<ExitCode> {
    let images = inventory(ws, tenants)?;
    if ui.json() {
        ui.print(
            &serde_json::to_string_pretty(&json!({"format_version": "1", "tenants": images}))
                .expect("JSON serializes"),
        );
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
