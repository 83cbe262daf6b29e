//! The plan review: from a validated project and a connection to the cloud to a
//! checked plan, and from a checked plan to an apply under the layer locks. This
//! is the engine's side of `plan`, `apply`, `drift`, `destroy` and `status`; the
//! commands only convert arguments into the option types here and show the
//! values that come back.
//!
//! - [`Session`]: one command's connection (runtime, ARM client, state store).
//! - [`Workspace`]: project + templates + session; [`Workspace::plan`] runs the
//!   pipeline graph -> prior state -> plan (+ findings, cost).
//! - [`guards`]: what a plan must pass before anything is written.
//! - [`locks`]: holding layer locks with their leases renewed beside the work.
//! - [`saved`]: a saved plan, checked against what it was computed from.
//! - [`execute`]: guards, locks, journal, apply, audit.
//!
//! Never prints: refusals and failures are typed values ([`ReviewError`]).

pub mod execute;
pub mod guards;
pub mod locks;
pub mod saved;

use std::collections::{BTreeMap, HashSet};

use lifeboat_core::clock::ClockError;
use lifeboat_core::cost::{self, PricingError};
use lifeboat_core::graph::templates::TemplateSet;
use lifeboat_core::graph::{self, Graph, GraphError, Scope};
use lifeboat_core::model::Project;
use lifeboat_core::observed::PriorState;
use lifeboat_core::plan::{self, Action, Inputs, Plan, PlanError, PlanOptions};

use crate::cloud::client::{ArmClient, ArmError};
use crate::cloud::inventory::{self, Refresh, Wanted};
use crate::state::{self, StateError, StateStore};

pub use execute::{ExecOptions, Executed, Reviewer};
pub use guards::{GuardOptions, Refusal, Refusals};
pub use locks::LockError;

/// How long Resource Graph may lag behind ARM writes (Azure seconds): what the
/// latest apply wrote more recently than this is read directly.
pub const RESOURCE_GRAPH_LAG_SECS: f64 = 300.0;

/// The journal event of a DAP write (see [`Session::journal_dap`]).
const DAP_EVENT: &str = "dap";
/// How long (wall seconds, at least) a DAP write is read directly.
const DAP_REREAD_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("--tenant {tenant}: no tenants/{tenant}.yaml in this project{hint}")]
    UnknownTenant { tenant: String, hint: String },
    #[error("rendering the resource graph")]
    Render(#[source] GraphError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("reading the current state from {endpoint}")]
    Read {
        endpoint: String,
        #[source]
        source: Box<ArmError>,
    },
    #[error("{what}")]
    State {
        what: &'static str,
        #[source]
        source: StateError,
    },
    #[error(transparent)]
    Clock(#[from] ClockError),
    #[error(transparent)]
    Pricing(#[from] PricingError),
    #[error(transparent)]
    Refused(#[from] Refusals),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "tenant {tenant}: the image templates render no Microsoft.VirtualMachineImages/imageTemplates resource"
    )]
    NoImageTemplate { tenant: String },
    /// The reviewer did not approve (its own words).
    #[error("{0}")]
    NotApproved(String),
    #[error(
        "the plan kept changing while its locks were taken (it now also changes {}); re-run",
        .scopes.join(", ")
    )]
    Unsettled { scopes: Vec<String> },
    #[error(transparent)]
    Saved(#[from] saved::SavedPlanError),
    #[error(
        "--tenant {tenant}: no tenants/{tenant}.yaml and nothing in the cloud belongs to it (tag lifeboat-tenant={tenant})"
    )]
    NothingToDestroy { tenant: String },
    #[error(
        "refusing to destroy the shared layer while tenants exist ({}); destroy them first",
        .tenants.join(", ")
    )]
    SharedInUse { tenants: Vec<String> },
    /// A tenant's resources need the shared layer (hub network, domain
    /// controllers, gallery): planning them alone would create what then fails.
    #[error(
        "the shared layer is not provisioned yet ({rg} does not exist): tenant {} need(s) it. Run `lifeboat apply --shared` first (or plan everything: `lifeboat plan` without --tenant)",
        .tenants.join(", ")
    )]
    SharedLayerMissing { rg: String, tenants: Vec<String> },
}

impl ReviewError {
    fn state(what: &'static str) -> impl FnOnce(StateError) -> ReviewError {
        move |source| ReviewError::State { what, source }
    }
}

