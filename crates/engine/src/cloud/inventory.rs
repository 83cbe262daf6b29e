//! The prior state `plan` compares against, read in bulk the way Azure Resource
//! Graph allows (`shared/azure/resource-graph-coverage.md`):
//! - one paged query of `resources | union resourcecontainers` for tagged
//!   resources and everything in the platform's resource groups, and one of
//!   `authorizationresources` for role assignments (it cannot be unioned);
//! - subnets, NSG rules and VNet peerings from their parent's row, where Resource
//!   Graph keeps them;
//! - the child types Resource Graph does not index at all (Key Vault keys, blob
//!   services, containers, diagnostic settings) with one list call per parent
//!   that can hold them. This is the correct and the costly part (one read per
//!   parent on every plan); see the README, "How plan reads Azure";
//! - what the latest apply wrote, re-read directly only when its row is missing
//!   or does not yet show what was written (Resource Graph lags ARM writes).
//!
//! `--refresh direct` does a GET per desired resource instead (it cannot find
//! orphans whose manifest is gone).
//!
//! Reads only; never decides what should change.

use std::collections::HashSet;

use futures::StreamExt;
use serde_json::Value;

use super::client::{ArmClient, ArmError};
use lifeboat_core::api;
use lifeboat_core::id::ResourceId;
use lifeboat_core::observed::{ObservedResource, PriorState, Requests};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Graph,
    Direct,
}

/// A resource to read directly, with the api-version to read it with.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub id: ResourceId,
    pub api_version: String,
}

/// The Resource Graph query for everything lifeboat manages in a subscription:
/// tagged resources, plus every resource in a resource group named with the
/// platform prefix (child types such as peerings and containers cannot be tagged).
pub fn managed_query(prefix: &str) -> String {
    format!(
        "resources | union resourcecontainers | where tags['lifeboat-managed'] =~ 'true' or resourceGroup startswith '{prefix}-' | project id, name, type, location, resourceGroup, tags, properties, sku, kind, zones, identity, plan, managedBy"
    )
}

/// Role assignments in the platform's resource groups (their own table).
pub fn role_assignment_query(prefix: &str) -> String {
    format!(
        "authorizationresources | where type =~ 'microsoft.authorization/roleassignments' and resourceGroup startswith '{prefix}-' | project id, name, type, resourceGroup, properties"
    )
}

/// A child type Resource Graph does not index: the parent type that holds it and
/// the collection to list under a parent.
struct Unindexed {
    parent: &'static str,
    /// Appended to the parent id.
    collection: &'static str,
    api_version: &'static str,
}

const UNINDEXED: &[Unindexed] = &[
    Unindexed {
        parent: "microsoft.keyvault/vaults",
        collection: "/keys",
        api_version: api::KEY_VAULT,
    },
    Unindexed {
        parent: "microsoft.storage/storageaccounts",
        collection: "/blobServices",
        api_version: api::STORAGE,
    },
    Unindexed {
        parent: "microsoft.storage/storageaccounts",
        collection: "/blobServices/default/containers",
        api_version: api::STORAGE,
    },
];

/// Diagnostic settings: an extension collection under any resource.
const DIAGNOSTIC_SETTINGS: &str = "/providers/Microsoft.Insights/diagnosticSettings";
pub const DIAGNOSTIC_SETTINGS_TYPE: &str = "microsoft.insights/diagnosticsettings";

fn observed(id: ResourceId, mut body: Value) -> ObservedResource {
    if let Some(o) = body.as_object_mut() {
        for k in [
            "id",
            "name",
            "type",
            "subscriptionId",
            "resourceGroup",
            "tenantId",
        ] {
            o.remove(k);
        }
    }
    ObservedResource::new(id.clone(), id.resource_type(), body)
}

fn id_of(row: &Value) -> Option<ResourceId> {
    row.get("id")
        .and_then(Value::as_str)
        .and_then(|s| ResourceId::parse(s).ok())
}

/// What the Resource Graph queries returned, with the inline children taken out
/// of their parents' rows, and what was already listed while the pages came in.
#[derive(Debug, Default)]
pub struct Indexed {
    pub found: Vec<ObservedResource>,
    /// Parents (lower-cased ids) whose non-indexed collections were listed.
    pub listed: HashSet<String>,
    /// Resources (lower-cased ids) whose diagnostic settings were listed.
    pub diagnosed: HashSet<String>,
    /// What the graph said to list (its settler let go, and with it the
    /// graph), for [`complete`] to list the rest by.
    pub early: Option<Early>,
}

