//! Stage 4: the plan, a pure function of (desired graph, prior state, options).
//!
//! Decides per resource: create, update, replace, delete or no-op, with the
//! attribute diff. Enforces data protection: a resource protected by its template
//! (`preventDestroy`) or by its tags in the cloud is never planned for delete or
//! replace unless `--allow-data-loss` names its tenant. The plan is a serializable
//! value that carries everything `apply` needs. No I/O.

pub mod capacity;
pub mod diff;
pub mod quota;
pub mod settle;
pub mod window;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::{Body, Json};
use crate::graph::{Graph, Layer, Lifecycle, ResourceId, Scope};
use crate::observed::{PriorState, Requests};
pub use diff::DiffEntry;
use diff::{DiffOptions, diff};

pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::NoOp => "no-op",
        }
    }
    /// Terraform's markers.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub no_op: usize,
}

impl Summary {
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.replace + self.delete > 0
    }
    fn count(&mut self, a: Action) {
        match a {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Replace => self.replace += 1,
            Action::Delete => self.delete += 1,
            Action::NoOp => self.no_op += 1,
        }
    }
}

/// One planned resource change, with what `apply` needs to carry it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub tenant: Option<String>,
    pub layer: Layer,
    pub action: Action,
    pub diff: Vec<DiffEntry>,
    pub api_version: String,
    /// Desired PUT body (absent for deletes). Secrets are `$secret` references.
    pub body: Option<Body>,
    /// Ids this change waits for (from the graph; for deletes, the reverse order is
    /// derived by apply from these and the ids' parents).
    pub depends_on: Vec<ResourceId>,
    pub lifecycle: Lifecycle,
    pub protected: bool,
    /// Why the action was chosen, when that is not obvious (replace triggers).
    pub reason: Option<String>,
}

/// A managed resource that is no longer desired but stays, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    pub id: ResourceId,
    pub tenant: Option<String>,
    pub reason: String,
}

/// What a plan was computed from; `apply` refuses a saved plan when any of it changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Inputs {
    pub lifeboat_version: String,
    /// `path -> sha256` of every manifest.
    pub manifests: BTreeMap<String, String>,
    /// `template name -> sha256` (embedded or override).
    pub templates: BTreeMap<String, String>,
    pub prior_state: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub requests: Requests,
    pub scope: Scope,
    pub allow_data_loss: Vec<String>,
    pub kept: Vec<Kept>,
    /// Desired changes that wait (front-ends whose HiX image is not built yet, or
    /// whose tenant is activated), and why. Not counted as changes.
    #[serde(default)]
    pub deferred: Vec<Kept>,
    /// Changes that lower a guarded resource's capacity; `apply` refuses them
    /// without `--allow-capacity-reduction`.
    #[serde(default)]
    pub capacity_reductions: Vec<capacity::CapacityReduction>,
    /// Tenant changes that interrupt service (replace, delete, a resize that
    /// restarts a VM): applied only inside the tenant's maintenance window.
    #[serde(default)]
    pub disruptions: Vec<Kept>,
    /// Tenants whose emergency environment is activated now (their disruptive
    /// changes are refused).
    #[serde(default)]
    pub activated: Vec<String>,
    /// Shared resources that change, with the tenants that depend on them.
    pub shared_dependents: BTreeMap<String, Vec<String>>,
    pub inputs: Inputs,
    /// api-version per resource type (lower-cased), from the templates: used to
    /// delete orphans and to read `$ref` targets.
    #[serde(default)]
    pub api_versions: BTreeMap<String, String>,
    /// Policy findings for the resources this plan creates, updates or replaces
    /// (and waiver findings of the layers it changes); `apply` refuses the plan
    /// while one is an unwaived error.
    #[serde(default)]
    pub findings: Vec<crate::policy::Finding>,
    /// Idle and activated cost per layer in scope, declared vs. current.
    #[serde(default)]
    pub cost: Option<crate::cost::CostEstimate>,
    /// vCPUs the plan adds per region and VM family, against Azure's quota;
    /// `apply` refuses a plan that does not fit.
    #[serde(default)]
    pub quota: Vec<quota::QuotaNeed>,
}

impl Plan {
    /// Keep the findings that concern this plan's changes: those on a resource it
    /// creates, updates or replaces, and those without a resource (waivers, an
    /// empty shared tier) of a layer it changes.
    pub fn attach_findings(&mut self, findings: Vec<crate::policy::Finding>) {
        let changed: std::collections::HashSet<&str> = self
            .changes
            .iter()
            .filter(|c| matches!(c.action, Action::Create | Action::Update | Action::Replace))
            .map(|c| c.id.key())
            .collect();
        let owners: std::collections::HashSet<Option<&str>> = self
            .changes
            .iter()
            .filter(|c| c.action != Action::NoOp)
            .map(|c| c.tenant.as_deref())
            .collect();
        let keep: Vec<crate::policy::Finding> = findings
            .into_iter()
            .filter(|f| match &f.resource {
                Some(id) => changed.contains(id.to_ascii_lowercase().as_str()),
                None => owners.contains(&f.tenant.as_deref()),
            })
            .collect();
        self.findings = keep;
    }