/// One command's connection to the cloud and the state store.
pub struct Session {
    pub rt: tokio::runtime::Runtime,
    pub client: ArmClient,
    /// Microsoft Graph (the roster), on the emulator's listener locally.
    pub graph: crate::cloud::graph::GraphClient,
    pub state: StateStore,
    /// Where the client talks to (for messages).
    pub endpoint: String,
    /// Resource SKUs per region, read once per command.
    pub skus: std::sync::Mutex<std::collections::HashMap<String, Vec<serde_json::Value>>>,
}

/// The runtime every engine call runs on: two workers (the machines this runs
/// on have two cores; the work is waiting on the network).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

impl Session {
    /// Append to the audit trail as the authenticated caller (the access
    /// token's principal, when the cloud issued one); returns the new head.
    pub fn audit(&self, mut entry: state::audit::Entry) -> Result<state::audit::Head, StateError> {
        if entry.principal.is_none() {
            entry.principal = self.rt.block_on(self.client.credential().principal());
        }
        self.rt.block_on(self.state.audit_append(entry))
    }

    /// Run `work` holding the locks for `scopes` in this session's state store
    /// (see [`locks::holding`]).
    pub async fn holding_locks<T, E: From<LockError>>(
        &self,
        scopes: &[String],
        command: &str,
        timeout: std::time::Duration,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        locks::holding(&self.state, scopes, command, timeout, work).await
    }

    /// What the journal says the latest applies wrote (or may have written):
    /// re-read where Resource Graph may not show it yet.
    /// Record what an activation or deactivation wrote (the tenant's resource
    /// group tags and the access rule's NSG) in the journal, as apply records its
    /// writes: a plan or status in the next minutes reads them directly instead
    /// of trusting a Resource Graph row that may not show them yet (the tenant
    /// would read ACTIVATING, or STANDBY, for the length of the indexing lag).
    pub async fn journal_dap(
        &self,
        run: &crate::ops::dap::Run,
        target: &crate::ops::dap::Target,
    ) -> Result<(), ReviewError> {
        let writer = self
            .state
            .journal_writer(&format!("{}-{}", run.kind, run.tenant))
            .await
            .map_err(ReviewError::state("opening the apply journal"))?;
        for (id, api_version) in [
            (&target.rg, lifeboat_core::api::RESOURCE_GROUPS),
            (&target.access_nsg, lifeboat_core::api::NETWORK),
        ] {
            writer
                .append(&state::JournalEntry {
                    run: format!("{}-{}", run.kind, run.tenant),
                    plan: String::new(),
                    id: id.clone(),
                    api_version: api_version.to_string(),
                    event: DAP_EVENT.to_string(),
                    at: jiff::Timestamp::now().to_string(),
                })
                .await
                .map_err(ReviewError::state("writing the apply journal"))?;
        }
        Ok(())
    }

    /// What the latest writes touched (see [`Session::recent_writes`]).
    fn recent(&self) -> Result<Vec<Wanted>, ReviewError> {
        Ok(self.recent_writes()?.0)
    }

    /// What was written more recently than Resource Graph indexes, and which of
    /// those the DAP wrote (their rows are never taken as fresh: the manifest does
    /// not declare the activation tags a row would have to show).
    fn recent_writes(
        &self,
    ) -> Result<(Vec<Wanted>, std::collections::HashSet<String>), ReviewError> {
        let journal = self
            .rt
            .block_on(self.state.journal())
            .map_err(ReviewError::state("reading the apply journal"))?;
        // Resource Graph indexes ARM writes within minutes: what was written more
        // recently than that is checked (in the cloud's own time).
        let lag =
            jiff::SignedDuration::from_secs_f64(RESOURCE_GRAPH_LAG_SECS * self.client.time_scale());
        let since = jiff::Timestamp::now() - lag;
        let mut recent: Vec<Wanted> = journal
            .iter()
            .filter(|e| e.at.parse::<jiff::Timestamp>().is_ok_and(|t| t >= since))
            .map(|e| Wanted {
                id: e.id.clone(),
                api_version: e.api_version.clone(),
            })
            .collect();
        recent.extend(state::in_doubt(&journal).into_iter().map(|e| Wanted {
            id: e.id,
            api_version: e.api_version,
        }));
        // A DAP write is re-read for at least a minute of wall time: a command
        // queued behind the activation, on an agent slower than a scaled-down
        // emulator's lag, must not trust a row from before the mark.
        let dap_since =
            since.min(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(DAP_REREAD_SECS));
        let by_dap: std::collections::HashSet<String> = journal
            .iter()
            .filter(|e| e.event == DAP_EVENT)
            .filter(|e| {
                e.at.parse::<jiff::Timestamp>()
                    .is_ok_and(|t| t >= dap_since)
            })
            .map(|e| e.id.key().to_string())
            .collect();
        recent.extend(
            journal
                .iter()
                .filter(|e| e.event == DAP_EVENT && by_dap.contains(e.id.key()))
                .map(|e| Wanted {
                    id: e.id.clone(),
                    api_version: e.api_version.clone(),
                }),
        );
        recent.sort_by(|a, b| a.id.cmp(&b.id));
        recent.dedup_by(|a, b| a.id == b.id);
        Ok((recent, by_dap))
    }