/// What the rendered graph says to list as soon as a row arrives: the
/// non-indexed children of desired parents, and the diagnostic settings of
/// every resource of a type the manifests diagnose.
#[derive(Debug, Default)]
pub struct Early {
    /// Lower-cased ids of the desired resources.
    pub desired: HashSet<String>,
    /// Lower-cased types whose diagnostic settings the manifests declare.
    pub diagnosed_types: HashSet<String>,
    pub diagnostics_api: String,
    /// When set, each desired resource is settled against its declaration as
    /// it arrives (`lifeboat_core::plan::settle`).
    pub settle: Option<lifeboat_core::plan::settle::Settler>,
}

/// Whether `resource_type` is one of the (lower-cased, few) types whose
/// diagnostic settings the manifests declare; asked of every row, so without
/// lower-casing a copy.
fn diagnosed(types: &HashSet<String>, resource_type: &str) -> bool {
    types.iter().any(|t| t.eq_ignore_ascii_case(resource_type))
}

/// A collection to list, and why.
struct Listing {
    path: String,
    api_version: String,
}

/// Rows and listed children collected so far, and the lists still to run.
struct Collector<'e> {
    early: Option<&'e Early>,
    indexed: Indexed,
    queue: std::collections::VecDeque<Listing>,
}

impl Collector<'_> {
    /// Add one listed resource; queue what it needs listed.
    fn add(&mut self, r: ObservedResource) {
        self.note(&r);
        let settle = self.early.and_then(|e| e.settle.as_ref());
        self.indexed.found.push(match settle {
            Some(s) => s.settle(r),
            None => r,
        });
    }

    /// Queue what `r` needs listed.
    fn note(&mut self, r: &ObservedResource) {
        if let Some(early) = self.early {
            let t = &r.resource_type;
            if early.desired.contains(r.id.key()) {
                for u in UNINDEXED
                    .iter()
                    .filter(|u| u.parent.eq_ignore_ascii_case(t))
                {
                    self.queue.push_back(Listing {
                        path: format!("{}{}", r.id.as_str(), u.collection),
                        api_version: u.api_version.to_string(),
                    });
                    self.indexed.listed.insert(r.id.key().to_string());
                }
            }
            if diagnosed(&early.diagnosed_types, t) {
                self.queue.push_back(Listing {
                    path: format!("{}{DIAGNOSTIC_SETTINGS}", r.id.as_str()),
                    api_version: early.diagnostics_api.clone(),
                });
                self.indexed.diagnosed.insert(r.id.key().to_string());
            }
        }
    }
}

/// A page's rows as observed resources, with the children a parent row carries
/// inline taken out of it, each settled as it is taken in. Pure CPU work (most
/// of a fleet's reading): [`indexed`] runs it off the collecting task, so pages
/// are taken in on every core while lists are in flight.
fn take_in(
    page: &crate::cloud::client::GraphPage,
    settle: Option<&lifeboat_core::plan::settle::Settler>,
) -> Result<Vec<ObservedResource>, ArmError> {
    // Each row is settled as soon as it is parsed: its full body is dropped
    // before the next one is taken.
    let take = |r: ObservedResource| match settle {
        Some(s) => s.settle(r),
        None => r,
    };
    let rows = page.rows()?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(id) = id_of(&row) else { continue };
        for kind in api::inline_children(&id.resource_type()) {
            out.extend(
                row.pointer(&format!("/properties/{}", kind.key))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|child| Some(take(observed(id_of(child)?, child.clone())))),
            );
        }
        out.push(take(observed(id, row)));
    }
    Ok(out)
}

