//! The emulator's Azure Resource Manager behaviour, as a synchronous function from a
//! request to a reply: resource PUT/GET/DELETE with provisioning states, the
//! per-family long-running-operation shapes seen in `shared/azure/recordings`,
//! operation status endpoints, VM power actions and runCommand, subscriptions,
//! throttling and fault injection. HTTP framing lives in `server`; the Resource
//! Graph query language in `query`.
//!
//! This module owns the request types, the routing, throttling and fault
//! injection ([`Emulator::handle`]) and reads; by concern:
//! [`resources`] (PUT/DELETE), [`operations`] (LRO shapes and status endpoints),
//! [`compute`] (VM actions, runCommand, Image Builder runs), [`queries`]
//! (Resource Graph, Log Analytics) and [`family`] (per-family shapes and times).
//!
//! Time: every operation stores when it started and when it completes (wall clock,
//! durations multiplied by the time scale); a resource's state is computed from that
//! on each read, so the emulator has no background work and survives restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use family::*;

mod capacity;
mod collections;
mod compute;
mod family;
mod operations;
mod queries;
mod resources;
mod rules;
mod shape;

pub use capacity::{VcpuQuota, allocation_fails};
pub use shape::put_as_applied;

use crate::faults::{Fault, Faults};
use crate::query::{self, Query};
use crate::store::{Indexing, OpKind, Operation, Store, StoredResource};
use lifeboat_core::id::ResourceId;
use lifeboat_core::model::naming::stable_guid;
use lifeboat_core::quota::{ARM_DELETES, ARM_READS, ARM_WRITES, Class, TokenBucket};

#[derive(Debug, Clone)]
pub struct Config {
    /// Multiplies every duration and refill rate (0.01 = a hundred times faster).
    pub time_scale: f64,
    pub faults: Faults,
    /// The bearer token every request must carry (`Bearer TOKEN`, or
    /// `Bearer TOKEN:IDENTITY` to be throttled as its own identity). Like
    /// Azure, the emulator answers nobody else.
    pub token: String,
    /// Listen on a non-loopback address (`emulator serve --allow-remote`).
    pub allow_remote: bool,
    /// How long, in Azure seconds, Resource Graph takes to index a write
    /// (`--graph-lag`).
    pub graph_lag: f64,
    /// Per-region vCPU limits (`--vcpu-quota`).
    pub vcpu_quota: VcpuQuota,
}

/// Resource Graph's indexing lag by default, in Azure seconds: Microsoft
/// documents "typically under a minute"; recorded sessions show seconds.
pub const DEFAULT_GRAPH_LAG_SECS: f64 = 10.0;

impl Config {
    /// The caller's throttling identity when its `Authorization` header carries
    /// this emulator's token; the refusal (401, as ARM words it) otherwise.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<String, Reply> {
        let Some(header) = authorization else {
            return Err(Reply::error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            ));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or("");
        let (presented, identity) = token.split_once(':').unwrap_or((token, "default"));
        if !self.token.is_empty() && constant_time_eq(presented.as_bytes(), self.token.as_bytes()) {
            Ok(identity.to_string())
        } else {
            Err(Reply::error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            ))
        }
    }
}

/// Compare without an early exit (the token is a secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A request, already read off the wire.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The caller's identity (from its token), for throttling.
    pub identity: String,
    pub body: Vec<u8>,
    /// `scheme://host:port` the caller used, for URLs in headers.
    pub base: String,
}

#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Drop the connection instead of answering (fault injection).
    pub reset: bool,
}

impl Reply {
    pub(crate) fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: serde_json::to_vec(v).expect("JSON"),
            reset: false,
        }
    }
    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            reset: false,
        }
    }
    pub(crate) fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &json!({"error": {"code": code, "message": message}}),
        )
    }
    pub(crate) fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

struct Buckets {
    reads: TokenBucket,
    writes: TokenBucket,
    deletes: TokenBucket,
}

/// What [`Emulator::view_with`] finds nothing for at `now`: deleted, not yet
/// visible (replication), or not a resource body. A Resource Graph query decides
/// its rows with this before it builds any.
fn gone(r: &StoredResource, now: u64) -> bool {
    matches!(&r.operation, Some(op) if now >= op.done_ms && op.kind == OpKind::Delete && op.failure.is_none())
        || r.visible_from_ms.is_some_and(|t| now < t)
        || !r.body.is_object()
}