    fn read_error(&self) -> impl FnOnce(crate::cloud::client::ArmError) -> ReviewError + '_ {
        move |source| ReviewError::Read {
            endpoint: self.endpoint.clone(),
            source: Box::new(source),
        }
    }

    /// Resource Graph's two queries (they need nothing from the manifests, so
    /// they run while the templates render).
    fn indexed(
        &self,
        project: &Project,
        learned: tokio::sync::mpsc::UnboundedReceiver<inventory::Learned>,
    ) -> Result<inventory::Indexed, ReviewError> {
        self.rt
            .block_on(inventory::indexed(
                &self.client,
                &project.platform.subscription_id,
                &project.platform.prefix.value,
                learned,
            ))
            .map_err(self.read_error())
    }

    /// Complete what Resource Graph returned for `graph`: non-indexed children
    /// and stale rows of what the latest apply wrote.
    fn completed(
        &self,
        graph: &Graph,
        scope: Option<&Scope>,
        mut indexed: inventory::Indexed,
        before: crate::cloud::client::StatsSnapshot,
        reading: &Reading,
    ) -> Result<PriorState, ReviewError> {
        let Reading { groups, referenced } = reading;
        let (recent, by_dap) = self.recent_writes()?;
        let inventory::Early {
            desired: desired_keys,
            diagnosed_types: diagnosed,
            diagnostics_api,
            ..
        } = indexed.early.take().unwrap_or_else(|| early_lists(graph));
        // Only rows the latest apply wrote are judged fresh (none, from a fresh
        // agent): the lookup is built on the first.
        let desired = std::sync::OnceLock::<
            std::collections::HashMap<&str, &lifeboat_core::graph::Resource>,
        >::new();
        let orphan_in_scope = |r: &lifeboat_core::observed::ObservedResource,
                               prior: &PriorState| {
            scope.is_some_and(|s| {
                prior
                    .ownership(r)
                    .is_some_and(|o| s.includes(o.layer, o.tenant.as_deref()))
            })
        };
        let fresh = |row: &lifeboat_core::observed::ObservedResource, prior: &PriorState| {
            !by_dap.contains(row.id.key())
                && desired
                    .get_or_init(|| graph.resources.iter().map(|r| (r.id.key(), r)).collect())
                    .get(row.id.key())
                    .is_some_and(|r| {
                        row.settled
                            || lifeboat_core::plan::diff::diff(
                                &r.body,
                                &row.body,
                                &lifeboat_core::plan::diff::DiffOptions {
                                    ignore: &r.lifecycle.ignore,
                                    replace_on: &r.lifecycle.replace_on,
                                    prior,
                                },
                            )
                            .is_empty()
                    })
        };
        let found = self
            .rt
            .block_on(inventory::complete(
                &self.client,
                indexed,
                inventory::Completion {
                    groups,
                    desired: &desired_keys,
                    orphan_in_scope: &orphan_in_scope,
                    diagnosed_types: &diagnosed,
                    diagnostics_api: &diagnostics_api,
                    recent: &recent,
                    referenced,
                    fresh: &fresh,
                },
            ))
            .map_err(self.read_error())?;
        Ok(inventory::managed(found, self.requests_since(before)))
    }

    fn requests_since(
        &self,
        before: crate::cloud::client::StatsSnapshot,
    ) -> lifeboat_core::observed::Requests {
        let d = self.client.stats.snapshot().since(&before);
        lifeboat_core::observed::Requests {
            read: d.reads(),
            write: d.writes(),
            graph_pages: d.query,
            lists: d.list,
            gets: d.get,
        }
    }

    /// The region's Resource SKUs (one list call per region and command).
    pub fn region_skus(
        &self,
        subscription: &str,
        region: &str,
    ) -> Result<Vec<serde_json::Value>, ReviewError> {
        let region = region.replace(' ', "").to_ascii_lowercase();
        if let Some(found) = self.skus.lock().expect("skus").get(&region) {
            return Ok(found.clone());
        }
        let items = self
            .rt
            .block_on(self.client.list(
                &format!(
                    "/subscriptions/{subscription}/providers/Microsoft.Compute/skus?$filter=location%20eq%20%27{region}%27"
                ),
                SKUS_API,
            ))
            .map_err(self.read_error())?;
        self.skus
            .lock()
            .expect("skus")
            .insert(region, items.clone());
        Ok(items)
    }

    /// Fill in what Azure's `usages` say each family uses and allows, for the
    /// regions where the plan adds vCPUs, and which of its sizes the region's
    /// Resource SKUs offer (a usages read per region, the SKUs read once per
    /// command; none for a plan that adds no vCPUs). Returns the reads made.
    pub fn read_quota(
        &self,
        subscription: &str,
        needs: &mut [lifeboat_core::plan::quota::QuotaNeed],
    ) -> Result<u64, ReviewError> {
        let mut regions: Vec<String> = needs.iter().map(|n| n.region.clone()).collect();
        regions.sort();
        regions.dedup();
        let before = self.client.stats.snapshot();
        for region in regions {
            let path = format!(
                "/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{region}/usages"
            );
            let rows = self
                .rt
                .block_on(self.client.list(&path, lifeboat_core::api::COMPUTE))
                .map_err(self.read_error())?;
            let row = |name: &str| {
                rows.iter().find(|r| {
                    r.pointer("/name/value")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|v| v.eq_ignore_ascii_case(name))
                })
            };
            // Which sizes this subscription may have there (Resource SKUs).
            let skus = self.region_skus(subscription, &region)?;
            for n in needs.iter_mut().filter(|n| n.region == region) {
                n.unavailable =
                    n.sizes
                        .iter()
                        .filter_map(|size| {
                            let sku = skus.iter().find(|s| {
                                s["resourceType"] == "virtualMachines"
                                    && s["name"]
                                        .as_str()
                                        .is_some_and(|x| x.eq_ignore_ascii_case(size))
                            });
                            match sku {
                                None => Some(format!("{size} (not in {region})")),
                                Some(s) => s["restrictions"]
                                    .as_array()
                                    .and_then(|r| r.first())
                                    .map(|r| {
                                        format!(
                                            "{size} ({})",
                                            r["reasonCode"].as_str().unwrap_or("restricted")
                                        )
                                    }),
                            }
                        })
                        .collect();
            }
            let total = row("cores");
            for n in needs.iter_mut().filter(|n| n.region == region) {
                let figures = |r: Option<&serde_json::Value>| {
                    let r = r?;
                    Some((r.get("currentValue")?.as_u64()?, r.get("limit")?.as_u64()?))
                };
                // A family Azure does not list yet has its default limit; the
                // regional total still binds.
                let family = figures(row(&n.family));
                let total = figures(total);
                let tightest = match (family, total) {
                    (Some(f), Some(t)) => {
                        Some(if f.1.saturating_sub(f.0) <= t.1.saturating_sub(t.0) {
                            f
                        } else {
                            t
                        })
                    }
                    (f, t) => f.or(t),
                };
                if let Some((used, limit)) = tightest {
                    n.used = Some(used);
                    n.limit = Some(limit);
                }
            }
        }
        Ok(self.client.stats.snapshot().since(&before).reads())
    }

    /// Read the prior state for `graph`: Resource Graph plus what it does not
    /// index (see [`inventory`]), or a GET per resource.
    pub fn prior_state(
        &self,
        project: &Project,
        graph: &Graph,
        refresh: Refresh,
    ) -> Result<PriorState, ReviewError> {
        let before = self.client.stats.snapshot();
        match refresh {
            Refresh::Graph => {
                let (tell, learned) = tokio::sync::mpsc::unbounded_channel();
                let _ = tell.send(inventory::Learned::All(early_lists(graph)));
                let indexed = self.indexed(project, learned)?;
                self.completed(graph, None, indexed, before, &Reading::of(graph))
            }
            Refresh::Direct => {
                let mut wanted: Vec<Wanted> = graph
                    .resources
                    .iter()
                    .map(|r| Wanted {
                        id: r.id.clone(),
                        api_version: r.api_version.clone(),
                    })
                    .collect();
                wanted.extend(self.recent()?);
                wanted.sort_by(|a, b| a.id.cmp(&b.id));
                wanted.dedup_by(|a, b| a.id == b.id);
                let found = self
                    .rt
                    .block_on(inventory::direct(&self.client, &wanted))
                    .map_err(self.read_error())?;
                Ok(inventory::managed(found, self.requests_since(before)))
            }
        }
    }
}