/// Run the two Resource Graph queries (concurrently), taking in each page while
/// the next is on its way. Once `early` tells what the graph declares, the
/// collections Resource Graph does not index are listed as their parents'
/// rows arrive (32 at a time), instead of after the last page; `early`
/// resolving to `None` leaves all listing to [`complete`].
pub async fn indexed(
    client: &ArmClient,
    subscription: &str,
    prefix: &str,
    early: impl std::future::Future<Output = Option<Early>>,
) -> Result<Indexed, ArmError> {
    let subs = [subscription.to_string()];
    let (main_q, roles_q) = (managed_query(prefix), role_assignment_query(prefix));
    // A few pages wait (the service keeps building the next while the graph
    // renders); more would only hold raw JSON the collector cannot take yet.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let pages = async move {
        let send = |p| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(p).await;
            }
        };
        let (main, roles) = futures::join!(
            client.query_pages(&subs, &main_q, send),
            client.query_pages(&subs, &roles_q, send)
        );
        main.and(roles)
    };
    let collect = async {
        let early = early.await.map(std::sync::Arc::new);
        let mut c = Collector {
            early: early.as_deref(),
            indexed: Indexed::default(),
            queue: Default::default(),
        };
        let mut running = futures::stream::FuturesUnordered::new();
        // Pages being taken in, kept in the order they came; as many at once
        // as this machine has cores (each holds a page's rows in full).
        let mut taking = futures::stream::FuturesOrdered::new();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut open = true;
        loop {
            while running.len() < 32
                && let Some(l) = c.queue.pop_front()
            {
                running.push(async move { client.list(&l.path, &l.api_version).await });
            }
            tokio::select! {
                page = rx.recv(), if open && taking.len() < cores => match page {
                    Some(page) => {
                        let early = early.clone();
                        taking.push_back(tokio::task::spawn_blocking(move || {
                            take_in(&page, early.as_ref().and_then(|e| e.settle.as_ref()))
                        }));
                    }
                    None => open = false,
                },
                Some(taken) = taking.next(), if !taking.is_empty() => {
                    let taken = taken.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                    for r in taken? {
                        c.note(&r);
                        c.indexed.found.push(r);
                    }
                },
                Some(items) = running.next(), if !running.is_empty() => {
                    for item in items? {
                        if let Some(id) = id_of(&item) {
                            c.add(observed(id, item));
                        }
                    }
                }
                else => break,
            }
        }
        let mut indexed = c.indexed;
        // Every page taken in has let go of its share by now.
        indexed.early = early
            .and_then(|e| std::sync::Arc::try_unwrap(e).ok())
            .map(|e| Early { settle: None, ..e });
        Ok::<_, ArmError>(indexed)
    };
    let (read, collected) = futures::join!(pages, collect);
    read?;
    collected
}

/// What else `complete` reads: the parent types whose diagnostic settings the
/// manifests declare, what the latest apply wrote, and which of those rows
/// already show what was written.
pub struct Completion<'a> {
    /// The resource groups (lower-cased ids) the plan covers: only journal
    /// entries in them are re-read (a tenant's plan reads that tenant, not the
    /// fleet).
    pub groups: &'a HashSet<String>,
    /// The desired resources (lower-cased ids): their non-indexed children are
    /// listed.
    pub desired: &'a HashSet<String>,
    /// Which other parents to list: managed ones in the plan's scope that it
    /// would delete or keep (a removed manifest's protected Key Vault key and
    /// backup containers are named as kept).
    pub orphan_in_scope: &'a (dyn Fn(&ObservedResource, &PriorState) -> bool + Sync),
    pub diagnosed_types: &'a HashSet<String>,
    pub diagnostics_api: &'a str,
    pub recent: &'a [Wanted],
    /// Resources the desired ones reference and that must exist first (HiX image
    /// versions): read directly when Resource Graph has no row for them yet, so
    /// a version built a moment ago is not mistaken for a missing one.
    pub referenced: &'a [Wanted],
    pub fresh: &'a (dyn Fn(&ObservedResource, &PriorState) -> bool + Sync),
}