/// Whether a GET finds `r` now: what [`Emulator::view_with`] answers `Some`
/// for, without building the view.
fn shown(r: &StoredResource, now: u64) -> bool {
    !gone(r, now) && r.body.get("properties").is_none_or(Value::is_object)
}

pub struct Emulator {
    store: Store,
    /// Microsoft Graph's directory (the roster's groups and guests).
    graph: crate::graph::Directory,
    cfg: Config,
    buckets: Mutex<HashMap<String, Arc<Buckets>>>,
    /// Per-resource locks: read-modify-write of one resource is atomic.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Resource Graph result sets being paged, by `$skipToken`.
    pages: Mutex<HashMap<String, (Instant, queries::Cursor)>>,
    /// Resource Graph's index: each settled resource's row as served, by id.
    rows: Mutex<HashMap<String, queries::IndexedRow>>,
    /// The resources each recent Resource Graph query matched, while nothing
    /// it read has changed (see `queries::Matched`).
    matched: Mutex<Vec<queries::Matched>>,
    rng: Mutex<fastrand::Rng>,
    /// The fault seed (`LIFEBOAT_EMULATOR_SEED`, else random).
    seed: u64,
    /// vCPUs held per VM (see `capacity`).
    cores: capacity::Cores,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `.../Microsoft.OperationalInsights/workspaces/<name>/api/query`.
fn is_log_query(path: &str) -> bool {
    let l = path.to_ascii_lowercase();
    l.contains("/microsoft.operationalinsights/workspaces/")
        && l.trim_end_matches('/').ends_with("/api/query")
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Properties ARM accepts on PUT but never returns.
const WRITE_ONLY: &[&str] = &["/properties/osProfile/adminPassword", "/properties/value"];

impl Emulator {
    /// Read the store into memory now rather than on the first query, so the
    /// first Resource Graph or collection read after a start costs what a later
    /// one does.
    pub fn warm(&self) {
        let _ = self.store.scan();
    }

    pub fn new(store: Store, cfg: Config) -> Emulator {
        let seed = std::env::var("LIFEBOAT_EMULATOR_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..));
        Emulator {
            graph: crate::graph::Directory::open(
                store.dir().to_path_buf(),
                cfg.faults.graph429,
                seed,
            ),
            store,
            cfg,
            buckets: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            pages: Mutex::new(HashMap::new()),
            rows: Mutex::new(HashMap::new()),
            matched: Mutex::new(Vec::new()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            seed,
            cores: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Azure seconds -> wall milliseconds.
    fn scaled_ms(&self, secs: f64) -> u64 {
        (secs * 1000.0 * self.cfg.time_scale).round() as u64
    }

    /// Resource Graph's indexing lag in wall milliseconds.
    fn graph_lag_ms(&self) -> u64 {
        self.scaled_ms(self.cfg.graph_lag.max(0.0))
    }

    /// Wall milliseconds -> Azure seconds for a Retry-After header (at least 1).
    fn retry_after(&self, wall_ms: u64) -> String {
        let secs = wall_ms as f64 / 1000.0 / self.cfg.time_scale.max(1e-9);
        (secs.ceil() as u64).clamp(1, 60).to_string()
    }

    fn lock(&self, id: &ResourceId) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .expect("locks")
            .entry(id.key().to_string())
            .or_default()
            .clone()
    }

    fn buckets(&self, identity: &str) -> Arc<Buckets> {
        let s = self.cfg.time_scale;
        self.buckets
            .lock()
            .expect("buckets")
            .entry(identity.to_string())
            .or_insert_with(|| {
                Arc::new(Buckets {
                    reads: TokenBucket::new(ARM_READS.scaled(s)),
                    writes: TokenBucket::new(ARM_WRITES.scaled(s)),
                    deletes: TokenBucket::new(ARM_DELETES.scaled(s)),
                })
            })
            .clone()
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().expect("rng").f64() < p
    }

    /// Answer one request.
    pub fn handle(&self, req: &Request) -> Reply {
        // Microsoft Graph has its own throttling (its faults), not ARM's buckets.
        if req.path.starts_with("/v1.0/") {
            return self.graph.handle(req);
        }
        let class = match req.method.as_str() {
            "GET" | "HEAD" => Class::Read,
            "DELETE" => Class::Delete,
            "POST"
                if req
                    .path
                    .to_ascii_lowercase()
                    .contains("/microsoft.resourcegraph/")
                    || is_log_query(&req.path) =>
            {
                Class::Read
            }
            _ => Class::Write,
        };
        let buckets = self.buckets(&req.identity);
        let (bucket, header) = match class {
            Class::Read => (
                &buckets.reads,
                "x-ms-ratelimit-remaining-subscription-reads",
            ),
            Class::Write => (
                &buckets.writes,
                "x-ms-ratelimit-remaining-subscription-writes",
            ),
            Class::Delete => (
                &buckets.deletes,
                "x-ms-ratelimit-remaining-subscription-deletes",
            ),
        };
        let remaining = match bucket.try_take(Instant::now()) {
            Ok(r) => r,
            Err(wait) => {
                return Reply::error(
                    429,
                    "TooManyRequests",
                    "The request is being throttled as the limit has been reached for operation type. For more information, see https://aka.ms/srpthrottlinglimits",
                )
                .header("Retry-After", self.retry_after(wait.as_millis() as u64));
            }
        };
        let mut fault = None;
        if class != Class::Read {
            let f = &self.cfg.faults;
            for (kind, p) in [
                (Fault::Throttle, f.throttle),
                (Fault::ServerError, f.server_error),
                (Fault::Reset, f.reset),
                (Fault::OperationFails, f.lro_fail),
            ] {
                if self.roll(p) {
                    fault = Some(kind);
                    break;
                }
            }
        }
        match fault {
            Some(Fault::Throttle) => {
                return Reply::error(
                    429,
                    "TooManyRequests",
                    "Injected throttling (--faults 429).",
                )
                .header("Retry-After", "1");
            }
            Some(Fault::ServerError) => {
                return Reply::error(
                    500,
                    "InternalServerError",
                    "Injected server error (--faults 500).",
                );
            }
            _ => {}
        }
        let mut reply = self.route(req, fault == Some(Fault::OperationFails));
        reply
            .headers
            .push((header.to_string(), remaining.to_string()));
        reply.headers.push((
            "x-ms-request-id".into(),
            format!("{:032x}", fastrand::u128(..)),
        ));
        // A reset happens after the request took effect, as when a response is lost.
        reply.reset = fault == Some(Fault::Reset);
        reply
    }

    fn route(&self, req: &Request, fail_op: bool) -> Reply {
        let path = req.path.trim_end_matches('/');
        let lower = path.to_ascii_lowercase();
        if req.method == "POST" && lower == "/providers/microsoft.resourcegraph/resources" {
            return self.resource_graph(req);
        }
        if req.method == "POST" && is_log_query(path) {
            return self.log_query(req);
        }
        if req.method == "GET"
            && lower.starts_with("/subscriptions/")
            && lower.ends_with("/providers/microsoft.alertsmanagement/alerts")
            && lower.split('/').count() == 6
        {
            return self.fired_alerts(req, path.split('/').nth(2).unwrap_or(""));
        }
        for marker in [
            "/operations/",
            "/operationstatuses/",
            "/diskoperations/",
            "/asyncoperations/",
            "/operationresults/",
        ] {
            if let Some(pos) = lower.rfind(marker)
                && req.method == "GET"
            {
                let token = &path[pos + marker.len()..];
                let location_style = matches!(marker, "/asyncoperations/" | "/operationresults/")
                    || query_param(&req.query, "monitor") == Some("true");
                return self.operation_status(token, location_style, req);
            }
        }
        let segs: Vec<&str> = path.split('/').collect();
        if req.method == "GET"
            && segs.len() == 8
            && lower.starts_with("/subscriptions/")
            && segs[3].eq_ignore_ascii_case("providers")
            && segs[4].eq_ignore_ascii_case("Microsoft.Compute")
            && segs[5].eq_ignore_ascii_case("locations")
            && segs[7].eq_ignore_ascii_case("usages")
        {
            return self.usages(segs[2], segs[6]);
        }
        if req.method == "GET"
            && segs.len() == 6
            && lower.starts_with("/subscriptions/")
            && lower.ends_with("/providers/microsoft.compute/skus")
        {
            return self.skus(&req.query);
        }
        if segs.len() == 3 && segs[1].eq_ignore_ascii_case("subscriptions") && req.method == "GET" {
            let s = segs[2];
            return Reply::json(
                200,
                &json!({"id": format!("/subscriptions/{s}"), "subscriptionId": s,
                    "tenantId": stable_guid(&format!("tenant:{s}")),
                    "displayName": "lifeboat local cloud", "state": "Enabled"}),
            );
        }
        let Some(api_version) = query_param(&req.query, "api-version") else {
            return Reply::error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        };
        // Image Builder actions: `<template id>/run`.
        if let Some((template, action)) = path.rsplit_once('/')
            && template
                .to_ascii_lowercase()
                .contains("/microsoft.virtualmachineimages/imagetemplates/")
            && template.split('/').count() % 2 == 1
            && req.method == "POST"
            && let Ok(id) = ResourceId::parse(template)
        {
            return self.template_action(req, &id, &action.to_ascii_lowercase(), fail_op);
        }
        // VM actions and views: `<vm id>/<action>`.
        if let Some((vm, action)) = path.rsplit_once('/')
            && vm
                .to_ascii_lowercase()
                .contains("/microsoft.compute/virtualmachines/")
            && vm.split('/').count() % 2 == 1
            && let Ok(id) = ResourceId::parse(vm)
        {
            return match (req.method.as_str(), action.to_ascii_lowercase().as_str()) {
                ("GET", "instanceview") => self.instance_view(&id),
                ("POST", a) => self.vm_action(req, &id, a, fail_op),
                _ => Reply::error(405, "MethodNotAllowed", "unsupported VM sub-resource"),
            };
        }
        let id = match ResourceId::parse(path) {
            Ok(id) => id,
            // `…/resourcegroups`, `…/providers/NS/TYPE`, `<resource>/CHILDTYPE`.
            Err(_) if req.method == "GET" => return self.collection(req, path, api_version),
            Err(e) => return Reply::error(400, "InvalidResourceId", &e.to_string()),
        };
        if let Err(refused) = rules::check_api_version(&id, api_version) {
            return refused;
        }
        if !id.is_resource_group()
            && let Some(rg) = id.resource_group()
            && matches!(req.method.as_str(), "GET" | "HEAD" | "DELETE" | "PATCH")
            && let Some(missing) = self.group_missing(&id, rg)
        {
            return missing;
        }
        match req.method.as_str() {
            "GET"
                if query_param(&req.query, "$expand")
                    .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"))
                    && id
                        .resource_type()
                        .eq_ignore_ascii_case("Microsoft.Compute/virtualMachines") =>
            {
                self.get_expanded(&id)
            }
            "GET" => self.get(&id),
            "HEAD" => match self.get(&id).status {
                200 => Reply::empty(204),
                _ => Reply::empty(404),
            },
            "PUT" => self.put(req, &id, api_version, fail_op),
            "PATCH" => self.patch(req, &id),
            "DELETE" => self.delete(req, &id, fail_op),
            m => Reply::error(
                405,
                "MethodNotAllowed",
                &format!("{m} is not supported here"),
            ),
        }
    }

    /// `ResourceGroupNotFound` when the group of `id` does not exist, as ARM
    /// answers before asking the resource provider.
    fn group_missing(&self, id: &ResourceId, rg: &str) -> Option<Reply> {
        let group = ResourceId::parse(&format!(
            "/subscriptions/{}/resourceGroups/{rg}",
            id.subscription()
        ))
        .ok()?;
        let now = now_ms();
        match self.load(&group, now) {
            Ok(Some(g)) if self.view(&g, now).is_some() => None,
            Ok(_) => Some(Self::not_found(&group)),
            Err(r) => Some(r),
        }
    }

    /// The resource as a GET returns it now, or `None` when it is gone.
    fn view(&self, r: &StoredResource, now: u64) -> Option<Value> {
        let kids = if shape::inline_kinds(&r.resource_type).next().is_some() {
            self.store.children(&r.id).unwrap_or_default()
        } else {
            Vec::new()
        };
        self.view_with(r, now, &kids)
    }

    /// [`Self::view`] with the resource's children given (Resource Graph reads
    /// them from one scan of the store).
    fn view_with(&self, r: &StoredResource, now: u64, kids: &[StoredResource]) -> Option<Value> {
        if gone(r, now) {
            return None;
        }
        let mut body = r.body.clone();
        let state = match &r.operation {
            Some(op) if now < op.done_ms => match &op.kind {
                // Microsoft.Network says `Updating` while it creates (see the
                // recorded virtual network create); the others say `Creating`.
                OpKind::Put { creating: true } if family(&r.resource_type) == Family::Network => {
                    "Updating"
                }
                OpKind::Put { creating: true } => "Creating",
                OpKind::Put { creating: false } => "Updating",
                OpKind::Delete => "Deleting",
                OpKind::Action { .. } => "Updating",
            },
            Some(op) => match (&op.kind, &op.failure) {
                (OpKind::Delete, None) => return None,
                (OpKind::Put { .. }, Some(_)) => "Failed",
                _ => "Succeeded",
            },
            None => "Succeeded",
        };
        if r.visible_from_ms.is_some_and(|t| now < t) {
            return None;
        }
        let obj = body.as_object_mut()?;
        obj.insert("id".into(), json!(shape::canonical_id(r.id.as_str())));
        obj.insert("name".into(), json!(r.id.name()));
        obj.insert("type".into(), json!(r.resource_type));
        let props = obj
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()?;
        props.insert("provisioningState".into(), json!(state));
        if let Some(done) = r.replicated_ms {
            props.insert(
                "replicationStatus".into(),
                replication_status(&r.body, now, r.visible_from_ms.unwrap_or(0), done),
            );
        }
        if let Some(op) = &r.operation
            && let OpKind::Action { name, .. } = &op.kind
            && name == "run"
        {
            let (run_state, message) = match (&op.failure, now < op.done_ms) {
                (_, true) => ("Running", String::new()),
                (Some((_, m)), false) => ("Failed", m.clone()),
                (None, false) => ("Succeeded", String::new()),
            };
            let end = (now >= op.done_ms).then(|| rfc3339(op.done_ms));
            props.insert(
                "lastRunStatus".into(),
                json!({"runState": run_state, "message": message,
                    "startTime": rfc3339(op.started_ms), "endTime": end}),
            );
        }
        if let Some(power) = self.power(r, now) {
            props.insert(
                "extended".into(),
                json!({"instanceView": {"powerState": {"code": format!("PowerState/{power}")}}}),
            );
        }
        self.read_fields(r, &mut body, kids, now);
        Some(body)
    }

    fn power(&self, r: &StoredResource, now: u64) -> Option<String> {
        match &r.operation {
            Some(op) if now >= op.done_ms && op.failure.is_none() => match &op.kind {
                OpKind::Action { power: Some(p), .. } => Some(p.clone()),
                _ => r.power.clone(),
            },
            Some(op) if now < op.done_ms => match &op.kind {
                OpKind::Action { power: Some(p), .. } => Some(
                    match p.as_str() {
                        "running" => "starting",
                        "deallocated" => "deallocating",
                        _ => "updating",
                    }
                    .to_string(),
                ),
                _ => r.power.clone(),
            },
            _ => r.power.clone(),
        }
    }

    /// Load a resource with its settled state folded in (a finished delete removes
    /// the file; a finished action's power state is kept).
    fn load(&self, id: &ResourceId, now: u64) -> Result<Option<StoredResource>, Reply> {
        let r = self.store.get(id).map_err(|e| {
            Reply::error(500, "InternalServerError", &format!("emulator store: {e}"))
        })?;
        let Some(mut r) = r else { return Ok(None) };
        if let Some(op) = &r.operation
            && now >= op.done_ms
        {
            if op.kind == OpKind::Delete && op.failure.is_none() {
                // Resource Graph still shows it until the deletion is indexed.
                if r.indexing.as_ref().is_none_or(|i| now >= i.at_ms) {
                    let _ = self.store.delete(id);
                }
                return Ok(None);
            }
            r.power = self.power(&r, now);
        }
        Ok(Some(r))
    }

    fn save(&self, r: &StoredResource) -> Result<(), Reply> {
        self.store
            .put(r)
            .map_err(|e| Reply::error(500, "InternalServerError", &format!("emulator store: {e}")))
    }

    /// The request's JSON object body, or ARM's refusal of it.
    fn object_body(req: &Request) -> Result<Value, Reply> {
        match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(Reply::error(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized.",
            )),
        }
    }

    fn not_found(id: &ResourceId) -> Reply {
        let (code, what) = if id.is_resource_group() {
            ("ResourceGroupNotFound", "Resource group")
        } else {
            ("ResourceNotFound", "The Resource")
        };
        Reply::error(
            404,
            code,
            &format!("{what} '{}' could not be found.", id.as_str()),
        )
    }

    /// A VM with `properties.instanceView` (`$expand=instanceView`).
    fn get_expanded(&self, id: &ResourceId) -> Reply {
        let now = now_ms();
        match self.load(id, now) {
            Err(r) => r,
            Ok(Some(r)) => match self.view(&r, now) {
                Some(mut v) => {
                    let iv = self.instance_view_of(&r, &v, now);
                    v["properties"]["instanceView"] = iv;
                    Reply::json(200, &v)
                }
                None => Self::not_found(id),
            },
            Ok(None) => Self::not_found(id),
        }
    }

    fn get(&self, id: &ResourceId) -> Reply {
        let now = now_ms();
        match self.load(id, now) {
            Err(r) => r,
            Ok(Some(r)) => match self.view(&r, now) {
                Some(v) => Reply::json(200, &v),
                None => Self::not_found(id),
            },
            Ok(None) => Self::not_found(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";

    /// An emulator over a fresh store that is removed when the test ends.
    struct Fixture {
        emu: Emulator,
        dir: std::path::PathBuf,
    }

    impl std::ops::Deref for Fixture {
        type Target = Emulator;
        fn deref(&self) -> &Emulator {
            &self.emu
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn emulator(time_scale: f64, faults: Faults) -> Fixture {
        lagging(time_scale, faults, 0.0)
    }

    /// An emulator whose Resource Graph trails writes by `graph_lag` Azure-s.
    fn lagging(time_scale: f64, faults: Faults, graph_lag: f64) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "lifeboat-arm-test-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Fixture {
            emu: Emulator::new(
                Store::at(dir.clone()),
                Config {
                    time_scale,
                    faults,
                    token: "t".into(),
                    allow_remote: false,
                    graph_lag,
                    vcpu_quota: Default::default(),
                },
            ),
            dir,
        }
    }

    fn request(method: &str, path: &str, body: Value) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            identity: "Bearer test".into(),
            body: if body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&body).unwrap()
            },
            base: "http://127.0.0.1:1".into(),
        }
    }

    fn body(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    }

    fn header<'r>(r: &'r Reply, name: &str) -> Option<&'r str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn rg(emu: &Emulator, name: &str) {
        let r = emu.handle(&request(
            "PUT",
            &format!("{SUB}/resourceGroups/{name}?api-version=2021-04-01"),
            json!({"location": "westeurope"}),
        ));
        assert!(matches!(r.status, 200 | 201), "{r:?}");
    }

    #[test]
    fn only_the_emulators_token_is_answered() {
        let emu = emulator(0.001, Faults::default());
        let cfg = emu.config();
        assert_eq!(cfg.authenticate(Some("Bearer t")).unwrap(), "default");
        assert_eq!(cfg.authenticate(Some("Bearer t:ops")).unwrap(), "ops");
        for (header, code) in [
            (None, "AuthenticationFailed"),
            (Some("Bearer"), "InvalidAuthenticationToken"),
            (Some("Bearer x"), "InvalidAuthenticationToken"),
            (Some("Bearer tt"), "InvalidAuthenticationToken"),
            (Some("Basic t"), "InvalidAuthenticationToken"),
        ] {
            let r = cfg.authenticate(header).unwrap_err();
            assert_eq!(r.status, 401);
            assert_eq!(body(&r)["error"]["code"], code, "{header:?}");
        }
    }

    #[test]
    fn a_resource_group_is_created_read_and_its_absence_named() {
        let emu = emulator(0.001, Faults::default());
        rg(&emu, "lb-rg");
        let r = emu.handle(&request(
            "GET",
            &format!("{SUB}/resourceGroups/lb-rg?api-version=2021-04-01"),
            Value::Null,
        ));
        assert_eq!(r.status, 200);
        assert_eq!(body(&r)["properties"]["provisioningState"], "Succeeded");
        assert!(header(&r, "x-ms-ratelimit-remaining-subscription-reads").is_some());
        let missing = emu.handle(&request(
            "GET",
            &format!("{SUB}/resourceGroups/nope?api-version=2021-04-01"),
            Value::Null,
        ));
        assert_eq!(missing.status, 404);
        assert_eq!(body(&missing)["error"]["code"], "ResourceGroupNotFound");
    }

    #[test]
    fn requests_without_api_version_or_with_a_bad_id_are_refused() {
        let emu = emulator(0.001, Faults::default());
        let r = emu.handle(&request(
            "GET",
            &format!("{SUB}/resourceGroups/x"),
            Value::Null,
        ));
        assert_eq!(r.status, 400);
        assert_eq!(body(&r)["error"]["code"], "MissingApiVersionParameter");
        let r = emu.handle(&request(
            "PUT",
            &format!("{SUB}/resourceGroups/x?api-version=2021-04-01"),
            json!("not an object"),
        ));
        assert_eq!(r.status, 400);
        assert_eq!(body(&r)["error"]["code"], "InvalidRequestContent");
    }

    #[test]
    fn a_child_without_its_parent_is_parent_resource_not_found() {
        let emu = emulator(0.001, Faults::default());
        rg(&emu, "lb-net");
        let r = emu.handle(&request(
            "PUT",
            &format!(
                "{SUB}/resourceGroups/lb-net/providers/Microsoft.Network/virtualNetworks/v/subnets/s?api-version=2024-05-01"
            ),
            json!({"properties": {"addressPrefix": "10.0.0.0/24"}}),
        ));
        assert_eq!(r.status, 404, "{r:?}");
        assert_eq!(body(&r)["error"]["code"], "ParentResourceNotFound");
    }

    #[test]
    fn a_network_put_is_long_running_and_its_operation_completes() {
        let emu = emulator(0.001, Faults::default());
        rg(&emu, "lb-net");
        let vnet =
            format!("{SUB}/resourceGroups/lb-net/providers/Microsoft.Network/virtualNetworks/v");
        let r = emu.handle(&request(
            "PUT",
            &format!("{vnet}?api-version=2024-05-01"),
            json!({"location": "westeurope",
                   "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}),
        ));
        assert_eq!(r.status, 201, "{r:?}");
        let op = header(&r, "Azure-AsyncOperation")
            .expect("async header")
            .to_string();
        assert!(header(&r, "Retry-After").is_some());
        // In flight until the operation completes: `Updating`, as the recorded
        // VNet create says.
        assert_eq!(body(&r)["properties"]["provisioningState"], "Updating");
        let (path, query) = op
            .strip_prefix("http://127.0.0.1:1")
            .unwrap()
            .split_once('?')
            .unwrap();
        let poll = || emu.handle(&request("GET", &format!("{path}?{query}"), Value::Null));
        std::thread::sleep(Duration::from_millis(100));
        let done = poll();
        assert_eq!(done.status, 200);
        assert_eq!(body(&done)["status"], "Succeeded", "{:?}", body(&done));
        let got = emu.handle(&request(
            "GET",
            &format!("{vnet}?api-version=2024-05-01"),
            Value::Null,
        ));
        assert_eq!(body(&got)["properties"]["provisioningState"], "Succeeded");
    }

    /// A query's matches are kept between queries only while they cannot
    /// change: a resource's indexing lag ending, a write (a new snapshot) and
    /// a completed delete each show in the very next query.
    #[test]
    fn a_kept_query_answer_follows_the_clock_and_every_write() {
        // 100 Azure-s of lag at 0.001: 100 ms.
        let emu = lagging(0.001, Faults::default(), 100.0);
        let count = || {
            let r = emu.handle(&request(
                "POST",
                "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01",
                json!({
                    "subscriptions": [SUB.trim_start_matches("/subscriptions/")],
                    "query": "resourcecontainers | where resourceGroup startswith 'lb-' | project id",
                    "options": {"resultFormat": "objectArray"}
                }),
            ));
            assert_eq!(r.status, 200, "{r:?}");
            body(&r)["data"].as_array().unwrap().len()
        };
        rg(&emu, "lb-a");
        assert_eq!(count(), 0, "not indexed yet");
        assert_eq!(count(), 0);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(count(), 1, "the lag has ended");
        assert_eq!(count(), 1);
        rg(&emu, "lb-b");
        rg(&emu, "other");
        assert_eq!(count(), 1, "b is written but not indexed yet");
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(count(), 2);
        let del = emu.handle(&request(
            "DELETE",
            &format!("{SUB}/resourceGroups/lb-a?api-version=2021-04-01"),
            Value::Null,
        ));
        assert!(matches!(del.status, 200 | 202), "{del:?}");
        let mut left = count();
        for _ in 0..50 {
            if left == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            left = count();
        }
        assert_eq!(left, 1, "the deleted group leaves the index");
    }

    /// A child collection is answered from the shared snapshot (its group and
    /// parent checked there, not loaded and viewed): the same answers as a GET of
    /// the group and the parent would give.
    #[test]
    fn a_child_collection_needs_its_group_and_parent_as_a_get_does() {
        let emu = emulator(0.001, Faults::default());
        let list = |group: &str| {
            emu.handle(&request(
                "GET",
                &format!(
                    "{SUB}/resourceGroups/{group}/providers/Microsoft.Network/virtualNetworks/v/subnets?api-version=2024-05-01"
                ),
                Value::Null,
            ))
        };
        let r = list("nope");
        assert_eq!(r.status, 404);
        assert_eq!(body(&r)["error"]["code"], "ResourceGroupNotFound");
        assert!(
            body(&r)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("resourceGroups/nope")
        );
        rg(&emu, "lb-net");
        let r = list("lb-net");
        assert_eq!(r.status, 404);
        assert_eq!(body(&r)["error"]["code"], "ResourceNotFound");
        let vnet =
            format!("{SUB}/resourceGroups/lb-net/providers/Microsoft.Network/virtualNetworks/v");
        let put = |path: &str, body: Value| {
            let r = emu.handle(&request(
                "PUT",
                &format!("{path}?api-version=2024-05-01"),
                body,
            ));
            assert!(matches!(r.status, 200 | 201), "{r:?}");
            std::thread::sleep(Duration::from_millis(60));
        };
        put(
            &vnet,
            json!({"location": "westeurope",
                   "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}),
        );
        put(
            &format!("{vnet}/subnets/a"),
            json!({"properties": {"addressPrefix": "10.0.1.0/24"}}),
        );
        let r = list("lb-net");
        assert_eq!(r.status, 200, "{r:?}");
        let items = body(&r)["value"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["name"], "a");
        assert_eq!(items[0]["properties"]["provisioningState"], "Succeeded");
        let del = emu.handle(&request(
            "DELETE",
            &format!("{vnet}?api-version=2024-05-01"),
            Value::Null,
        ));
        assert!(matches!(del.status, 200 | 202 | 204), "{del:?}");
        std::thread::sleep(Duration::from_millis(100));
        let r = list("lb-net");
        assert_eq!(r.status, 404, "a deleted parent has no children to list");
        assert_eq!(body(&r)["error"]["code"], "ResourceNotFound");
    }

    #[test]
    fn reads_are_throttled_past_the_burst_with_retry_after() {
        let emu = emulator(1.0, Faults::default());
        let path = format!("{SUB}/resourceGroups/none?api-version=2021-04-01");
        let first_429 = (0..300)
            .map(|_| emu.handle(&request("GET", &path, Value::Null)))
            .position(|r| r.status == 429)
            .expect("throttled within 300 reads");
        // 250 burst, plus what refilled (25/s) while the loop ran.
        assert!((250..260).contains(&first_429), "{first_429}");
        let r = emu.handle(&request("GET", &path, Value::Null));
        assert_eq!(r.status, 429);
        assert_eq!(body(&r)["error"]["code"], "TooManyRequests");
        let wait: f64 = header(&r, "Retry-After").unwrap().parse().unwrap();
        assert!(wait >= 1.0, "{wait}");
    }

    #[test]
    fn injected_faults_hit_writes_and_never_reads() {
        let faults = Faults {
            server_error: 1.0,
            ..Faults::default()
        };
        let emu = emulator(0.001, faults);
        let path = format!("{SUB}/resourceGroups/f?api-version=2021-04-01");
        let put = emu.handle(&request("PUT", &path, json!({"location": "westeurope"})));
        assert_eq!(put.status, 500);
        assert_eq!(body(&put)["error"]["code"], "InternalServerError");
        let get = emu.handle(&request("GET", &path, Value::Null));
        assert_eq!(get.status, 404, "the failed PUT created nothing");
    }
}
