//! The HiX image lifecycle per hospital: build (run the tenant's Azure Image
//! Builder template so that gallery version `<major>.<minor>.<hotfix>` exists),
//! inventory (what exists, what the front-ends run, replication, end of life) and
//! prune (old versions out, superseded ones excluded from `latest`).
//!
//! Talks to the cloud only through the ARM client and never prints: builds report
//! [`ImageEvent`]s. Rolling front-ends onto a new version is `plan`'s job.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cloud::client::{ArmClient, ArmError};
use lifeboat_core::graph::{Resource, ResourceId};
use lifeboat_core::observed::PriorState;

pub use lifeboat_core::api::GALLERY as GALLERY_API;

/// What one tenant's build needs: its image-layer resources and the version.
#[derive(Debug, Clone)]
pub struct BuildTarget {
    pub tenant: String,
    /// The image definition and the Image Builder template, as rendered.
    pub resources: Vec<Resource>,
    pub template: ResourceId,
    pub version: ResourceId,
    pub lifetime_days: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ImageEvent {
    Building {
        tenant: String,
        version: String,
    },
    /// Still building: emitted every minute of Azure time while Image Builder
    /// runs (a build takes about 40 minutes).
    Progress {
        tenant: String,
        version: String,
        /// Azure seconds since the run started.
        elapsed_s: u64,
        /// What a build typically takes, in Azure seconds.
        typical_s: u64,
    },
    Built {
        tenant: String,
        version: String,
        duration_ms: u64,
    },
    Exists {
        tenant: String,
        version: String,
    },
    Failed {
        tenant: String,
        version: String,
        error: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildOutcome {
    Built,
    /// The version already existed: nothing was run.
    Exists,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildResult {
    pub tenant: String,
    pub version: String,
    pub outcome: BuildOutcome,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Properties a gallery image version reports but does not accept back.
const READ_ONLY: &[&str] = &["provisioningState", "replicationStatus", "storageProfile"];

/// PUT a version back with changes to its publishing profile (end of life,
/// exclude-from-latest): GET, change, PUT without the read-only parts.
async fn update_publishing(
    client: &ArmClient,
    version: &ResourceId,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Result<(), ArmError> {
    let Some(mut v) = client.get(version, GALLERY_API).await? else {
        return Ok(());
    };
    let mut body = serde_json::Map::new();
    for k in ["location", "tags"] {
        if let Some(x) = v.get_mut(k).map(Value::take) {
            body.insert(k.into(), x);
        }
    }
    let mut props = v
        .get_mut("properties")
        .map(Value::take)
        .and_then(|p| match p {
            Value::Object(o) => Some(o),
            _ => None,
        })
        .unwrap_or_default();
    for k in READ_ONLY {
        props.remove(*k);
    }
    let profile = props
        .entry("publishingProfile")
        .or_insert_with(|| json!({}));
    if let Value::Object(p) = profile {
        change(p);
    }
    body.insert("properties".into(), Value::Object(props));
    client
        .put(version, GALLERY_API, &Value::Object(body))
        .await?;
    Ok(())
}

/// Azure Image Builder's typical build time, for progress (Azure seconds).
const TYPICAL_BUILD_SECS: u64 = 2400;
/// How often a running build reports (Azure seconds).
const PROGRESS_EVERY_SECS: f64 = 60.0;

/// Run the template and report every minute (Azure time) until it ends.
async fn run_with_progress(
    client: &ArmClient,
    t: &BuildTarget,
    api: &str,
    version: &str,
    emit: &(dyn Fn(ImageEvent) + Sync),
) -> Result<Value, ArmError> {
    let started = Instant::now();
    let run = client.action(&t.template, "run", api, None, false);
    tokio::pin!(run);
    let every = std::time::Duration::from_secs_f64(PROGRESS_EVERY_SECS * client.time_scale());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            r = &mut run => return r,
            _ = tick.tick() => emit(ImageEvent::Progress {
                tenant: t.tenant.clone(),
                version: version.to_string(),
                elapsed_s: (started.elapsed().as_secs_f64() / client.time_scale().max(1e-9)).round() as u64,
                typical_s: TYPICAL_BUILD_SECS,
            }),
        }
    }
}

async fn build_one(
    client: &ArmClient,
    t: &BuildTarget,
    emit: &(dyn Fn(ImageEvent) + Sync),
) -> BuildResult {
    let started = Instant::now();
    let version = t.version.name().to_string();
    let result = |outcome, error: Option<String>| BuildResult {
        tenant: t.tenant.clone(),
        version: version.clone(),
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
    };
    let run = async {
        if client.get(&t.version, GALLERY_API).await?.is_some() {
            return Ok(false);
        }
        emit(ImageEvent::Building {
            tenant: t.tenant.clone(),
            version: version.clone(),
        });
        // Only what is missing is created; changes to an existing definition or
        // template are `apply`'s (Image Builder templates cannot be updated in
        // place, so apply replaces them).
        for r in &t.resources {
            if client.get(&r.id, &r.api_version).await?.is_none() {
                client
                    .put(&r.id, &r.api_version, &r.body.to_value())
                    .await?;
            }
        }
        let api = t
            .resources
            .iter()
            .find(|r| r.id == t.template)
            .map_or(lifeboat_core::api::IMAGE_BUILDER, |r| {
                r.api_version.as_str()
            });
        run_with_progress(client, t, api, &version, emit).await?;
        let eol = lifeboat_core::clock::now_or_real()
            + jiff::SignedDuration::from_hours(24 * i64::from(t.lifetime_days));
        update_publishing(client, &t.version, |p| {
            p.insert("endOfLifeDate".into(), json!(eol.to_string()));
        })
        .await?;
        Ok::<bool, ArmError>(true)
    };
    match run.await {
        Ok(true) => {
            let r = result(BuildOutcome::Built, None);
            emit(ImageEvent::Built {
                tenant: t.tenant.clone(),
                version,
                duration_ms: r.duration_ms,
            });
            r
        }
        Ok(false) => {
            emit(ImageEvent::Exists {
                tenant: t.tenant.clone(),
                version: version.clone(),
            });
            result(BuildOutcome::Exists, None)
        }
        Err(e) => {
            let error = e.to_string();
            emit(ImageEvent::Failed {
                tenant: t.tenant.clone(),
                version: version.clone(),
                error: error.clone(),
            });
            result(BuildOutcome::Failed, Some(error))
        }
    }
}

/// Build every target, at most `concurrency` at once (Image Builder's quota).
/// A target whose version exists is not rebuilt; a failed build leaves the
/// previous version in service.
pub async fn build(
    client: &ArmClient,
    targets: &[BuildTarget],
    concurrency: usize,
    emit: &(dyn Fn(ImageEvent) + Sync),
) -> Vec<BuildResult> {
    let mut out: Vec<BuildResult> = futures::stream::iter(targets)
        .map(|t| build_one(client, t, emit))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    out
}

/// `Major.Minor.Patch` as numbers, for ordering.
fn semver(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: String,
    pub id: ResourceId,
    pub published: Option<String>,
    pub end_of_life: Option<String>,
    pub exclude_from_latest: bool,
    /// Front-end VMs built from it.
    pub in_use_by: usize,
    pub replication: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantImages {
    pub tenant: String,
    pub declared: String,
    pub newest: Option<String>,
    /// Version -> front-ends on it.
    pub in_use: BTreeMap<String, usize>,
    /// Newest first.
    pub versions: Vec<VersionInfo>,
}

/// The image picture of each tenant, from one read of the cloud.
pub fn inventory(prior: &PriorState, tenants: &[(String, ResourceId)]) -> Vec<TenantImages> {
    tenants
        .iter()
        .map(|(tenant, declared)| {
            let definition = declared.parent().expect("a version has a definition");
            let prefix = format!("{}/", definition.key());
            let mut in_use: BTreeMap<String, usize> = BTreeMap::new();
            for r in &prior.resources {
                if r.tag("lifeboat-tenant") == Some(tenant.as_str())
                    && r.resource_type
                        .eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
                    && let Some(img) = r
                        .body
                        .pointer("/properties/storageProfile/imageReference/id")
                        .and_then(Value::as_str)
                        .and_then(|s| ResourceId::parse(s).ok())
                    && img.key().starts_with(&prefix)
                {
                    *in_use.entry(img.name().to_string()).or_default() += 1;
                }
            }
            let mut versions: Vec<VersionInfo> = prior
                .resources
                .iter()
                .filter(|r| {
                    r.resource_type
                        .eq_ignore_ascii_case(lifeboat_core::api::IMAGE_VERSION_TYPE)
                        && r.id.key().starts_with(&prefix)
                })
                .map(|r| {
                    let profile = r.body.pointer("/properties/publishingProfile");
                    let s = |k: &str| {
                        profile
                            .and_then(|p| p.get(k))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    };
                    VersionInfo {
                        version: r.id.name().to_string(),
                        id: r.id.clone(),
                        published: s("publishedDate"),
                        end_of_life: s("endOfLifeDate"),
                        exclude_from_latest: profile
                            .and_then(|p| p.get("excludeFromLatest"))
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        in_use_by: in_use.get(r.id.name()).copied().unwrap_or(0),
                        replication: r
                            .body
                            .pointer("/properties/replicationStatus/summary")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    }
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(semver(&v.version)));
            TenantImages {
                tenant: tenant.clone(),
                declared: declared.name().to_string(),
                newest: versions.first().map(|v| v.version.clone()),
                in_use,
                versions,
            }
        })
        .collect()
}

/// What pruning does to one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneStep {
    Delete,
    ExcludeFromLatest,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneAction {
    pub tenant: String,
    pub id: ResourceId,
    pub version: String,
    pub step: PruneStep,
}

/// Keep the newest `keep` versions, any version a front-end runs on and the
/// declared one; delete the rest. Every kept version but the newest is marked
/// exclude-from-latest. Pure: decides, does not act.
pub fn prune_plan(images: &[TenantImages], keep: usize) -> Vec<PruneAction> {
    let mut out = Vec::new();
    for t in images {
        for (i, v) in t.versions.iter().enumerate() {
            let kept = i < keep.max(1) || v.in_use_by > 0 || v.version == t.declared;
            let step = if !kept {
                PruneStep::Delete
            } else if i > 0 && !v.exclude_from_latest {
                PruneStep::ExcludeFromLatest
            } else {
                continue;
            };
            out.push(PruneAction {
                tenant: t.tenant.clone(),
                id: v.id.clone(),
                version: v.version.clone(),
                step,
            });
        }
    }
    out
}

/// Carry out a prune plan; the errors, per version.
pub async fn prune(client: &ArmClient, actions: &[PruneAction]) -> Vec<(ResourceId, ArmError)> {
    let results = futures::stream::iter(actions)
        .map(|a| async move {
            let id = &a.id;
            let r = match a.step {
                PruneStep::Delete => client.delete(id, GALLERY_API).await.map(|_| ()),
                PruneStep::ExcludeFromLatest => {
                    update_publishing(client, id, |p| {
                        p.insert("excludeFromLatest".into(), json!(true));
                    })
                    .await
                }
            };
            r.err().map(|e| (a.id.clone(), e))
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().flatten().collect()
}

/// What `image build` came to.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    pub builds: Vec<BuildResult>,
    pub built: usize,
    pub existing: usize,
    pub failed: usize,
    pub wall_ms: u64,
    /// The audit trail's head after the build was recorded.
    #[serde(skip)]
    pub audit: Option<crate::state::audit::Head>,
}

/// The build targets of `tenants` (every tenant when empty): each one's
/// image-layer resources as rendered, its Image Builder template and the
/// declared version.
pub fn targets(
    ws: &crate::review::Workspace,
    tenants: &[String],
) -> Result<Vec<BuildTarget>, crate::review::ReviewError> {
    let project = &ws.project;
    let chosen = selected(project, tenants)?;
    let ids: Vec<String> = chosen.iter().map(|t| t.id.value.clone()).collect();
    let scope = crate::review::scope_from(project, &ids, false)?;
    let graph = lifeboat_core::graph::build(project, &ws.templates, &scope)
        .map_err(crate::review::ReviewError::Render)?;
    chosen
        .iter()
        .map(|t| {
            let resources: Vec<Resource> = graph
                .resources
                .iter()
                .filter(|r| {
                    r.layer == lifeboat_core::graph::Layer::Image
                        && r.tenant.as_deref() == Some(&t.id.value)
                })
                .cloned()
                .collect();
            let template = resources
                .iter()
                .find(|r| {
                    r.resource_type
                        .eq_ignore_ascii_case("Microsoft.VirtualMachineImages/imageTemplates")
                })
                .map(|r| r.id.clone())
                .ok_or_else(|| crate::review::ReviewError::NoImageTemplate {
                    tenant: t.id.value.clone(),
                })?;
            Ok(BuildTarget {
                tenant: t.id.value.clone(),
                template,
                version: lifeboat_core::model::naming::declared_image(&project.platform, t),
                resources,
                lifetime_days: project.platform.gallery.image_lifetime_days,
            })
        })
        .collect()
}

/// The tenants `tenants` names (every tenant when empty), each checked to exist.
pub fn selected<'p>(
    project: &'p lifeboat_core::model::Project,
    tenants: &[String],
) -> Result<Vec<&'p lifeboat_core::model::Tenant>, crate::review::ReviewError> {
    crate::review::scope_from(project, tenants, false)?;
    Ok(project
        .tenants
        .iter()
        .filter(|t| tenants.is_empty() || tenants.contains(&t.id.value))
        .collect())
}

/// `image build`: the targets, built `concurrency` at a time holding each
/// tenant's image lock, recorded in the audit trail.
pub fn build_images(
    ws: &crate::review::Workspace,
    tenants: &[String],
    concurrency: usize,
    lock_timeout: std::time::Duration,
    emit: &(dyn Fn(ImageEvent) + Sync),
) -> Result<BuildSummary, crate::review::ReviewError> {
    let targets = targets(ws, tenants)?;
    let ids: Vec<String> = targets.iter().map(|t| t.tenant.clone()).collect();
    let scopes: Vec<String> = ids.iter().map(|t| format!("image-{t}")).collect();
    let session = &ws.session;
    let started = Instant::now();
    let builds = session.rt.block_on(session.holding_locks(
        &scopes,
        "image build",
        lock_timeout,
        async {
            Ok::<_, crate::review::ReviewError>(
                build(&session.client, &targets, concurrency, emit).await,
            )
        },
    ))?;
    let count = |o| builds.iter().filter(|r| r.outcome == o).count();
    let (built, existing, failed) = (
        count(BuildOutcome::Built),
        count(BuildOutcome::Exists),
        count(BuildOutcome::Failed),
    );
    let audit = session
        .audit(crate::state::audit::Entry {
            command: "image build".into(),
            tenants: ids,
            outcome: if failed == 0 { "succeeded" } else { "failed" }.into(),
            details: json!({"built": built, "existing": existing, "failed": failed}),
            ..Default::default()
        })
        .map_err(|source| crate::review::ReviewError::State {
            what: "recording in the audit trail",
            source,
        })?;
    Ok(BuildSummary {
        builds,
        built,
        existing,
        failed,
        wall_ms: started.elapsed().as_millis() as u64,
        audit: Some(audit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: &str, in_use_by: usize, excluded: bool) -> VersionInfo {
        VersionInfo {
            version: version.into(),
            id: ResourceId::parse(&format!(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/g/images/hix-a/versions/{version}"
            ))
            .unwrap(),
            published: None,
            end_of_life: None,
            exclude_from_latest: excluded,
            in_use_by,
            replication: Vec::new(),
        }
    }

    #[test]
    fn prune_keeps_newest_in_use_and_declared() {
        let t = TenantImages {
            tenant: "a".into(),
            declared: "6.3.50".into(),
            newest: Some("6.3.53".into()),
            in_use: BTreeMap::new(),
            versions: vec![
                v("6.3.53", 0, false),
                v("6.3.52", 0, false),
                v("6.3.51", 3, false),
                v("6.3.50", 0, true),
                v("6.3.49", 0, false),
                v("6.3.48", 0, true),
            ],
        };
        let plan = prune_plan(&[t], 2);
        let got: Vec<(&str, &PruneStep)> =
            plan.iter().map(|a| (a.version.as_str(), &a.step)).collect();
        assert_eq!(
            got,
            vec![
                ("6.3.52", &PruneStep::ExcludeFromLatest),
                ("6.3.51", &PruneStep::ExcludeFromLatest),
                ("6.3.49", &PruneStep::Delete),
                ("6.3.48", &PruneStep::Delete),
            ]
        );
    }

    #[test]
    fn versions_order_numerically() {
        assert!(semver("6.3.100") > semver("6.3.99"));
        assert!(semver("6.10.0") > semver("6.9.99"));
    }
}