/// What completing the prior state needs from the graph alone, worked out
/// while the cloud is read (see [`Reading::of`]).
struct Reading {
    /// The resource groups (lower-cased ids) the graph writes to.
    groups: std::collections::HashSet<String>,
    /// The HiX image versions front-ends reference, each once.
    referenced: Vec<Wanted>,
}

impl Reading {
    fn of(graph: &Graph) -> Reading {
        // The graph is sorted by layer and tenant: a group's resources are
        // neighbours, and its id is made once, not once per resource.
        let mut groups = std::collections::HashSet::new();
        let mut last = None;
        for r in &graph.resources {
            let Some(rg) = r.id.resource_group() else {
                continue;
            };
            let group = (r.id.subscription(), rg);
            if last != Some(group) {
                groups.insert(format!(
                    "/subscriptions/{}/resourcegroups/{}",
                    group.0.to_ascii_lowercase(),
                    group.1.to_ascii_lowercase()
                ));
                last = Some(group);
            }
        }
        let mut referenced: Vec<Wanted> = graph
            .resources
            .iter()
            .filter_map(|r| {
                r.body
                    .pointer("/properties/storageProfile/imageReference/id")?
                    .as_str()
                    .and_then(|s| lifeboat_core::id::ResourceId::parse(s).ok())
            })
            .filter(|id| {
                id.resource_type()
                    .eq_ignore_ascii_case(lifeboat_core::api::IMAGE_VERSION_TYPE)
            })
            .map(|id| Wanted {
                id,
                api_version: lifeboat_core::api::GALLERY.to_string(),
            })
            .collect();
        referenced.sort_by(|a, b| a.id.cmp(&b.id));
        referenced.dedup_by(|a, b| a.id == b.id);
        Reading { groups, referenced }
    }
}