    /// Unwaived policy errors on this plan's changes.
    pub fn blocking_findings(&self) -> impl Iterator<Item = &crate::policy::Finding> {
        self.findings.iter().filter(|f| f.is_blocking())
    }

    /// The api-version to address a resource of `resource_type` with.
    pub fn api_version_for(&self, resource_type: &str) -> String {
        self.api_versions
            .get(&resource_type.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| crate::api::for_type(resource_type).to_string())
    }

    /// Stable hash of the plan's content (journal, locks and audit name a plan by it).
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let bytes = serde_json::to_vec(self).expect("plan serializes");
        crate::id::hex(&Sha256::digest(&bytes)[..16])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{id} (tenant {}) is protected (preventDestroy) but {what}; refusing to plan data loss. Re-run with --allow-data-loss {} if this is really intended",
        .tenant.as_deref().unwrap_or("shared"), .tenant.as_deref().unwrap_or("shared")
    )]
    Protected {
        id: ResourceId,
        tenant: Option<String>,
        what: String,
    },
}

pub struct PlanOptions<'a> {
    pub scope: &'a Scope,
    /// Tenant ids (or `shared`) whose protected resources may be destroyed.
    pub allow_data_loss: &'a [String],
    pub inputs: Inputs,
    /// Ids (lower-cased) that manifests outside the scope declare: never orphans
    /// here (an untagged child such as a hub-side peering cannot say whose it is).
    pub declared_elsewhere: &'a std::collections::HashSet<String>,
    /// What lifeboat recorded as its own. With it, only recorded resources (in
    /// recorded resource groups) are ever deleted, and a resource once recorded
    /// as protected stays protected. `None` for reads that plan no deletes.
    pub ledger: Option<&'a crate::observed::Ledger>,
    /// A `destroy`: what is found is deleted because the tenant goes, not
    /// because a manifest stopped declaring it (the reasons say so).
    pub destroying: bool,
}

fn allowed(opts: &PlanOptions<'_>, tenant: Option<&str>) -> bool {
    let who = tenant.unwrap_or("shared");
    opts.allow_data_loss.iter().any(|a| a == who)
}

/// What the plan needs from the graph alone: worked out before the prior
/// state is read in full (a fleet plan does it while ARM's read quota, not
/// this machine, bounds the reads) and handed to [`plan_prepared`].
pub struct Prepared {
    /// Which graph this was made of: its resources' allocation and length.
    /// A graph is not changed once built; a different one is prepared again.
    of: (usize, usize),
    shared_dependents_all: BTreeMap<String, Vec<String>>,
    api_versions: BTreeMap<String, String>,
    desired_keys: HashSet<String>,
    generated: HashSet<String>,
}

impl Prepared {
    pub fn of(graph: &Graph) -> Prepared {
        Prepared {
            of: (graph.resources.as_ptr() as usize, graph.resources.len()),
            shared_dependents_all: graph.dependent_tenants(),
            api_versions: api_versions(graph),
            desired_keys: graph
                .resources
                .iter()
                .map(|r| r.id.key().to_string())
                .collect(),
            // Key Vault secrets that apply generates for `$secret` references
            // belong to the resources that reference them; they are not
            // orphans. Children a parent declares inline (a VNet's subnets, an
            // NSG's rules) are the parent's: its diff shows them added or
            // removed.
            generated: graph
                .resources
                .iter()
                .flat_map(|r| r.secrets.iter().cloned().chain(inline_declared(r)))
                .collect(),
        }
    }

    fn describes(&self, graph: &Graph) -> bool {
        self.of == (graph.resources.as_ptr() as usize, graph.resources.len())
    }
}

/// Compute the plan. Pure; consumes the graph so that bodies move into the plan
/// instead of being copied (a 200-hospital fleet has ~13k of them).
pub fn plan(graph: Graph, prior: &PriorState, opts: PlanOptions<'_>) -> Result<Plan, PlanError> {
    let prepared = Prepared::of(&graph);
    plan_prepared(graph, prepared, prior, opts)
}