/// Add the non-indexed children (one list call per parent that can hold them)
/// and re-read what the latest apply wrote where Resource Graph does not show
/// it yet.
pub async fn complete(
    client: &ArmClient,
    indexed: Indexed,
    how: Completion<'_>,
) -> Result<Vec<ObservedResource>, ArmError> {
    let Indexed {
        found,
        listed,
        diagnosed,
        ..
    } = indexed;
    let state = PriorState::new(found, Requests::default());
    let listable: HashSet<String> = state
        .resources
        .iter()
        .filter(|r| !listed.contains(r.id.key()))
        .filter(|r| how.desired.contains(r.id.key()) || (how.orphan_in_scope)(r, &state))
        .map(|r| r.id.key().to_string())
        .collect();
    let mut found = state.resources;
    // Keys, blob services and containers first: a blob service can carry
    // diagnostic settings of its own.
    let mut lists: Vec<(String, &str)> = Vec::new();
    let in_scope = |id: &ResourceId| match id.resource_group() {
        Some(rg) => how.groups.contains(&format!(
            "/subscriptions/{}/resourcegroups/{}",
            id.subscription().to_ascii_lowercase(),
            rg.to_ascii_lowercase()
        )),
        None => true,
    };
    for r in found.iter().filter(|r| listable.contains(r.id.key())) {
        for u in UNINDEXED
            .iter()
            .filter(|u| u.parent.eq_ignore_ascii_case(&r.resource_type))
        {
            lists.push((format!("{}{}", r.id.as_str(), u.collection), u.api_version));
        }
    }
    found.extend(list_all(client, lists).await?);
    let lists: Vec<(String, &str)> = found
        .iter()
        .filter(|r| {
            !diagnosed.contains(r.id.key())
                && self::diagnosed(how.diagnosed_types, &r.resource_type)
        })
        .map(|r| {
            (
                format!("{}{DIAGNOSTIC_SETTINGS}", r.id.as_str()),
                how.diagnostics_api,
            )
        })
        .collect();
    found.extend(list_all(client, lists).await?);
    // A row that already shows what was written is fresh; anything else the
    // latest apply touched is read directly.
    let so_far = PriorState::new(found, Requests::default());
    let mut stale: Vec<&Wanted> = how
        .recent
        .iter()
        .filter(|w| in_scope(&w.id))
        .filter(|w| match so_far.get(&w.id) {
            Some(row) => !(how.fresh)(row, &so_far),
            None => true,
        })
        .collect();
    stale.extend(
        how.referenced
            .iter()
            .filter(|w| so_far.get(&w.id).is_none()),
    );
    stale.sort_by(|a, b| a.id.cmp(&b.id));
    stale.dedup_by(|a, b| a.id == b.id);
    let mut found = so_far.resources;
    let reads = futures::stream::iter(stale)
        .map(|w| async move { (w.id.clone(), client.get(&w.id, &w.api_version).await) })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    merge(&mut found, reads)?;
    Ok(found)
}

/// Every item of the collections `lists` (path, api-version), 32 at a time.
async fn list_all(
    client: &ArmClient,
    lists: Vec<(String, &str)>,
) -> Result<Vec<ObservedResource>, ArmError> {
    let listed = futures::stream::iter(lists)
        .map(|(path, api)| async move { client.list(&path, api).await })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::new();
    for items in listed {
        for item in items? {
            if let Some(id) = id_of(&item) {
                out.push(observed(id, item));
            }
        }
    }
    Ok(out)
}

/// Replace or add what was read directly; drop what turned out to be gone.
fn merge(
    found: &mut Vec<ObservedResource>,
    reads: Vec<(ResourceId, Result<Option<Value>, ArmError>)>,
) -> Result<(), ArmError> {
    if reads.is_empty() {
        return Ok(());
    }
    let mut by_key: std::collections::HashMap<String, usize> = found
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.key().to_string(), i))
        .collect();
    let mut gone = std::collections::HashSet::new();
    for (id, result) in reads {
        match result? {
            Some(body) => {
                let r = observed(id, body);
                match by_key.get(r.id.key()) {
                    Some(&i) => found[i] = r,
                    None => {
                        by_key.insert(r.id.key().to_string(), found.len());
                        found.push(r);
                    }
                }
            }
            None => {
                gone.insert(id.key().to_string());
            }
        }
    }
    found.retain(|r| !gone.contains(r.id.key()));
    Ok(())
}

/// One GET per desired resource (`--refresh direct`).
pub async fn direct(
    client: &ArmClient,
    wanted: &[Wanted],
) -> Result<Vec<ObservedResource>, ArmError> {
    let reads = futures::stream::iter(wanted)
        .map(|w| async move { (w.id.clone(), client.get(&w.id, &w.api_version).await) })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let mut found = Vec::new();
    merge(&mut found, reads)?;
    Ok(found)
}

/// Keep what lifeboat manages (untagged child types count when an ancestor is
/// managed), sorted, with the requests it took.
pub fn managed(mut found: Vec<ObservedResource>, requests: Requests) -> PriorState {
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found.dedup_by(|a, b| a.id == b.id);
    let all = PriorState::new(found, requests);
    let keep: Vec<bool> = all
        .resources
        .iter()
        .map(|r| all.ownership(r).is_some())
        .collect();
    // Moved, not cloned: a fleet's state is tens of megabytes.
    let kept: Vec<ObservedResource> = all
        .resources
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect();
    PriorState::new(kept, requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_assignments_are_read_from_their_own_table() {
        let q = role_assignment_query("lb");
        assert!(q.starts_with("authorizationresources"));
        assert!(!q.contains("union"));
    }

    #[test]
    fn query_names_the_tag_and_groups() {
        let q = managed_query("lb");
        assert!(q.contains("tags['lifeboat-managed'] =~ 'true'"));
        assert!(q.contains("resourceGroup startswith 'lb-'"));
    }
}