/// What `graph` tells to list while Resource Graph pages come in: its
/// resources, and the types it declares diagnostic settings for (with the
/// api-version it declares them with).
fn early_lists(graph: &Graph) -> inventory::Early {
    let mut early = inventory::Early {
        desired: graph
            .resources
            .iter()
            .map(|r| r.id.key().to_string())
            .collect(),
        diagnosed_types: Default::default(),
        diagnostics_api: "2021-05-01-preview".into(),
        settle: None,
    };
    for r in &graph.resources {
        if r.resource_type
            .eq_ignore_ascii_case(inventory::DIAGNOSTIC_SETTINGS_TYPE)
            && let Some(target) = r.id.parent()
        {
            early
                .diagnosed_types
                .insert(target.resource_type().to_ascii_lowercase());
            early.diagnostics_api = r.api_version.clone();
        }
    }
    early
}

/// The Resource SKUs api-version.
const SKUS_API: &str = "2021-07-01";

/// What every cloud command starts from: the validated project, its templates and
/// a connection.
pub struct Workspace {
    pub project: Project,
    pub templates: TemplateSet,
    pub session: Session,
}

/// Which plan to make.
#[derive(Debug, Clone, Copy)]
pub struct PlanRequest<'a> {
    /// `--tenant`: these tenants only (empty: every layer, unless `shared`).
    pub tenants: &'a [String],
    /// `--shared`.
    pub shared: bool,
    pub refresh: Refresh,
    /// `--allow-data-loss`: tenants whose protected resources may go.
    pub allow_data_loss: &'a [String],
    /// Add what a change review needs (policy findings, cost, deletes of
    /// undeclared resources). `status` does without.
    pub review: bool,
}