/// [`plan`], with what the graph alone tells already worked out (`prepared`
/// of another graph is worked out again).
pub fn plan_prepared(
    graph: Graph,
    prepared: Prepared,
    prior: &PriorState,
    opts: PlanOptions<'_>,
) -> Result<Plan, PlanError> {
    let prepared = match prepared.describes(&graph) {
        true => prepared,
        false => Prepared::of(&graph),
    };
    let Prepared {
        shared_dependents_all,
        api_versions,
        desired_keys,
        generated,
        ..
    } = prepared;
    let activated = activated_tenants(prior);
    // What is not declared does not depend on what is: both at once.
    let (desired, (deletes, mut kept)) = std::thread::scope(|s| {
        let orphans = s.spawn(|| orphans(prior, &opts, &desired_keys, &generated, &api_versions));
        let desired = desired_changes(graph, prior, &opts, &activated);
        (
            desired,
            orphans.join().expect("finding orphans does not panic"),
        )
    });
    let Desired {
        mut changes,
        deferred,
        capacity_reductions,
    } = desired?;
    changes.extend(deletes);
    keep_ancestors_of_kept(&mut changes, &mut kept);
    changes.sort_by(|a, b| (a.layer, &a.tenant, &a.id).cmp(&(b.layer, &b.tenant, &b.id)));
    let disruptions = disruptions(&changes);
    let mut activated: Vec<String> = activated.into_iter().collect();
    activated.sort();
    let mut summary = Summary::default();
    let mut writes = 0;
    for c in &changes {
        summary.count(c.action);
        writes += match c.action {
            Action::Create | Action::Update | Action::Delete => 1,
            Action::Replace => 2,
            Action::NoOp => 0,
        };
    }
    let changed: HashSet<&str> = changes
        .iter()
        .filter(|c| c.action != Action::NoOp && c.layer == Layer::Shared)
        .map(|c| c.id.key())
        .collect();
    let shared_dependents = shared_dependents_all
        .into_iter()
        .filter(|(id, _)| changed.contains(id.to_ascii_lowercase().as_str()))
        .collect();
    let quota = quota::needs(&changes, prior);
    Ok(Plan {
        format_version: FORMAT_VERSION.into(),
        summary,
        quota,
        changes,
        requests: Requests {
            write: writes,
            ..prior.requests
        },
        scope: opts.scope.clone(),
        allow_data_loss: opts.allow_data_loss.to_vec(),
        kept,
        deferred,
        capacity_reductions,
        disruptions,
        activated,
        shared_dependents,
        inputs: opts.inputs,
        api_versions,
        findings: Vec::new(),
        cost: None,
    })
}

/// api-version per resource type (lower-cased), the first template's that declares it.
fn api_versions(graph: &Graph) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in &graph.resources {
        out.entry(r.resource_type.to_ascii_lowercase())
            .or_insert_with(|| r.api_version.clone());
    }
    out
}

/// What the declared resources come to, before orphans.
struct Desired {
    changes: Vec<Change>,
    deferred: Vec<Kept>,
    capacity_reductions: Vec<capacity::CapacityReduction>,
}

/// Phase 1: each declared resource against what the cloud holds (image roll-out
/// holds, create/update/replace/no-op, protection, kept ignored values, the
/// activation mark, capacity reductions).
fn desired_changes(
    graph: Graph,
    prior: &PriorState,
    opts: &PlanOptions<'_>,
    activated: &HashSet<String>,
) -> Result<Desired, PlanError> {
    let ids: Vec<ResourceId> = graph.resources.iter().map(|r| r.id.clone()).collect();
    let Graph {
        mut resources,
        mut deps,
    } = graph;
    // Each resource is compared on its own: a fleet's halves go to two threads
    // (the order of the result is the graph's either way).
    let half = resources.len() / 2;
    let (later, later_deps) = (resources.split_off(half), deps.split_off(half));
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| desired_part(later, later_deps, &ids, prior, opts, activated));
        let first = desired_part(resources, deps, &ids, prior, opts, activated);
        (first, second.join().expect("comparing does not panic"))
    });
    let (mut out, second) = (first?, second?);
    out.changes.extend(second.changes);
    out.deferred.extend(second.deferred);
    out.capacity_reductions.extend(second.capacity_reductions);
    Ok(out)
}

