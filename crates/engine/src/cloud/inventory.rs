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
/// platform prefix (child types such as peerings and containers cannot be
/// tagged), but the OS disks Azure makes for VMs: held by their VM
/// (`managedBy`), never declared, never planned (see
/// `ObservedResource::is_held_os_disk`), they would be a quarter of a fleet's
/// rows (one per front-end). A detached one is read like any disk.
pub fn managed_query(prefix: &str) -> String {
    format!(
        "resources | union resourcecontainers | where tags['lifeboat-managed'] =~ 'true' or resourceGroup startswith '{prefix}-' | where isempty(managedBy) or type !~ 'microsoft.compute/disks' or isnull(properties.osType) | project id, name, type, location, resourceGroup, tags, properties, sku, kind, zones, identity, plan, managedBy"
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
/// desired resources of a type the manifests diagnose.
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

/// What the templates have told so far, while they render.
pub enum Learned {
    /// A part of the graph (the shared layer, or one tenant) has rendered:
    /// what it declares to list ([`Learned::part`]).
    Part {
        /// Lower-cased ids of its resources that hold non-indexed children or
        /// are of a type it declares diagnostic settings for.
        listable: Vec<String>,
        /// Lower-cased types it declares diagnostic settings for, each with
        /// the api-version it declares them with.
        diagnosed: Vec<(String, String)>,
    },
    /// The whole graph has rendered. The sender closing without this means
    /// it did not (a render error ends the command).
    All(Early),
}

impl Learned {
    /// What `resources`, one rendered part of the graph, tell to list.
    pub fn part(resources: &[lifeboat_core::graph::Resource]) -> Learned {
        let mut diagnosed: Vec<(String, String)> = Vec::new();
        for r in resources {
            if r.resource_type
                .eq_ignore_ascii_case(DIAGNOSTIC_SETTINGS_TYPE)
                && let Some(target) = r.id.parent()
            {
                let t = target.resource_type().to_ascii_lowercase();
                if !diagnosed.iter().any(|(d, _)| *d == t) {
                    diagnosed.push((t, r.api_version.clone()));
                }
            }
        }
        let listable = resources
            .iter()
            .filter(|r| {
                holds_unindexed(&r.resource_type)
                    || diagnosed
                        .iter()
                        .any(|(t, _)| t.eq_ignore_ascii_case(&r.resource_type))
            })
            .map(|r| r.id.key().to_string())
            .collect();
        Learned::Part {
            listable,
            diagnosed,
        }
    }
}

/// Whether `resource_type` is one of the (lower-cased, few) types whose
/// diagnostic settings the manifests declare; asked of every row, so without
/// lower-casing a copy.
fn diagnosed(types: &HashSet<String>, resource_type: &str) -> bool {
    types.iter().any(|t| t.eq_ignore_ascii_case(resource_type))
}

/// The collections (path, api-version) of non-indexed children under `id`.
fn child_lists<'a>(
    id: &'a ResourceId,
    resource_type: &'a str,
) -> impl Iterator<Item = (String, &'static str)> + 'a {
    UNINDEXED
        .iter()
        .filter(|u| u.parent.eq_ignore_ascii_case(resource_type))
        .map(|u| (format!("{}{}", id.as_str(), u.collection), u.api_version))
}

/// The collection of `id`'s diagnostic settings.
fn diagnostics_path(id: &ResourceId) -> String {
    format!("{}{DIAGNOSTIC_SETTINGS}", id.as_str())
}

fn holds_unindexed(resource_type: &str) -> bool {
    UNINDEXED
        .iter()
        .any(|u| u.parent.eq_ignore_ascii_case(resource_type))
}

/// A collection to list, and why.
struct Listing {
    path: String,
    api_version: String,
}

/// What the collector knows of the graph: the parts rendered so far, until
/// the whole of it arrives.
#[derive(Default)]
struct Known {
    /// Declared resources with collections to list ([`Learned::Part`]).
    listable: HashSet<String>,
    diagnosed_types: HashSet<String>,
    diagnostics_api: Option<String>,
    /// Rows no part rendered so far declares, by lower-cased id: a later
    /// part may.
    waiting: std::collections::HashMap<String, ResourceId>,
}

/// The collections queued, each once.
#[derive(Default)]
struct Queue {
    indexed: Indexed,
    lists: std::collections::VecDeque<Listing>,
}

impl Queue {
    fn children(&mut self, id: &ResourceId, resource_type: &str) {
        if !self.indexed.listed.insert(id.key().to_string()) {
            return;
        }
        for (path, api_version) in child_lists(id, resource_type) {
            self.lists.push_back(Listing {
                path,
                api_version: api_version.to_string(),
            });
        }
    }

    fn diagnostics(&mut self, id: &ResourceId, api_version: &str) {
        if self.indexed.diagnosed.insert(id.key().to_string()) {
            self.lists.push_back(Listing {
                path: diagnostics_path(id),
                api_version: api_version.to_string(),
            });
        }
    }
}

/// Rows and listed children collected so far, and the lists still to run.
#[derive(Default)]
struct Collector {
    /// The whole graph's word, once it has rendered (`None` before, and for
    /// good when rendering failed).
    early: Option<std::sync::Arc<Early>>,
    /// While it renders: what its parts have told.
    known: Known,
    queue: Queue,
    /// Listed items that arrived before the whole graph had rendered: settled
    /// when it has.
    unsettled: Vec<ObservedResource>,
    /// The templates failed to render: the command ends with that error, and
    /// nothing more is listed.
    failed: bool,
}

impl Collector {
    /// Add one listed resource; queue what it needs listed.
    fn add(&mut self, r: ObservedResource) {
        self.note(&r.id, &r.resource_type);
        match &self.early {
            Some(e) => {
                // Digested now, while later lists wait on ARM's read quota,
                // not when the state is fingerprinted at the end.
                let r = match &e.settle {
                    Some(s) => s.settle(r),
                    None => r,
                }
                .with_digest();
                self.queue.indexed.found.push(r)
            }
            None => self.unsettled.push(r),
        }
    }

    /// Queue what the row `id` (of `resource_type`) needs listed, by what is
    /// known of the graph so far: the non-indexed children and the diagnostic
    /// settings of a declared resource (those of a resource the plan would
    /// delete or keep are listed by [`complete`], which knows them). A row the
    /// graph may yet declare waits for it. Each collection is queued once,
    /// however often its row is noted.
    fn note(&mut self, id: &ResourceId, resource_type: &str) {
        match (&self.early, self.failed) {
            (Some(early), _) => {
                if !early.desired.contains(id.key()) {
                    return;
                }
                if holds_unindexed(resource_type) {
                    self.queue.children(id, resource_type);
                }
                if diagnosed(&early.diagnosed_types, resource_type) {
                    self.queue.diagnostics(id, &early.diagnostics_api);
                }
            }
            (None, true) => {}
            (None, false) => match self.known.listable.contains(id.key()) {
                true => self.declared(id, resource_type),
                false => {
                    self.known.waiting.insert(id.key().to_string(), id.clone());
                }
            },
        }
    }

    /// Queue the collections of `id`, a declared resource, as far as the
    /// parts rendered so far tell.
    fn declared(&mut self, id: &ResourceId, resource_type: &str) {
        if holds_unindexed(resource_type) {
            self.queue.children(id, resource_type);
        }
        if let Some(api) = &self.known.diagnostics_api
            && diagnosed(&self.known.diagnosed_types, resource_type)
        {
            self.queue.diagnostics(id, api);
        }
    }

    /// Take in what the templates told: list what rows already seen now
    /// qualify for.
    fn learn(&mut self, learned: Option<Learned>) {
        match learned {
            Some(Learned::Part {
                listable,
                diagnosed,
            }) => {
                for (t, api) in diagnosed {
                    self.known.diagnostics_api.get_or_insert(api);
                    self.known.diagnosed_types.insert(t);
                }
                for key in listable {
                    if let Some(id) = self.known.waiting.remove(&key) {
                        self.declared(&id, &id.resource_type());
                    }
                    self.known.listable.insert(key);
                }
            }
            Some(Learned::All(early)) => {
                self.early = Some(std::sync::Arc::new(early));
                // Rows of pages not yet taken in are noted when they are;
                // items listed so far are settled and noted now.
                self.known = Known::default();
                for r in std::mem::take(&mut self.unsettled) {
                    self.add(r);
                }
            }
            None => {
                self.failed = true;
                self.known = Known::default();
                self.queue.indexed.found.append(&mut self.unsettled);
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
    // before the next one is taken. Its digest is worked out here too, on
    // this core, not when the state is fingerprinted at the end.
    let take = |r: ObservedResource| {
        match settle {
            Some(s) => s.settle(r),
            None => r,
        }
        .with_digest()
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
/// the next is on its way. The collections Resource Graph does not index are
/// listed as soon as both their parent's row and the part of the graph that
/// declares it have arrived (32 at a time), while the templates still render
/// and later pages still come in; pages that arrive before the whole graph
/// has rendered are held as the service sent them (their ids read, nothing
/// else) and taken in, each desired row settled against its declaration, once
/// it has. `learned` closing without [`Learned::All`] (a render error) leaves
/// all listing to [`complete`].
pub async fn indexed(
    client: &ArmClient,
    subscription: &str,
    prefix: &str,
    mut learned: tokio::sync::mpsc::UnboundedReceiver<Learned>,
) -> Result<Indexed, ArmError> {
    let subs = [subscription.to_string()];
    let (main_q, roles_q) = (managed_query(prefix), role_assignment_query(prefix));
    // Once the graph has rendered, a few pages wait (the service keeps
    // building the next while earlier ones are taken in); more would only
    // hold raw JSON the collector cannot take yet.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let pages = async move {
        let send = |p: crate::cloud::client::GraphPage| {
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
        let mut c = Collector::default();
        let mut running = futures::stream::FuturesUnordered::new();
        // Pages held until the graph has rendered, as sent (~1.7 MB a page
        // of 1,000 rows), at most `HELD` of them: past that the service waits,
        // so a larger estate holds no more raw JSON (the 200-hospital fleet
        // is 14 pages).
        const HELD: usize = 24;
        let mut held = std::collections::VecDeque::new();
        // Pages being taken in, kept in the order they came; as many at once
        // as this machine has cores (each holds a page's rows in full).
        let mut taking = futures::stream::FuturesOrdered::new();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (mut open, mut rendering, mut ordered) = (true, true, false);
        loop {
            while running.len() < 32
                && let Some(l) = c.queue.lists.pop_front()
            {
                running.push(async move { client.list(&l.path, &l.api_version).await });
            }
            while !rendering
                && taking.len() < cores
                && let Some(page) = held.pop_front()
            {
                let settle = c.early.clone();
                taking.push_back(tokio::task::spawn_blocking(move || {
                    take_in(&page, settle.as_ref().and_then(|e| e.settle.as_ref()))
                }));
            }
            tokio::select! {
                told = learned.recv(), if rendering => {
                    rendering = matches!(told, Some(Learned::Part { .. }));
                    c.learn(told);
                },
                page = rx.recv(), if open && match rendering {
                    true => held.len() < HELD,
                    false => held.is_empty() && taking.len() < cores,
                } => match page {
                    Some(page) => {
                        if rendering {
                            for id in page.ids()? {
                                c.note(&id, &id.resource_type());
                            }
                        }
                        held.push_back(page);
                    }
                    None => open = false,
                },
                Some(taken) = taking.next(), if !taking.is_empty() => {
                    let taken = taken.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                    for r in taken? {
                        c.note(&r.id, &r.resource_type);
                        c.queue.indexed.found.push(r);
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
            // Every row is in: order them now, while the lists wait on ARM's
            // read quota, so that ordering the whole state at the end (a
            // fleet's ~17,000 resources) only merges in what the lists add.
            if !ordered && !open && !rendering && held.is_empty() && taking.is_empty() {
                by_id(&mut c.queue.indexed.found);
                ordered = true;
            }
        }
        let mut indexed = c.queue.indexed;
        // Every page taken in has let go of its share by now.
        indexed.early = c
            .early
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
    /// The desired resources (lower-cased ids): their non-indexed children
    /// and diagnostic settings are listed.
    pub desired: &'a HashSet<String>,
    /// Which other resources to list them of: managed ones in the plan's
    /// scope that it would delete or keep (a removed manifest's protected Key
    /// Vault key and backup containers are named as kept). Nothing of another
    /// tenant's: a tenant's plan reads that tenant.
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
) -> Result<PriorState, ArmError> {
    let Indexed {
        mut found,
        listed,
        diagnosed,
        ..
    } = indexed;
    // Keys, blob services and containers first: a blob service can carry
    // diagnostic settings of its own. Usually the declarations had them all
    // listed while the pages came in, and the state is not indexed for this.
    found = list_missing(
        client,
        found,
        &how,
        |r| holds_unindexed(&r.resource_type) && !listed.contains(r.id.key()),
        |r| child_lists(&r.id, &r.resource_type).collect(),
    )
    .await?;
    let in_scope = |id: &ResourceId| match id.resource_group() {
        Some(rg) => how.groups.contains(&format!(
            "/subscriptions/{}/resourcegroups/{}",
            id.subscription().to_ascii_lowercase(),
            rg.to_ascii_lowercase()
        )),
        None => true,
    };
    // Diagnostic settings likewise: of declared resources, and of those the
    // plan would delete or keep (whose owner only the whole state tells).
    found = list_missing(
        client,
        found,
        &how,
        |r| {
            self::diagnosed(how.diagnosed_types, &r.resource_type)
                && !diagnosed.contains(r.id.key())
        },
        |r| vec![(diagnostics_path(&r.id), how.diagnostics_api)],
    )
    .await?;
    let so_far = state_of(found);
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
    if stale.is_empty() {
        return Ok(so_far);
    }
    stale.sort_by(|a, b| a.id.cmp(&b.id));
    stale.dedup_by(|a, b| a.id == b.id);
    let mut found = so_far.resources;
    let reads = futures::stream::iter(stale)
        .map(|w| async move { (w.id.clone(), client.get(&w.id, &w.api_version).await) })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    merge(&mut found, reads)?;
    Ok(state_of(found))
}

/// `found` with the `collections` of each resource `unlisted` picks that the
/// plan reads: a declared one, or one in scope it would delete or keep (which
/// only the whole state tells, so the state is indexed for it, but only when
/// something is left to list).
async fn list_missing<'a>(
    client: &ArmClient,
    mut found: Vec<ObservedResource>,
    how: &Completion<'a>,
    unlisted: impl Fn(&ObservedResource) -> bool,
    collections: impl Fn(&ObservedResource) -> Vec<(String, &'a str)>,
) -> Result<Vec<ObservedResource>, ArmError> {
    if !found.iter().any(&unlisted) {
        return Ok(found);
    }
    let state = PriorState::new(found, Requests::default());
    let lists: Vec<(String, &str)> = state
        .resources
        .iter()
        .filter(|r| unlisted(r))
        .filter(|r| how.desired.contains(r.id.key()) || (how.orphan_in_scope)(r, &state))
        .flat_map(&collections)
        .collect();
    found = state.resources;
    found.extend(list_all(client, lists).await?);
    Ok(found)
}

fn by_id(found: &mut [ObservedResource]) {
    found.sort_by(|a, b| a.id.cmp(&b.id));
}

/// `found` as a prior state: ordered by id, the first read of an id kept
/// (a stable sort: already ordered rows cost one pass).
fn state_of(mut found: Vec<ObservedResource>) -> PriorState {
    by_id(&mut found);
    found.dedup_by(|a, b| a.id == b.id);
    PriorState::new(found, Requests::default())
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
pub async fn direct(client: &ArmClient, wanted: &[Wanted]) -> Result<PriorState, ArmError> {
    let reads = futures::stream::iter(wanted)
        .map(|w| async move { (w.id.clone(), client.get(&w.id, &w.api_version).await) })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let mut found = Vec::new();
    merge(&mut found, reads)?;
    Ok(state_of(found))
}

/// Keep what lifeboat manages (untagged child types count when an ancestor is
/// managed), sorted, with the requests it took.
pub fn managed(mut all: PriorState, requests: Requests) -> PriorState {
    // Each resource's owner is looked up on its own (tags, then ancestors'):
    // on all cores.
    let keep: Vec<bool> =
        lifeboat_core::par::map_in_order(&all.resources, |_, r| all.ownership(r).is_some());
    if keep.iter().all(|&k| k) {
        all.requests = requests;
        return all;
    }
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

    const RG: &str = "/subscriptions/s/resourceGroups/lb-a-rg/providers";

    fn id(path: &str) -> ResourceId {
        ResourceId::parse(&format!("{RG}/{path}")).unwrap()
    }

    /// The prior state is ordered by id whatever order rows and list items
    /// came in (some already ordered while the lists ran), one per id, the
    /// first read kept, and every id found.
    #[test]
    fn a_state_is_ordered_by_id_with_the_first_read_of_each_kept() {
        let r = |path: &str, n: i64| {
            let id = id(path);
            ObservedResource::new(
                id.clone(),
                id.resource_type(),
                serde_json::json!({ "n": n }),
            )
        };
        let mut rows = vec![
            r("Microsoft.KeyVault/vaults/b", 1),
            r("Microsoft.KeyVault/vaults/c", 2),
            r("Microsoft.KeyVault/vaults/B", 3),
        ];
        by_id(&mut rows);
        rows.extend([
            r("Microsoft.KeyVault/vaults/a", 4),
            r("Microsoft.KeyVault/vaults/c", 5),
        ]);
        let state = state_of(rows);
        let seen: Vec<(String, i64)> = state
            .resources
            .iter()
            .map(|o| (o.id.name().to_string(), o.body["n"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a".to_string(), 4),
                ("b".to_string(), 1),
                ("c".to_string(), 2)
            ]
        );
        for o in &state.resources {
            assert_eq!(state.get(&o.id), Some(o));
        }
    }

    fn note(c: &mut Collector, path: &str) {
        let id = id(path);
        c.note(&id, &id.resource_type());
    }

    /// The paths queued so far (drained), without the group prefix.
    fn queued(c: &mut Collector) -> Vec<String> {
        let mut out: Vec<String> = c
            .queue
            .lists
            .drain(..)
            .map(|l| l.path.trim_start_matches(RG).to_string())
            .collect();
        out.sort();
        out
    }

    fn part(listable: &[&str], diagnosed: &[&str]) -> Option<Learned> {
        Some(Learned::Part {
            listable: listable.iter().map(|p| id(p).key().to_string()).collect(),
            diagnosed: diagnosed
                .iter()
                .map(|t| (t.to_string(), "2021-05-01-preview".to_string()))
                .collect(),
        })
    }

    const KV1: &str = "Microsoft.KeyVault/vaults/kv1";
    const KV2: &str = "Microsoft.KeyVault/vaults/kv2";
    const KV3: &str = "Microsoft.KeyVault/vaults/kv3";
    const NSG: &str = "Microsoft.Network/networkSecurityGroups/nsg";
    const VNET: &str = "Microsoft.Network/virtualNetworks/vnet";
    const OTHER_NSG: &str = "Microsoft.Network/networkSecurityGroups/other";

    #[test]
    fn a_collection_is_listed_once_its_row_and_its_declaration_have_both_arrived() {
        let mut c = Collector::default();
        // Rows before any part of the graph: nothing is listed yet.
        for path in [KV1, NSG, VNET] {
            note(&mut c, path);
        }
        assert!(queued(&mut c).is_empty());
        // A part declares kv1, kv2 and the NSG, and diagnoses NSGs: the rows
        // seen qualify now.
        c.learn(part(
            &[KV1, KV2, NSG],
            &["microsoft.network/networksecuritygroups"],
        ));
        assert_eq!(
            queued(&mut c),
            [
                format!("/{KV1}/keys"),
                format!("/{NSG}/providers/Microsoft.Insights/diagnosticSettings"),
            ]
        );
        // A row whose declaration came first is listed as it arrives.
        note(&mut c, KV2);
        assert_eq!(queued(&mut c), [format!("/{KV2}/keys")]);
        // The same rows again (as their pages are taken in), and the same
        // type again: nothing twice.
        c.learn(part(&[KV1], &["microsoft.network/networksecuritygroups"]));
        note(&mut c, KV1);
        note(&mut c, NSG);
        assert!(queued(&mut c).is_empty());
        // An undeclared vault and an undiagnosed type wait, for good here.
        note(&mut c, KV3);
        let blob = id("Microsoft.Storage/storageAccounts/st/blobServices/default");
        c.add(ObservedResource::new(
            blob.clone(),
            blob.resource_type(),
            serde_json::json!({}),
        ));
        assert!(queued(&mut c).is_empty());
        assert!(
            c.queue.indexed.found.is_empty(),
            "not settled before the graph"
        );
        // The whole graph: desired {kv1, kv2, the NSG, the blob service},
        // blob services diagnosed too.
        const BLOB: &str = "Microsoft.Storage/storageAccounts/st/blobServices/default";
        let early = Early {
            desired: [KV1, KV2, NSG, BLOB]
                .iter()
                .map(|p| id(p).key().to_string())
                .collect(),
            diagnosed_types: [
                "microsoft.network/networksecuritygroups",
                "microsoft.storage/storageaccounts/blobservices",
            ]
            .map(String::from)
            .into(),
            diagnostics_api: "2021-05-01-preview".into(),
            settle: None,
        };
        c.learn(Some(Learned::All(early)));
        // The listed item held back is added and noted by the whole graph,
        // digested as it is (the fingerprint at the end only reads digests).
        assert_eq!(c.queue.indexed.found.len(), 1);
        let added = &c.queue.indexed.found[0];
        assert_eq!(
            added.read_digest,
            Some(lifeboat_core::observed::body_digest(&added.body))
        );
        assert_eq!(
            queued(&mut c),
            [
                "/Microsoft.Storage/storageAccounts/st/blobServices/default/providers/Microsoft.Insights/diagnosticSettings"
            ]
        );
        // Nothing twice; an undeclared vault or NSG is not listed here (what
        // the plan would delete or keep is listed once the state is whole).
        for path in [KV1, KV2, KV3, NSG, VNET, OTHER_NSG] {
            note(&mut c, path);
        }
        assert!(queued(&mut c).is_empty());
        assert_eq!(c.queue.indexed.listed.len(), 2);
        assert_eq!(c.queue.indexed.diagnosed.len(), 2);
    }

    #[test]
    fn nothing_more_is_listed_once_rendering_failed() {
        let mut c = Collector::default();
        c.learn(part(&[NSG], &["microsoft.network/networksecuritygroups"]));
        note(&mut c, NSG);
        assert_eq!(queued(&mut c).len(), 1);
        let item = id("Microsoft.KeyVault/vaults/kv1/keys/k");
        c.add(ObservedResource::new(
            item.clone(),
            item.resource_type(),
            serde_json::json!({}),
        ));
        c.learn(None);
        assert_eq!(c.queue.indexed.found.len(), 1, "what was read is kept");
        note(&mut c, KV1);
        note(&mut c, VNET);
        let nsg2 = "Microsoft.Network/networkSecurityGroups/nsg2";
        note(&mut c, nsg2);
        assert!(queued(&mut c).is_empty());
    }

    #[test]
    fn query_names_the_tag_and_groups() {
        let q = managed_query("lb");
        assert!(q.contains("tags['lifeboat-managed'] =~ 'true'"));
        assert!(q.contains("resourceGroup startswith 'lb-'"));
    }
}