impl<'a> PlanRequest<'a> {
    /// A plan for change review (findings, cost, deletes of undeclared resources).
    pub fn review(
        tenants: &'a [String],
        shared: bool,
        refresh: Refresh,
        allow_data_loss: &'a [String],
    ) -> Self {
        PlanRequest {
            tenants,
            shared,
            refresh,
            allow_data_loss,
            review: true,
        }
    }
}

impl Workspace {
    /// The plan for `req`.
    pub fn plan(&self, req: PlanRequest<'_>) -> Result<Plan, ReviewError> {
        Ok(self.plan_with_prior(req)?.0)
    }

    /// The plan and the prior state it was computed against.
    pub fn plan_with_prior(&self, req: PlanRequest<'_>) -> Result<(Plan, PriorState), ReviewError> {
        let scope = scope_from(&self.project, req.tenants, req.shared)?;
        self.plan_scope(&scope, req.refresh, req.allow_data_loss, req.review)
    }

    /// The plan of `scope` (what a saved plan records), and its prior state.
    pub fn plan_scope(
        &self,
        scope: &Scope,
        refresh: Refresh,
        allow_data_loss: &[String],
        review: bool,
    ) -> Result<(Plan, PriorState), ReviewError> {
        let (project, templates) = (&self.project, &self.templates);
        let render = |rendered: &(dyn Fn(&[lifeboat_core::graph::Resource]) + Sync)| {
            graph::build_reporting(project, templates, scope, rendered).map_err(ReviewError::Render)
        };
        let price_table = cost::PriceTable::for_project(project)?;
        // What a review needs from the graph alone (policy findings, what other
        // layers declare, the declared half of the cost), worked out while the
        // cloud is read.
        let from_graph = |graph: &Graph| -> Result<_, ReviewError> {
            Ok(if review {
                Some((
                    lifeboat_core::policy::check(
                        project,
                        templates,
                        graph,
                        lifeboat_core::clock::today()?,
                    ),
                    declared_elsewhere(project, templates, scope, graph)?,
                    price_table.as_ref().map(|t| cost::Declared::of(graph, t)),
                ))
            } else {
                None
            })
        };
        let (graph, prior, early, prepared) = match refresh {
            // Resource Graph's queries need nothing from the graph: read the cloud
            // while the templates render, then what the graph tells to read.
            Refresh::Graph => {
                let before = self.session.client.stats.snapshot();
                let (graph, early, indexed) = std::thread::scope(|s| {
                    // The graph's lists start while Resource Graph pages still
                    // come in, each as soon as the part of the graph that
                    // declares it has rendered (see `inventory::indexed`).
                    let (tell, learned) = tokio::sync::mpsc::unbounded_channel();
                    // Desired resources are settled as their rows arrive
                    // (`lifeboat_core::plan::settle`): the graph is shared with
                    // the reads until they end.
                    let rendering = s.spawn(move || {
                        let part = |rs: &[lifeboat_core::graph::Resource]| {
                            let _ = tell.send(inventory::Learned::part(rs));
                        };
                        let graph = render(&part).map(std::sync::Arc::new);
                        let graph = graph?;
                        let _ = tell.send(inventory::Learned::All(inventory::Early {
                            settle: Some(lifeboat_core::plan::settle::Settler::new(graph.clone())),
                            ..early_lists(&graph)
                        }));
                        // Reading is bound by ARM's read quota from here on,
                        // not by this machine: what the review needs from the
                        // graph alone is worked out meanwhile.
                        let early = (
                            from_graph(&graph),
                            Reading::of(&graph),
                            plan::Prepared::of(&graph),
                        );
                        Ok::<_, ReviewError>((graph, early))
                    });
                    let indexed = self.session.indexed(project, learned);
                    let (graph, early) = rendering.join().expect("rendering does not panic")?;
                    Ok::<_, ReviewError>((graph, early, indexed?))
                })?;
                let (early, reading, prepared) = early;
                // The reads have let go of it by now (a copy otherwise).
                let graph = std::sync::Arc::try_unwrap(graph).unwrap_or_else(|g| (*g).clone());
                let prior =
                    self.session
                        .completed(&graph, Some(scope), indexed, before, &reading)?;
                (graph, prior, early?, Some(prepared))
            }
            Refresh::Direct => {
                let graph = render(&|_| {})?;
                let prior = self.session.prior_state(project, &graph, refresh)?;
                let early = from_graph(&graph)?;
                (graph, prior, early, None)
            }
        };
        if review && !scope.shared {
            let pn = lifeboat_core::model::naming::PlatformNames::derive(&project.platform);
            let rg = format!(
                "/subscriptions/{}/resourceGroups/{}",
                project.platform.subscription_id, pn.rg
            );
            let shared_rg = lifeboat_core::id::ResourceId::parse(&rg).expect("a group id");
            if prior.get(&shared_rg).is_none() {
                return Err(ReviewError::SharedLayerMissing {
                    rg: pn.rg.clone(),
                    tenants: scope.tenants.clone().unwrap_or_default(),
                });
            }
        }
        let reads = || -> Result<_, ReviewError> {
            let ledger = match review {
                true => Some(
                    self.session
                        .rt
                        .block_on(self.session.state.ledger())
                        .map_err(ReviewError::state("reading the ledger"))?,
                ),
                false => None,
            };
            // Sizes as the cloud's Resource SKUs state them (capacity
            // figures and quota needs); the shipped snapshot covers what the
            // list lacks.
            let before_skus = self.session.client.stats.snapshot();
            let skus = self.session.region_skus(
                &project.platform.subscription_id,
                &project.platform.region.value,
            )?;
            let skus_reads = self
                .session
                .client
                .stats
                .snapshot()
                .since(&before_skus)
                .reads();
            Ok((ledger, skus, skus_reads))
        };
        let (ledger, skus, skus_reads) = reads()?;
        lifeboat_core::model::sizes::adopt(&skus);
        let (findings, elsewhere, declared) = early.unwrap_or_default();
        // The prior state's fingerprint and the current half of the cost are
        // worked out while the plan is.
        let (plan, inputs, cost) = std::thread::scope(|s| {
            let inputs = s.spawn(|| match review {
                true => inputs(project, templates, &prior),
                // Without review (status) deletes do not matter: skip rendering the rest.
                false => Inputs::default(),
            });
            let cost = s.spawn(|| match (declared, &price_table) {
                (Some(d), Some(t)) => Some(d.with_current(&prior, t)),
                _ => None,
            });
            let prepared = prepared.unwrap_or_else(|| plan::Prepared::of(&graph));
            let plan = plan::plan_prepared(
                graph,
                prepared,
                &prior,
                PlanOptions {
                    scope,
                    allow_data_loss,
                    inputs: Inputs::default(),
                    declared_elsewhere: &elsewhere,
                    ledger: ledger.as_ref(),
                    destroying: false,
                },
            );
            (
                plan,
                inputs.join().expect("the fingerprint does not panic"),
                cost.join().expect("the cost estimate does not panic"),
            )
        });
        let mut plan = plan?;
        plan.inputs = inputs;
        plan.attach_findings(findings);
        plan.cost = cost;
        let usages = self
            .session
            .read_quota(&project.platform.subscription_id, &mut plan.quota)?;
        plan.requests.read += usages + skus_reads;
        plan.requests.lists += usages + skus_reads;
        Ok((plan, prior))
    }