fn desired_part(
    resources: Vec<crate::graph::Resource>,
    deps: Vec<Vec<usize>>,
    ids: &[ResourceId],
    prior: &PriorState,
    opts: &PlanOptions<'_>,
    activated: &HashSet<String>,
) -> Result<Desired, PlanError> {
    let mut out = Desired {
        changes: Vec::with_capacity(resources.len()),
        deferred: Vec::new(),
        capacity_reductions: Vec::new(),
    };
    for (mut r, dep) in resources.into_iter().zip(deps) {
        let depends_on: Vec<ResourceId> = dep.iter().map(|&j| ids[j].clone()).collect();
        let observed = prior.get(&r.id);
        let mut rollout = None;
        if let Some(wanted) = gallery_image(&r.body) {
            match hold_image(&r, observed, &wanted, prior, activated) {
                Hold::Go => rollout = Some(wanted),
                Hold::Defer(reason) => {
                    out.deferred.push(Kept {
                        id: r.id.clone(),
                        tenant: r.tenant.clone(),
                        reason,
                    });
                    continue;
                }
                Hold::Pin(current, reason) => {
                    r.body.edit(|b| {
                        b["properties"]["storageProfile"]["imageReference"]["id"] =
                            Value::String(current)
                    });
                    out.deferred.push(Kept {
                        id: r.id.clone(),
                        tenant: r.tenant.clone(),
                        reason,
                    });
                }
            }
        }
        let protected = r.lifecycle.prevent_destroy
            || observed.is_some_and(|o| o.is_protected())
            || opts
                .ledger
                .is_some_and(|l| l.protected.contains(r.id.key()));
        let (action, entries, reason) = match observed {
            None => (Action::Create, Vec::new(), None),
            Some(o) => compare(&r, o, prior, opts, protected, rollout.as_ref())?,
        };
        if action == Action::Update
            && let Some(o) = observed
        {
            r.body
                .edit(|b| diff::keep_ignored(b, &o.body, &r.lifecycle.ignore));
        }
        // A PUT replaces all tags: keep the activation mark `activate` set, so an
        // update during an emergency does not make the tenant look idle.
        if let Some(mark) = observed.and_then(|o| o.tag(ACTIVATION_TAG))
            && r.body.get("tags").is_some_and(Body::is_object)
        {
            r.body
                .edit(|b| b["tags"][ACTIVATION_TAG] = Value::from(mark));
        }
        if r.lifecycle.guard_capacity
            && matches!(action, Action::Update | Action::Replace)
            && let Some(o) = observed
            && let Some(red) = capacity::reduction(&r.id, r.tenant.as_deref(), &o.body, &r.body)
        {
            out.capacity_reductions.push(red);
        }
        out.changes.push(Change {
            id: r.id,
            resource_type: r.resource_type,
            tenant: r.tenant,
            layer: r.layer,
            action,
            diff: entries,
            api_version: r.api_version,
            body: Some(r.body),
            depends_on,
            lifecycle: r.lifecycle,
            protected,
            reason,
        });
    }
    Ok(out)
}

/// A declared resource that exists: replace (a property that cannot change in
/// place, refused for a protected resource without `--allow-data-loss`), update
/// (drift, or a failed last operation), or no-op.
fn compare(
    r: &crate::graph::Resource,
    o: &crate::observed::ObservedResource,
    prior: &PriorState,
    opts: &PlanOptions<'_>,
    protected: bool,
    rollout: Option<&ResourceId>,
) -> Result<(Action, Vec<DiffEntry>, Option<String>), PlanError> {
    // A settled resource matched this very body as it was read.
    let mut entries = match o.settled {
        true => Vec::new(),
        false => diff(
            &r.body,
            &o.body,
            &DiffOptions {
                ignore: &r.lifecycle.ignore,
                replace_on: &r.lifecycle.replace_on,
                prior,
            },
        ),
    };
    let triggers: Vec<&str> = entries
        .iter()
        .filter(|e| e.forces_replacement)
        .map(|e| e.path.as_str())
        .collect();
    if !triggers.is_empty() {
        let reason = match rollout {
            Some(v) if triggers.iter().any(|t| t.contains("imageReference")) => {
                format!(
                    "moves to HiX image {} (re-created: front-ends are deallocated and hold no data)",
                    v.name()
                )
            }
            _ => format!("{} cannot change in place", triggers.join(", ")),
        };
        if protected && !allowed(opts, r.tenant.as_deref()) {
            return Err(PlanError::Protected {
                id: r.id.clone(),
                tenant: r.tenant.clone(),
                what: format!("{reason}, so it would be replaced"),
            });
        }
        return Ok((Action::Replace, entries, Some(reason)));
    }
    Ok(if failed(o) {
        // The last operation failed: ARM keeps the resource in `Failed` until a
        // PUT succeeds, so put it again.
        entries.push(DiffEntry {
            path: "properties.provisioningState".into(),
            before: Some(Value::from("Failed")),
            after: Some(Value::from("Succeeded")),
            forces_replacement: false,
        });
        (
            Action::Update,
            entries,
            Some("the last operation on it failed".into()),
        )
    } else if entries.is_empty() {
        (Action::NoOp, entries, None)
    } else {
        (Action::Update, entries, None)
    })
}

