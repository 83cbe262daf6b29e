//! `catalog publish` and `catalog verify`: reads the tenants' activation marks from
//! the cloud, builds and signs the endpoint catalog (`ops::catalog`), checks it.
//! `activate`/`deactivate`/`drill` republish it when `LIFEBOAT_CATALOG_KEY`,
//! `LIFEBOAT_CATALOG_CERT` and `LIFEBOAT_CATALOG_OUT` name the key, certificate
//! and file (a pipeline's secure files).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::args::{CatalogCommand, Cli};
use crate::ui::Ui;
use lifeboat_core::model::naming::PlatformNames;
use lifeboat_core::plan::ACTIVATION_TAG;
use lifeboat_engine::ops::catalog::{self, Endpoint, Service, TenantEntry};
use lifeboat_engine::ops::dap::{RG_API, Target};
use lifeboat_engine::review::Workspace;

/// How long consumers may cache a catalog (the eHealth BCP model's cache validity).
pub const CACHE_VALIDITY_S: u64 = 900;

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading the {what} {}", path.display()))
}

/// Sign the catalog of every tenant's current state into `out`.
pub(crate) fn publish(
    ws: &Workspace,
    key: &Path,
    cert: &Path,
    out: &Path,
) -> anyhow::Result<catalog::Verified> {
    let key_pem = read(key, "key")?;
    let cert_pem = read(cert, "certificate")?;
    let p = &ws.project.platform;
    let names = PlatformNames::derive(p);
    let s = &ws.session;
    let mut entries = Vec::new();
    for t in &ws.project.tenants {
        let target = Target::derive(p, t);
        let rg =
            s.rt.block_on(s.client.get(&target.rg, RG_API))
                .with_context(|| format!("reading tenant {}", t.id.value))?;
        let active = rg
            .as_ref()
            .and_then(|v| v.pointer(&format!("/tags/{ACTIVATION_TAG}")))
            .and_then(Value::as_str)
            == Some("active");
        entries.push(TenantEntry {
            id: t.id.value.clone(),
            name: t.name.clone(),
            services: vec![Service {
                name: "hix".into(),
                endpoints: vec![
                    Endpoint {
                        role: "primary",
                        url: format!("https://hix.{}.local", t.id.value),
                        active: !active,
                    },
                    Endpoint {
                        role: "fallback",
                        url: format!(
                            "https://{}.{}.cloudapp.azure.com/Citrix/{}Web",
                            names.public_ip, p.region.value, t.id.value
                        ),
                        active,
                    },
                ],
            }],
        });
    }
    let root = catalog::unsigned_root(
        &entries,
        &p.name,
        lifeboat_core::clock::now()?,
        CACHE_VALIDITY_S,
    );
    let key = catalog::load_key(&key_pem, &key.display().to_string())?;
    let xml = catalog::sign(&root, &key)?;
    // A key that does not match the certificate is caught here, not by consumers.
    let verified = catalog::verify(&xml, &cert_pem, lifeboat_core::clock::now()?)
        .context("the signed catalog does not verify with --cert (key and certificate differ?)")?;
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, &xml).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(verified)
}

/// The tenants whose fallback is active, for messages.
fn active(v: &catalog::Verified) -> String {
    if v.active.is_empty() {
        "none".into()
    } else {
        v.active.join(", ")
    }
}

/// After an activation or deactivation: republish when the pipeline configured it.
pub(crate) fn republish_if_configured(ws: &Workspace, ui: &Ui) -> anyhow::Result<()> {
    let var = |n: &str| std::env::var_os(n).map(PathBuf::from);
    if let (Some(k), Some(c), Some(o)) = (
        var("LIFEBOAT_CATALOG_KEY"),
        var("LIFEBOAT_CATALOG_CERT"),
        var("LIFEBOAT_CATALOG_OUT"),
    ) {
        let v = publish(ws, &k, &c, &o).context("republishing the endpoint catalog")?;
        ui.note(&format!(
            "Endpoint catalog {} republished: {} tenant(s), active: {}.",
            o.display(),
            v.tenants,
            active(&v)
        ));
    }
    Ok(())
}

pub fn run(cli: &Cli, ui: &Ui, cmd: &CatalogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CatalogCommand::Publish { key, cert, out } => {
            let ws = match super::session::open(cli, ui)? {
                Ok(ws) => ws,
                Err(code) => return Ok(code),
            };
            let v = publish(&ws, key, cert, out)?;
            ui.print(&format!(
                "Signed endpoint catalog written to {}: {} tenant(s), active: {}; valid until {}.",
                out.display(),
                v.tenants,
                active(&v),
                v.valid_until
            ));
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Verify { file, cert } => {
            let xml = read(file, "catalog")?;
            let cert_pem = read(cert, "certificate")?;
            match catalog::verify(&xml, &cert_pem, lifeboat_core::clock::now()?) {
                Ok(v) => {
                    ui.print(&format!(
                        "{}: signature valid; {} tenant(s), active: {}; valid until {}.",
                        file.display(),
                        v.tenants,
                        active(&v),
                        v.valid_until
                    ));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    crate::ui::stderr_line(&format!("error: {}: {e}", file.display()));
                    Ok(crate::exit::FAILURE)
                }
            }
        }
    }
}