    /// The plan that removes a tenant (or, with `shared`, the shared layer):
    /// everything lifeboat finds of it in the cloud, deleted. The shared layer
    /// goes only when no tenant is left.
    pub fn destroy_plan(
        &self,
        tenant: &str,
        allow_data_loss: &[String],
    ) -> Result<Plan, ReviewError> {
        let (project, templates, session) = (&self.project, &self.templates, &self.session);
        let scope = execute::destroy_scope(tenant);
        let shared = scope.shared;
        // The manifest's graph tells which resource groups to read; the desired
        // graph for the plan is empty, so everything found in scope is deleted.
        let known = graph::build(project, templates, &scope).map_err(ReviewError::Render)?;
        let prior = session.prior_state(project, &known, Refresh::Graph)?;
        let owned = |r: &lifeboat_core::observed::ObservedResource| {
            prior
                .ownership(r)
                .is_some_and(|o| o.tenant.as_deref() == Some(tenant))
        };
        if !shared && project.tenant(tenant).is_none() && !prior.resources.iter().any(owned) {
            return Err(ReviewError::NothingToDestroy {
                tenant: tenant.to_string(),
            });
        }
        if shared {
            let tenants: std::collections::BTreeSet<String> = prior
                .resources
                .iter()
                .filter_map(|r| prior.ownership(r)?.tenant)
                .collect();
            if !tenants.is_empty() {
                return Err(ReviewError::SharedInUse {
                    tenants: tenants.into_iter().collect(),
                });
            }
        }
        let inputs = inputs(project, templates, &prior);
        let elsewhere = declared_elsewhere(project, templates, &scope, &known)?;
        let ledger = session
            .rt
            .block_on(session.state.ledger())
            .map_err(ReviewError::state("reading the ledger"))?;
        Ok(plan::plan(
            Graph::default(),
            &prior,
            PlanOptions {
                scope: &scope,
                allow_data_loss,
                inputs,
                declared_elsewhere: &elsewhere,
                ledger: Some(&ledger),
                destroying: true,
            },
        )?)
    }
}