/// The ids of the children `r` declares inline, lower-cased.
fn inline_declared(r: &crate::graph::Resource) -> Vec<String> {
    crate::api::inline_children(&r.resource_type)
        .filter_map(|k| {
            r.body
                .pointer(&format!("/properties/{}", k.key))?
                .as_array()
                .map(|a| (k, a))
        })
        .flat_map(|(k, a)| {
            a.iter()
                .filter_map(|e| e.get("name")?.as_str())
                .map(move |n| r.id.child(k.key, n).key().to_string())
        })
        .collect()
}

/// Phase 2: managed resources in scope that no template declares any more:
/// deleted, or kept when protected (without `--allow-data-loss`).
fn orphans(
    prior: &PriorState,
    opts: &PlanOptions<'_>,
    desired_keys: &HashSet<String>,
    generated: &HashSet<String>,
    api_versions: &BTreeMap<String, String>,
) -> (Vec<Change>, Vec<Kept>) {
    let (mut deletes, mut kept) = (Vec::new(), Vec::new());
    for o in &prior.resources {
        // A subnet, NSG rule or peering goes with its parent when the parent
        // goes (or stays, protected): never on its own. (Asked last: most
        // of what a plan reads is declared.)
        let with_parent = || {
            o.id.parent().is_some_and(|p| {
                !desired_keys.contains(p.key())
                    && crate::api::inline_children(&p.resource_type())
                        .any(|k| k.child.eq_ignore_ascii_case(&o.resource_type))
            })
        };
        if desired_keys.contains(o.id.key())
            || generated.contains(o.id.key())
            // Image versions come from `image build` and go with `image prune`.
            || o.resource_type.eq_ignore_ascii_case(IMAGE_VERSION)
            || opts.declared_elsewhere.contains(o.id.key())
            // A VM's OS disk is Azure's: it goes (or is detached) with its VM.
            || o.is_held_os_disk()
            || with_parent()
        {
            continue;
        }
        let Some(mut own) = prior.ownership(o) else {
            continue;
        };
        if !opts.scope.includes(own.layer, own.tenant.as_deref()) {
            continue;
        }
        if let Some(ledger) = opts.ledger {
            // Tags can be written by anyone: only what lifeboat recorded as its
            // own, in a resource group it recorded, is lifeboat's to delete.
            let group_recorded = o.id.resource_group().is_none_or(|rg| {
                ledger.recorded.contains(&format!(
                    "/subscriptions/{}/resourcegroups/{}",
                    o.id.subscription().to_ascii_lowercase(),
                    rg.to_ascii_lowercase()
                ))
            });
            // A child inside a recorded resource (a generated Key Vault secret,
            // a container) is lifeboat's with it; a resource group's other
            // contents are not.
            let mut mine = false;
            let mut cur = Some(o.id.clone());
            while let Some(id) = cur {
                if ledger.recorded.contains(id.key()) {
                    mine = true;
                    break;
                }
                cur = id.parent().filter(|p| !p.is_resource_group());
            }
            if !mine || !group_recorded {
                kept.push(Kept {
                    id: o.id.clone(),
                    tenant: own.tenant.clone(),
                    reason: "tagged as lifeboat's but not in lifeboat's record of what it created: kept (a tag alone never makes a resource lifeboat's to delete)".into(),
                });
                continue;
            }
            own.protected |= ledger.protected.contains(o.id.key());
        }
        if own.protected && !allowed(opts, own.tenant.as_deref()) {
            kept.push(Kept {
                id: o.id.clone(),
                tenant: own.tenant.clone(),
                reason: format!(
                    "protected: {}, kept; delete it with --allow-data-loss {}",
                    if opts.destroying {
                        "destroy keeps protected data"
                    } else {
                        "no longer declared"
                    },
                    own.tenant.as_deref().unwrap_or("shared")
                ),
            });
            continue;
        }
        let own_name = match &own.tenant {
            Some(t) => format!("tenant {t}"),
            None => "the shared layer".to_string(),
        };
        deletes.push(Change {
            id: o.id.clone(),
            resource_type: o.resource_type.clone(),
            tenant: own.tenant,
            layer: own.layer,
            action: Action::Delete,
            diff: Vec::new(),
            api_version: api_versions
                .get(&o.resource_type.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| crate::api::for_type(&o.resource_type).to_string()),
            body: None,
            depends_on: references(&o.body, &o.id),
            lifecycle: Lifecycle::default(),
            protected: own.protected,
            reason: Some(if opts.destroying {
                format!("destroyed with {}", own_name)
            } else {
                "no longer declared by any manifest".into()
            }),
        });
    }
    (deletes, kept)
}