/// The scope `--tenant`/`--shared` name; every tenant named must have a manifest.
pub fn scope_from(
    project: &Project,
    tenants: &[String],
    shared: bool,
) -> Result<Scope, ReviewError> {
    for t in tenants {
        if project.tenant(t).is_none() {
            let known: Vec<&str> = project
                .tenants
                .iter()
                .map(|t| t.id.value.as_str())
                .collect();
            let hint = lifeboat_core::diag::did_you_mean(t, known.iter().copied())
                .map(|h| format!(", did you mean `{h}`?"))
                .unwrap_or_default();
            return Err(ReviewError::UnknownTenant {
                tenant: t.clone(),
                hint,
            });
        }
    }
    Ok(match (tenants.is_empty(), shared) {
        (true, false) => Scope::everything(),
        (true, true) => Scope {
            shared: true,
            tenants: Some(Vec::new()),
        },
        (false, s) => Scope {
            shared: s,
            tenants: Some(tenants.to_vec()),
        },
    })
}

/// What a plan is computed from; a saved plan is refused when any of it changed.
pub fn inputs(project: &Project, templates: &TemplateSet, prior: &PriorState) -> Inputs {
    Inputs {
        lifeboat_version: env!("CARGO_PKG_VERSION").into(),
        manifests: project
            .sources
            .iter()
            .map(|s| (s.path.clone(), s.sha256.clone()))
            .collect(),
        templates: templates
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.sha256.clone()))
            .collect::<BTreeMap<_, _>>(),
        prior_state: prior.fingerprint(),
    }
}

/// Ids the manifests declare outside `scope` (empty when the scope is everything).
pub fn declared_elsewhere(
    project: &Project,
    templates: &TemplateSet,
    scope: &Scope,
    in_scope: &Graph,
) -> Result<HashSet<String>, ReviewError> {
    if *scope == Scope::everything() {
        return Ok(Default::default());
    }
    let all =
        graph::build(project, templates, &Scope::everything()).map_err(ReviewError::Render)?;
    let mine: HashSet<&str> = in_scope.resources.iter().map(|r| r.id.key()).collect();
    Ok(all
        .resources
        .iter()
        .map(|r| r.id.key())
        .filter(|k| !mine.contains(k))
        .map(str::to_string)
        .collect())
}

/// Lock scopes a plan writes to, in a fixed order (no deadlock between applies).
pub fn lock_scopes(plan: &Plan) -> Vec<String> {
    let mut scopes: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| match &c.tenant {
            Some(t) => format!("tenant-{t}"),
            None => "shared".to_string(),
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// The locks a plan of `scope` needs before it is made: `shared` when the
/// shared layer is in scope, and each tenant in scope (every manifest's when the
/// scope names none). A plan that turns out to change more (a tenant whose
/// manifest was removed) takes those locks too before it is made again.
pub fn scope_locks(project: &Project, scope: &Scope) -> Vec<String> {
    let mut out: Vec<String> = match &scope.tenants {
        Some(ts) => ts.iter().map(|t| format!("tenant-{t}")).collect(),
        None => project
            .tenants
            .iter()
            .map(|t| format!("tenant-{}", t.id.value))
            .collect(),
    };
    if scope.shared {
        out.push("shared".into());
    }
    out.sort();
    out.dedup();
    out
}

/// The tenants (or `shared`) a plan changes, sorted: what the audit trail records.
pub fn changed_layers(plan: &Plan) -> Vec<String> {
    let mut tenants: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| c.tenant.clone().unwrap_or_else(|| "shared".into()))
        .collect();
    tenants.sort();
    tenants.dedup();
    tenants
}