/// Phase 3: deleting a parent deletes its children, so the ancestors of kept
/// resources are kept too.
fn keep_ancestors_of_kept(changes: &mut Vec<Change>, kept: &mut Vec<Kept>) {
    let kept_ids: Vec<ResourceId> = kept.iter().map(|k| k.id.clone()).collect();
    changes.retain(|c| {
        if c.action != Action::Delete {
            return true;
        }
        let prefix = format!("{}/", c.id.key());
        match kept_ids.iter().find(|k| k.key().starts_with(&prefix)) {
            Some(k) => {
                kept.push(Kept {
                    id: c.id.clone(),
                    tenant: c.tenant.clone(),
                    reason: format!("holds protected {}, which is kept", k.display_name()),
                });
                false
            }
            None => true,
        }
    });
}

/// Phase 4: tenant changes that interrupt service. Only the tenant layer serves
/// users; image-layer changes (templates, definitions) interrupt nothing.
fn disruptions(changes: &[Change]) -> Vec<Kept> {
    changes
        .iter()
        .filter(|c| c.tenant.is_some() && c.layer == Layer::Tenant)
        .filter_map(|c| {
            let why = match c.action {
                Action::Replace => "re-created",
                Action::Delete => "deleted",
                Action::Update
                    if c.diff
                        .iter()
                        .any(|d| d.path == "properties.hardwareProfile.vmSize") =>
                {
                    "resized (the VM restarts)"
                }
                _ => return None,
            };
            Some(Kept {
                id: c.id.clone(),
                tenant: c.tenant.clone(),
                reason: why.to_string(),
            })
        })
        .collect()
}

/// Gallery image versions: built by `image build`, never declared by templates.
use crate::api::IMAGE_VERSION_TYPE as IMAGE_VERSION;

/// The tag `activate` sets on a tenant's resource group while an emergency is in
/// progress (and `deactivate` removes).
pub const ACTIVATION_TAG: &str = "lifeboat-activation";

/// Tenants whose emergency environment is in use or changing state: `active`,
/// and also `activating` and `deactivating` (a DAP run is under way; nothing
/// may disrupt it). Any value of the mark counts: an unknown one is treated as
/// in use, never as idle.
fn activated_tenants(prior: &PriorState) -> std::collections::HashSet<String> {
    prior
        .resources
        .iter()
        .filter(|r| r.id.is_resource_group() && r.tag(ACTIVATION_TAG).is_some())
        .filter_map(|r| r.tag("lifeboat-tenant").map(str::to_string))
        .collect()
}

/// The gallery image version a VM body is built from, if any.
fn gallery_image<J: Json>(body: &J) -> Option<ResourceId> {
    let id = crate::observed::at(body, "/properties/storageProfile/imageReference/id")?.as_str()?;
    let id = ResourceId::parse(id).ok()?;
    id.resource_type()
        .eq_ignore_ascii_case(IMAGE_VERSION)
        .then_some(id)
}

enum Hold {
    /// Plan it as declared.
    Go,
    /// Do not create it yet.
    Defer(String),
    /// Keep the image it runs on now (the id), and say why.
    Pin(String, String),
}

/// Roll-out rules for a VM built from the tenant's gallery image: it moves to the
/// declared version only once that version exists, and never while the tenant is
/// activated.
fn hold_image(
    r: &crate::graph::Resource,
    observed: Option<&crate::observed::ObservedResource>,
    wanted: &ResourceId,
    prior: &PriorState,
    activated: &std::collections::HashSet<String>,
) -> Hold {
    let tenant = r.tenant.as_deref().unwrap_or("shared");
    let built = prior.get(wanted).is_some();
    let current = observed.and_then(|o| gallery_image(&o.body));
    let version = wanted.name();
    match (current, built) {
        (None, true) => Hold::Go,
        (None, false) => Hold::Defer(format!(
            "waits for HiX image {version}: run `lifeboat image build --tenant {tenant}`"
        )),
        (Some(cur), _) if cur == *wanted => Hold::Go,
        (Some(cur), _) if activated.contains(tenant) => Hold::Pin(
            cur.to_string(),
            format!(
                "tenant {tenant} is activated (an emergency is in progress): stays on image {} until it is deactivated, then moves to {version}",
                cur.name()
            ),
        ),
        (Some(cur), false) => Hold::Pin(
            cur.to_string(),
            format!(
                "stays on image {} until {version} is built: run `lifeboat image build --tenant {tenant}`",
                cur.name()
            ),
        ),
        (Some(_), true) => Hold::Go,
    }
}

fn failed(o: &crate::observed::ObservedResource) -> bool {
    crate::observed::at(&o.body, "/properties/provisioningState")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("failed"))
}

/// Ids an observed resource refers to (its parent and ARM ids in its body), so
/// that apply can delete orphans in reverse dependency order. `managedBy` is
/// not one: it names the holder (a disk's VM), which refers to the disk in
/// turn and must go first; read as a dependency it made every attached disk
/// and its VM a cycle, and a tenant's destroy stopped there.
fn references(body: &serde_json::Value, id: &ResourceId) -> Vec<ResourceId> {
    fn walk(v: &serde_json::Value, out: &mut Vec<ResourceId>) {
        match v {
            serde_json::Value::String(s) if s.starts_with("/subscriptions/") => {
                if let Ok(id) = ResourceId::parse(s) {
                    out.push(id);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out: Vec<ResourceId> = id.parent().into_iter().collect();
    match body {
        serde_json::Value::Object(o) => o
            .iter()
            .filter(|(k, _)| k.as_str() != "managedBy")
            .for_each(|(_, x)| walk(x, &mut out)),
        other => walk(other, &mut out),
    }
    out.retain(|r| r != id && r.as_str().split('/').count() > 3);
    out.sort();
    out.dedup();
    out
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.summary.has_changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Resource, connect};
    use crate::observed::ObservedResource;
    use serde_json::json;

    const RG: &str = "/subscriptions/s/resourceGroups/lb-cwz-rg";

    fn disk(size: u32, zone: &str) -> Resource {
        Resource {
            id: ResourceId::parse(&format!("{RG}/providers/Microsoft.Compute/disks/d")).unwrap(),
            resource_type: "Microsoft.Compute/disks".into(),
            api_version: "2024-03-02".into(),
            layer: Layer::Tenant,
            tenant: Some("cwz".into()),
            body: json!({"zones": [zone], "properties": {"diskSizeGB": size}, "tags": {"lifeboat-managed": "true", "lifeboat-layer": "tenant", "lifeboat-tenant": "cwz", "lifeboat-protected": "true"}}).into(),
            depends_on: vec![],
            lifecycle: Lifecycle {
                prevent_destroy: true,
                ignore: vec![],
                replace_on: vec!["zones".into()],
                power_state: None,
                guard_capacity: false,
            },
            template: "tenant/sql.yaml.tera".into(),
            template_line: 1,
            secrets: Vec::new(),
        }
    }

    fn observed(r: &Resource) -> ObservedResource {
        let mut body = r.body.to_value();
        body["properties"]["provisioningState"] = json!("Succeeded");
        ObservedResource::new(r.id.clone(), r.resource_type.clone(), body)
    }

    fn run(
        desired: Vec<Resource>,
        prior: Vec<ObservedResource>,
        allow: &[String],
        scope: &Scope,
    ) -> Result<Plan, PlanError> {
        let g = connect(desired, scope).unwrap();
        let prior = PriorState::new(
            prior,
            Requests {
                read: 1,
                ..Default::default()
            },
        );
        plan(
            g,
            &prior,
            PlanOptions {
                declared_elsewhere: &Default::default(),
                scope,
                allow_data_loss: allow,
                inputs: Inputs::default(),
                ledger: None,
                destroying: false,
            },
        )
    }

    /// With the ledger, a tag is not enough to delete, and recorded protection
    /// outlives its tag.
    #[test]
    fn only_recorded_resources_are_deleted_and_recorded_protection_stays() {
        let mut untagged = observed(&disk(64, "1"));
        untagged.body["tags"]
            .as_object_mut()
            .unwrap()
            .remove("lifeboat-protected");
        let stranger = ObservedResource {
            id: ResourceId::parse(&format!(
                "{RG}/providers/Microsoft.Network/networkSecurityGroups/theirs"
            ))
            .unwrap(),
            resource_type: "Microsoft.Network/networkSecurityGroups".into(),
            body: json!({"tags": {"lifeboat-managed": "true", "lifeboat-layer": "tenant", "lifeboat-tenant": "cwz"}}),
            read_digest: None,
            settled: false,
        };
        let mut ledger = crate::observed::Ledger::default();
        ledger.recorded.insert(RG.to_ascii_lowercase());
        ledger.recorded.insert(untagged.id.key().to_string());
        ledger.protected.insert(untagged.id.key().to_string());
        let prior = PriorState::new(vec![untagged, stranger], Requests::default());
        let plan_with = |ledger| {
            plan(
                Graph::default(),
                &prior,
                PlanOptions {
                    declared_elsewhere: &Default::default(),
                    scope: &Scope::everything(),
                    allow_data_loss: &[],
                    inputs: Inputs::default(),
                    ledger,
                    destroying: false,
                },
            )
            .unwrap()
        };
        // Without a ledger, tags decide: both would be deleted.
        let tags = plan_with(None);
        assert_eq!(tags.summary.delete, 2);
        let p = plan_with(Some(&ledger));
        assert_eq!(p.summary.delete, 0, "{:?}", p.changes);
        let reasons: Vec<&str> = p.kept.iter().map(|k| k.reason.as_str()).collect();
        assert!(
            reasons.iter().any(|r| r.starts_with("protected")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("a tag alone never")),
            "{reasons:?}"
        );
    }

    /// Azure's OS disk of a VM (held by it, never declared) is neither
    /// deleted nor kept; a disk's `managedBy` does not order deletes (the VM
    /// names the disk and goes first: read both ways they were a cycle).
    #[test]
    fn a_vms_own_os_disk_is_not_planned_and_a_holder_is_no_dependency() {
        let vm = format!("{RG}/providers/Microsoft.Compute/virtualMachines/fe1");
        let os = ObservedResource {
            id: ResourceId::parse(&format!(
                "{RG}/providers/Microsoft.Compute/disks/fe1-osdisk"
            ))
            .unwrap(),
            resource_type: "Microsoft.Compute/disks".into(),
            body: json!({"managedBy": vm, "tags": {"lifeboat-managed": "true", "lifeboat-layer": "tenant", "lifeboat-tenant": "cwz"},
                "properties": {"osType": "Windows", "encryption": {"diskEncryptionSetId": format!("{RG}/providers/Microsoft.Compute/diskEncryptionSets/des")}}}),
            read_digest: None,
            settled: false,
        };
        let refs = references(&os.body, &os.id);
        assert!(refs.iter().all(|r| r.as_str() != vm), "{refs:?}");
        assert!(refs.iter().any(|r| r.name() == "des"), "{refs:?}");
        let mut loose = os.clone();
        loose.body.as_object_mut().unwrap().remove("managedBy");
        let prior = PriorState::new(vec![os], Requests::default());
        let p = run(vec![], prior.resources.clone(), &[], &Scope::everything()).unwrap();
        assert!(p.changes.is_empty() && p.kept.is_empty(), "{:?}", p.changes);
        // Once its VM let go of it (deleteOption Detach), it is a disk like
        // any other.
        let p = run(vec![], vec![loose], &[], &Scope::everything()).unwrap();
        assert_eq!(p.summary.delete, 1);
    }

    #[test]
    fn create_noop_update() {
        let all = Scope::everything();
        let p = run(vec![disk(64, "1")], vec![], &[], &all).unwrap();
        assert_eq!(p.summary.create, 1);
        let p = run(
            vec![disk(64, "1")],
            vec![observed(&disk(64, "1"))],
            &[],
            &all,
        )
        .unwrap();
        assert_eq!(p.summary.no_op, 1);
        assert!(!p.has_changes());
        let p = run(
            vec![disk(128, "1")],
            vec![observed(&disk(64, "1"))],
            &[],
            &all,
        )
        .unwrap();
        assert_eq!(p.summary.update, 1);
        assert_eq!(p.changes[0].diff[0].path, "properties.diskSizeGB");
    }

    #[test]
    fn protected_resources_are_never_replaced_or_deleted_without_the_flag() {
        let all = Scope::everything();
        let err = run(
            vec![disk(64, "2")],
            vec![observed(&disk(64, "1"))],
            &[],
            &all,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--allow-data-loss cwz"), "{err}");
        let p = run(
            vec![disk(64, "2")],
            vec![observed(&disk(64, "1"))],
            &["cwz".into()],
            &all,
        )
        .unwrap();
        assert_eq!(p.summary.replace, 1);

        // Manifest gone: protection read from the tags keeps it.
        let p = run(vec![], vec![observed(&disk(64, "1"))], &[], &all).unwrap();
        assert_eq!(p.summary.delete, 0);
        assert_eq!(p.kept.len(), 1);
        let p = run(
            vec![],
            vec![observed(&disk(64, "1"))],
            &["cwz".into()],
            &all,
        )
        .unwrap();
        assert_eq!(p.summary.delete, 1);
        // Another tenant's flag does not count.
        let p = run(
            vec![],
            vec![observed(&disk(64, "1"))],
            &["mst".into()],
            &all,
        )
        .unwrap();
        assert_eq!(p.summary.delete, 0);
    }

    #[test]
    fn deletes_respect_scope() {
        let mut r = disk(64, "1");
        r.lifecycle.prevent_destroy = false;
        r.body.edit(|b| {
            b["tags"]
                .as_object_mut()
                .unwrap()
                .remove("lifeboat-protected")
        });
        let only_mst = Scope {
            shared: false,
            tenants: Some(vec!["mst".into()]),
        };
        let p = run(vec![], vec![observed(&r)], &[], &only_mst).unwrap();
        assert_eq!(p.summary.delete, 0);
        let p = run(vec![], vec![observed(&r)], &[], &Scope::everything()).unwrap();
        assert_eq!(p.summary.delete, 1);
    }
}
