//! The emulator's Azure Resource Manager behaviour, as a synchronous function from a
//! request to a reply: resource PUT/GET/DELETE with provisioning states, the
//! per-family long-running-operation shapes seen in `shared/azure/recordings`,
//! operation status endpoints, VM power actions and runCommand, subscriptions,
//! throttling and fault injection. HTTP framing lives in `server`; the Resource
//! Graph query language in `query`.
//!
//! Time: every operation stores when it started and when it completes (wall clock,
//! durations multiplied by the time scale); a resource's state is computed from that
//! on each read, so the emulator has no background work and survives restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::faults::{Fault, Faults};
use super::query::{self, Query};
use super::store::{OpKind, Operation, Store, StoredResource};
use lifeboat_core::id::ResourceId;
use lifeboat_core::model::naming::stable_guid;
use lifeboat_core::quota::{ARM_DELETES, ARM_READS, ARM_WRITES, Class, TokenBucket};

#[derive(Debug, Clone)]
pub struct Config {
    /// Multiplies every duration and refill rate (0.01 = a hundred times faster).
    pub time_scale: f64,
    pub faults: Faults,
}

/// A request, already read off the wire.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The caller's identity (its Authorization header), for throttling.
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
    fn json(status: u16, v: &Value) -> Reply {
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
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            reset: false,
        }
    }
    fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &json!({"error": {"code": code, "message": message}}),
        )
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

struct Buckets {
    reads: TokenBucket,
    writes: TokenBucket,
    deletes: TokenBucket,
}

pub struct Emulator {
    store: Store,
    cfg: Config,
    buckets: Mutex<HashMap<String, Arc<Buckets>>>,
    /// Per-resource locks: read-modify-write of one resource is atomic.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Resource Graph result sets being paged, by `$skipToken`.
    pages: Mutex<HashMap<String, (Instant, Vec<Value>)>>,
    rng: Mutex<fastrand::Rng>,
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

/// How a resource type answers, after the recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// 200/201 with the final body, no operation (resource groups, role
    /// assignments, Key Vault keys and secrets, blob services and containers).
    Sync,
    /// Microsoft.Network: 201 + Azure-AsyncOperation + Retry-After, "Updating".
    Network,
    /// Microsoft.Compute VMs and the rest of Compute: 201 + Azure-AsyncOperation
    /// (`?p=`), "Creating".
    Compute,
    /// Managed disks: 202 with Azure-AsyncOperation and Location (`DiskOperations`).
    Disk,
    /// Storage accounts: 202, empty body, Location only (`asyncoperations`).
    Storage,
    /// Everything else: 201 + Azure-AsyncOperation (`operationStatuses`).
    Generic,
}

fn family(resource_type: &str) -> Family {
    let t = resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.resources/resourcegroups"
        | "microsoft.authorization/roleassignments"
        | "microsoft.keyvault/vaults/keys"
        | "microsoft.keyvault/vaults/secrets"
        | "microsoft.storage/storageaccounts/blobservices"
        | "microsoft.storage/storageaccounts/blobservices/containers"
        | "microsoft.storage/storageaccounts/blobservices/containers/immutabilitypolicies" => {
            Family::Sync
        }
        "microsoft.compute/disks" => Family::Disk,
        "microsoft.storage/storageaccounts" => Family::Storage,
        _ if t.starts_with("microsoft.network/") => Family::Network,
        _ if t.starts_with("microsoft.compute/") => Family::Compute,
        _ => Family::Generic,
    }
}

/// Realistic durations, in Azure seconds (DESIGN.md: VM create ~120 s, start and
/// deallocate ~60 s; the rest from experience).
fn put_seconds(resource_type: &str) -> f64 {
    let t = resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.compute/virtualmachines" => 120.0,
        "microsoft.compute/galleries/images/versions" => 900.0,
        "microsoft.storage/storageaccounts" => 25.0,
        "microsoft.keyvault/vaults" => 15.0,
        "microsoft.network/loadbalancers"
        | "microsoft.network/virtualnetworks/virtualnetworkpeerings" => 10.0,
        "microsoft.network/virtualnetworks" => 8.0,
        "microsoft.compute/diskencryptionsets" | "microsoft.compute/galleries" => 10.0,
        "microsoft.operationalinsights/workspaces" => 12.0,
        "microsoft.network/networkinterfaces" => 3.0,
        _ if family(&t) == Family::Sync => 0.0,
        _ => 5.0,
    }
}

fn delete_seconds(resource_type: &str) -> f64 {
    let t = resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.resources/resourcegroups" => 30.0,
        "microsoft.compute/virtualmachines" => 60.0,
        _ if family(&t) == Family::Sync => 0.0,
        _ => 10.0,
    }
}

/// Azure Image Builder: one build, and the replication that follows it (DESIGN.md).
const IMAGE_BUILD_SECS: f64 = 2400.0;
const REPLICATION_SECS: f64 = 900.0;

fn rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Per target region: the primary (first) region is complete when the version
/// appears; the others replicate until `done`.
fn replication_status(body: &Value, now: u64, visible: u64, done: u64) -> Value {
    let regions: Vec<&str> = body
        .pointer("/properties/publishingProfile/targetRegions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.get("name")?.as_str()).collect())
        .unwrap_or_default();
    let progress = if now >= done {
        100
    } else {
        (now.saturating_sub(visible) * 100 / (done - visible).max(1)).min(99)
    };
    let summary: Vec<Value> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let p = if i == 0 { 100 } else { progress };
            let state = if p == 100 { "Completed" } else { "Replicating" };
            json!({"region": r, "state": state, "progress": p})
        })
        .collect();
    let all = summary.iter().all(|s| s["state"] == "Completed");
    json!({"aggregatedState": if all { "Completed" } else { "InProgress" }, "summary": summary})
}

/// Properties ARM accepts on PUT but never returns.
const WRITE_ONLY: &[&str] = &["/properties/osProfile/adminPassword", "/properties/value"];

impl Emulator {
    pub fn new(store: Store, cfg: Config) -> Emulator {
        let seed = std::env::var("LIFEBOAT_EMULATOR_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..));
        Emulator {
            store,
            cfg,
            buckets: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            pages: Mutex::new(HashMap::new()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Azure seconds -> wall milliseconds.
    fn scaled_ms(&self, secs: f64) -> u64 {
        (secs * 1000.0 * self.cfg.time_scale).round() as u64
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
            Err(e) => return Reply::error(400, "InvalidResourceId", &e.to_string()),
        };
        match req.method.as_str() {
            "GET" => self.get(&id),
            "PUT" => self.put(req, &id, api_version, fail_op),
            "DELETE" => self.delete(req, &id, fail_op),
            m => Reply::error(
                405,
                "MethodNotAllowed",
                &format!("{m} is not supported here"),
            ),
        }
    }

    /// The resource as a GET returns it now, or `None` when it is gone.
    fn view(&self, r: &StoredResource, now: u64) -> Option<Value> {
        let mut body = r.body.clone();
        let state = match &r.operation {
            Some(op) if now < op.done_ms => match &op.kind {
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
        obj.insert("id".into(), json!(r.id.as_str()));
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
                let _ = self.store.delete(id);
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

    fn busy(op: &Operation, now: u64, retry: String) -> Reply {
        Reply::error(
            409,
            "AnotherOperationInProgress",
            &format!(
                "Operation '{}' on the resource is in progress; retry later.",
                op.id
            ),
        )
        .header("Retry-After", retry)
        .header(
            "x-lifeboat-busy-until",
            (op.done_ms.saturating_sub(now)).to_string(),
        )
    }

    /// Parent must exist (resource group for top-level resources, the parent for
    /// child resources).
    fn parent_missing(&self, id: &ResourceId, now: u64) -> Option<Reply> {
        let parent = id.parent()?;
        if parent.as_str().split('/').count() <= 3 {
            return None; // the subscription
        }
        match self.load(&parent, now) {
            Ok(Some(p)) if self.view(&p, now).is_some() => None,
            Ok(_) => Some(if parent.is_resource_group() {
                Self::not_found(&parent)
            } else {
                Reply::error(
                    404,
                    "ParentResourceNotFound",
                    &format!(
                        "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                        parent.display_name()
                    ),
                )
            }),
            Err(r) => Some(r),
        }
    }

    fn new_operation(
        &self,
        id: &ResourceId,
        kind: OpKind,
        secs: f64,
        fail: bool,
        now: u64,
    ) -> Operation {
        Operation {
            id: format!(
                "{}-{:08x}",
                lifeboat_core::id::hex(id.key().as_bytes()),
                fastrand::u32(..)
            ),
            kind,
            started_ms: now,
            done_ms: now + self.scaled_ms(secs),
            failure: fail.then(|| {
                (
                    "InternalOperationError".to_string(),
                    "Injected operation failure (--faults lro-fail).".to_string(),
                )
            }),
        }
    }

    fn location_of(body: &Value) -> String {
        body.get("location")
            .and_then(Value::as_str)
            .unwrap_or("westeurope")
            .to_string()
            .replace(' ', "")
            .to_ascii_lowercase()
    }

    /// URLs to poll, per family.
    #[allow(clippy::too_many_arguments)] // one call shape per family; a struct would only rename them
    fn op_headers(
        &self,
        req: &Request,
        id: &ResourceId,
        fam: Family,
        loc: &str,
        op: &Operation,
        api: &str,
        reply: Reply,
        delete: bool,
    ) -> Reply {
        let sub = format!("{}/subscriptions/{}", req.base, id.subscription());
        let ra = self.retry_after(op.done_ms.saturating_sub(op.started_ms));
        match fam {
            Family::Sync => reply.header(
                "Location",
                format!("{sub}/operationresults/{}?api-version={api}", op.id),
            ),
            Family::Network => {
                let r = reply.header(
                    "Azure-AsyncOperation",
                    format!("{sub}/providers/Microsoft.Network/locations/{loc}/operations/{}?api-version={api}", op.id),
                );
                let r = if delete {
                    r.header(
                        "Location",
                        format!("{sub}/providers/Microsoft.Network/locations/{loc}/operationResults/{}?api-version={api}", op.id),
                    )
                } else {
                    r
                };
                r.header("Retry-After", ra)
            }
            Family::Compute | Family::Generic => {
                let rtype = id.resource_type();
                let (ns, seg) = if fam == Family::Compute {
                    ("Microsoft.Compute", "operations")
                } else {
                    (rtype.split('/').next().unwrap_or("Microsoft.Resources"), "operationStatuses")
                };
                let url = format!(
                    "{sub}/providers/{ns}/locations/{loc}/{seg}/{}?p={}&api-version={api}",
                    op.id,
                    stable_guid(&op.id)
                );
                let r = reply.header("Azure-AsyncOperation", url.clone());
                let r = if delete { r.header("Location", format!("{url}&monitor=true")) } else { r };
                r.header("Retry-After", ra)
            }
            Family::Disk => {
                let url = format!("{sub}/providers/Microsoft.Compute/locations/{loc}/DiskOperations/{}", op.id);
                reply
                    .header("Azure-AsyncOperation", format!("{url}?api-version={api}"))
                    .header("Location", format!("{url}?monitor=true&api-version={api}"))
            }
            Family::Storage => reply.header(
                "Location",
                format!(
                    "{sub}/providers/Microsoft.Storage/locations/{loc}/asyncoperations/{}?monitor=true&api-version={api}",
                    op.id
                ),
            ),
        }
    }

    fn put(&self, req: &Request, id: &ResourceId, api: &str, fail_op: bool) -> Reply {
        let mut body: Value = match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Reply::error(
                    400,
                    "InvalidRequestContent",
                    "The request content was invalid and could not be deserialized.",
                );
            }
        };
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        if let Some(r) = self.parent_missing(id, now) {
            return r;
        }
        let existing = match self.load(id, now) {
            Ok(e) => e,
            Err(r) => return r,
        };
        if let Some(op) = existing.as_ref().and_then(|e| e.operation.as_ref())
            && now < op.done_ms
        {
            return Self::busy(op, now, self.retry_after(op.done_ms - now));
        }
        if id
            .resource_type()
            .eq_ignore_ascii_case("Microsoft.KeyVault/vaults/secrets")
            && let Some(value) = body.pointer("/properties/value").and_then(Value::as_str)
            && let Err(e) = self.store.put_secret(id, value)
        {
            return Reply::error(500, "InternalServerError", &format!("emulator vault: {e}"));
        }
        for p in WRITE_ONLY {
            if let Some((parent, key)) = p.rsplit_once('/')
                && let Some(Value::Object(o)) = body.pointer_mut(parent)
            {
                o.remove(key);
            }
        }
        for k in ["id", "name", "type"] {
            body.as_object_mut().expect("object").remove(k);
        }
        if let Some(identity) = body.get_mut("identity").and_then(Value::as_object_mut)
            && identity
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("SystemAssigned"))
        {
            identity.insert(
                "principalId".into(),
                json!(stable_guid(&format!("principal:{}", id.key()))),
            );
            identity.insert(
                "tenantId".into(),
                json!(stable_guid(&format!("tenant:{}", id.subscription()))),
            );
        }
        if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
            props.remove("provisioningState");
        }
        let resource_type = id.resource_type();
        if resource_type.eq_ignore_ascii_case("Microsoft.ManagedIdentity/userAssignedIdentities") {
            body["properties"] = json!({
                "principalId": stable_guid(&format!("principal:{}", id.key())),
                "clientId": stable_guid(&format!("client:{}", id.key())),
                "tenantId": stable_guid(&format!("tenant:{}", id.subscription())),
            });
        }
        if let Some(image) = body
            .pointer("/properties/storageProfile/imageReference/id")
            .and_then(Value::as_str)
            .and_then(|s| ResourceId::parse(s).ok())
        {
            // As Azure: a VM cannot be created from an image version that does not exist.
            let exists =
                matches!(self.load(&image, now), Ok(Some(ref v)) if self.view(v, now).is_some());
            if !exists {
                return Reply::error(
                    404,
                    "GalleryImageNotFound",
                    &format!(
                        "The gallery image {} is not available. Build it first, or contact the image owner.",
                        image.as_str()
                    ),
                );
            }
        }
        let fam = family(&resource_type);
        let creating = existing.is_none();
        let secs = if creating {
            put_seconds(&resource_type)
        } else {
            put_seconds(&resource_type).min(30.0) / 2.0
        };
        let op = self.new_operation(id, OpKind::Put { creating }, secs, fail_op, now);
        let is_vm = resource_type.eq_ignore_ascii_case("Microsoft.Compute/virtualMachines");
        let sql_image = is_vm && super::sql::is_sql_image(&body);
        let initial_mode = body
            .pointer("/tags/lifeboat-restore-mode")
            .and_then(Value::as_str)
            .map(str::to_string);
        let stored = StoredResource {
            id: id.clone(),
            resource_type: resource_type.clone(),
            api_version: api.to_string(),
            body,
            // Synchronous types answer with their final state: nothing to fail later.
            operation: (fam != Family::Sync).then(|| op.clone()),
            power: match &existing {
                Some(e) => e.power.clone(),
                None if is_vm => Some("running".into()),
                None => None,
            },
            sql_mode: match &existing {
                Some(e) => e.sql_mode.clone(),
                None if sql_image => initial_mode,
                None => None,
            },
            // A SQL Server VM receives the hospital's log backups from its creation.
            shipping: match &existing {
                Some(e) => e.shipping.clone(),
                None if sql_image => Some(super::sql::Shipping {
                    since_ms: now,
                    recovered_ms: None,
                }),
                None => None,
            },
            visible_from_ms: existing.as_ref().and_then(|e| e.visible_from_ms),
            replicated_ms: existing.as_ref().and_then(|e| e.replicated_ms),
        };
        if let Err(r) = self.save(&stored) {
            return r;
        }
        let status = if creating { 201 } else { 200 };
        let loc = Self::location_of(&stored.body);
        let view = self.view(&stored, now).unwrap_or(Value::Null);
        let first = match fam {
            Family::Sync => return Reply::json(status, &view),
            Family::Network | Family::Compute | Family::Generic => Reply::json(status, &view),
            Family::Disk => Reply::json(202, &view),
            Family::Storage => {
                Reply::empty(202).header("content-type", "text/plain; charset=utf-8")
            }
        };
        self.op_headers(req, id, fam, &loc, &op, api, first, false)
    }

    fn delete(&self, req: &Request, id: &ResourceId, fail_op: bool) -> Reply {
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        let existing = match self.load(id, now) {
            Ok(Some(e)) => e,
            Ok(None) => return Reply::empty(204),
            Err(r) => return r,
        };
        if let Some(op) = &existing.operation
            && now < op.done_ms
        {
            if op.kind == OpKind::Delete {
                // Deleting already: answer like ARM, with the running operation.
                let fam = family(&existing.resource_type);
                let loc = Self::location_of(&existing.body);
                return self.op_headers(
                    req,
                    id,
                    fam,
                    &loc,
                    op,
                    &existing.api_version,
                    Reply::empty(202),
                    true,
                );
            }
            return Self::busy(op, now, self.retry_after(op.done_ms - now));
        }
        let api = query_param(&req.query, "api-version")
            .unwrap_or(&existing.api_version)
            .to_string();
        let fam = family(&existing.resource_type);
        let op = self.new_operation(
            id,
            OpKind::Delete,
            delete_seconds(&existing.resource_type),
            fail_op,
            now,
        );
        if fam == Family::Sync && !id.is_resource_group() && !fail_op {
            self.delete_children(id, &op);
            let _ = self.store.delete(id);
            return Reply::empty(200);
        }
        let mut r = existing.clone();
        r.operation = Some(op.clone());
        if let Err(reply) = self.save(&r) {
            return reply;
        }
        if op.failure.is_none() {
            self.delete_children(id, &op);
        }
        let loc = Self::location_of(&existing.body);
        if id.is_resource_group() {
            // As recorded: 202 + Location (operationresults), no Retry-After.
            return Reply::empty(202).header(
                "Location",
                format!(
                    "{}/subscriptions/{}/operationresults/{}?api-version={api}",
                    req.base,
                    id.subscription(),
                    op.id
                ),
            );
        }
        self.op_headers(req, id, fam, &loc, &op, &api, Reply::empty(202), true)
    }

    /// Deleting a resource deletes what lives under it, when it completes.
    fn delete_children(&self, id: &ResourceId, op: &Operation) {
        let prefix = format!("{}/", id.key());
        let Ok(all) = self.store.list() else { return };
        for mut child in all.into_iter().filter(|r| r.id.key().starts_with(&prefix)) {
            child.operation = Some(Operation {
                id: op.id.clone(),
                kind: OpKind::Delete,
                started_ms: op.started_ms,
                done_ms: op.done_ms,
                failure: None,
            });
            let _ = self.store.put(&child);
        }
    }

    fn operation_status(&self, token: &str, location_style: bool, req: &Request) -> Reply {
        let Some(id) = token
            .rsplit_once('-')
            .and_then(|(hex, _)| unhex(hex))
            .and_then(|s| ResourceId::parse(&s).ok())
        else {
            return Reply::error(
                404,
                "OperationNotFound",
                &format!("operation {token} not found"),
            );
        };
        let now = now_ms();
        let stored = match self.store.get(&id) {
            Ok(r) => r,
            Err(e) => return Reply::error(500, "InternalServerError", &e.to_string()),
        };
        let op = stored
            .as_ref()
            .and_then(|r| r.operation.as_ref())
            .filter(|op| op.id == token);
        let Some(op) = op else {
            // Finished long ago, superseded, or the resource is gone: it succeeded.
            return if location_style {
                Reply::empty(200)
            } else {
                Reply::json(200, &json!({"name": token, "status": "Succeeded"}))
            };
        };
        let start = jiff::Timestamp::from_millisecond(op.started_ms as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        if now < op.done_ms {
            let ra = self.retry_after(op.done_ms - now);
            return if location_style {
                Reply::empty(202)
                    .header(
                        "Location",
                        format!("{}{}?{}", req.base, req.path, req.query),
                    )
                    .header("Retry-After", ra)
            } else {
                Reply::json(
                    200,
                    &json!({"name": token, "startTime": start, "status": "InProgress"}),
                )
                .header("Retry-After", ra)
            };
        }
        let end = jiff::Timestamp::from_millisecond(op.done_ms as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        if let Some((code, message)) = &op.failure {
            return if location_style {
                Reply::error(400, code, message)
            } else {
                Reply::json(
                    200,
                    &json!({"name": token, "startTime": start, "endTime": end, "status": "Failed",
                    "error": {"code": code, "message": message}}),
                )
            };
        }
        let output = match &op.kind {
            OpKind::Action { output, .. } => output.clone(),
            OpKind::Put { .. } => stored.as_ref().and_then(|r| self.view(r, now)),
            OpKind::Delete => None,
        };
        if location_style {
            return match output {
                Some(v) => Reply::json(200, &v),
                None => Reply::empty(200),
            };
        }
        let mut v =
            json!({"name": token, "startTime": start, "endTime": end, "status": "Succeeded"});
        if let Some(o) = output {
            v["properties"] = json!({"output": o});
        }
        Reply::json(200, &v)
    }

    fn instance_view(&self, id: &ResourceId) -> Reply {
        let now = now_ms();
        match self.load(id, now) {
            Ok(Some(r)) => {
                let v = self.view(&r, now).unwrap_or(Value::Null);
                let state = v
                    .pointer("/properties/provisioningState")
                    .and_then(Value::as_str)
                    .unwrap_or("Succeeded")
                    .to_ascii_lowercase();
                let power = self.power(&r, now).unwrap_or_else(|| "running".into());
                Reply::json(
                    200,
                    &json!({"statuses": [
                    {"code": format!("ProvisioningState/{state}"), "level": "Info"},
                    {"code": format!("PowerState/{power}"), "level": "Info"}]}),
                )
            }
            Ok(None) => Self::not_found(id),
            Err(r) => r,
        }
    }

    /// A Log Analytics query through ARM (`<workspace>/api/query`). The emulated
    /// workspace holds one table, `LifeboatLogShipping_CL`: the log-shipping
    /// monitor row every SQL VM reports (its latest, as `arg_max` would give).
    fn log_query(&self, req: &Request) -> Reply {
        let q: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let text = q.get("query").and_then(Value::as_str).unwrap_or("");
        if !text.contains("LifeboatLogShipping_CL") {
            return Reply::error(
                400,
                "BadArgumentError",
                "The emulated workspace only has the table LifeboatLogShipping_CL.",
            );
        }
        let now = now_ms();
        let all = match self.store.scan() {
            Ok(a) => a,
            Err(e) => {
                return Reply::error(500, "InternalServerError", &format!("emulator store: {e}"));
            }
        };
        let columns = [
            "ResourceId",
            "Tenant",
            "secondary_database",
            "last_copied_file",
            "last_copied_date_utc",
            "last_restored_file",
            "last_restored_date_utc",
            "state_desc",
            "restore_mode",
            "now_utc",
        ];
        let rows: Vec<Value> = all
            .iter()
            .filter(|r| r.shipping.is_some())
            .filter_map(|r| {
                let m = super::sql::monitor(
                    r,
                    now,
                    self.cfg.time_scale,
                    self.cfg.faults.shipping_stop_s,
                )?;
                let tenant = r
                    .body
                    .pointer("/tags/lifeboat-tenant")
                    .cloned()
                    .unwrap_or(Value::Null);
                Some(Value::Array(
                    columns
                        .iter()
                        .map(|c| match *c {
                            "ResourceId" => json!(r.id.as_str()),
                            "Tenant" => tenant.clone(),
                            other => m.get(other).cloned().unwrap_or(Value::Null),
                        })
                        .collect(),
                ))
            })
            .collect();
        Reply::json(
            200,
            &json!({"tables": [{
                "name": "PrimaryResult",
                "columns": columns.iter().map(|c| json!({"name": c, "type": "string"})).collect::<Vec<_>>(),
                "rows": rows,
            }]}),
        )
    }

    /// The resource, if it exists and no operation runs on it (the caller holds
    /// its lock).
    fn idle(&self, id: &ResourceId, now: u64) -> Result<StoredResource, Reply> {
        let r = self.load(id, now)?.ok_or_else(|| Self::not_found(id))?;
        if let Some(op) = &r.operation
            && now < op.done_ms
        {
            return Err(Self::busy(op, now, self.retry_after(op.done_ms - now)));
        }
        Ok(r)
    }

    fn vm_action(&self, req: &Request, id: &ResourceId, action: &str, fail_op: bool) -> Reply {
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        let mut r = match self.idle(id, now) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let (power, secs, output) = match action {
            "start" => (Some("running"), 60.0, None),
            "deallocate" => (Some("deallocated"), 60.0, None),
            "poweroff" => (Some("stopped"), 30.0, None),
            "restart" => (Some("running"), 90.0, None),
            "runcommand" => {
                if r.power.as_deref() != Some("running") {
                    return Reply::error(
                        409,
                        "OperationNotAllowed",
                        "Operation 'runCommand' is not allowed since the VM is not running.",
                    );
                }
                let out = match super::sql::run_command(
                    &mut r,
                    &req.body,
                    now,
                    self.cfg.time_scale,
                    self.cfg.faults.shipping_stop_s,
                ) {
                    Ok(o) => o,
                    Err(msg) => return Reply::error(400, "InvalidParameter", &msg),
                };
                (None, 30.0, Some(out))
            }
            other => {
                return Reply::error(
                    404,
                    "InvalidResourceType",
                    &format!("The resource type 'virtualMachines/{other}' could not be found."),
                );
            }
        };
        let op = self.new_operation(
            id,
            OpKind::Action {
                name: action.to_string(),
                power: power.map(str::to_string),
                output,
            },
            secs,
            fail_op,
            now,
        );
        r.operation = Some(op.clone());
        if let Err(reply) = self.save(&r) {
            return reply;
        }
        let api = query_param(&req.query, "api-version")
            .unwrap_or(&r.api_version)
            .to_string();
        let loc = Self::location_of(&r.body);
        self.op_headers(
            req,
            id,
            Family::Compute,
            &loc,
            &op,
            &api,
            Reply::empty(202),
            true,
        )
    }

    /// Azure Image Builder `run`: the build takes ~40 min; when it succeeds its
    /// distributor's gallery image version appears (tagged with `artifactTags`) and
    /// replicates to the other target regions in ~15 min more. A failed build
    /// (`--faults lro-fail`) reports Image Builder's error and creates nothing.
    fn template_action(
        &self,
        req: &Request,
        id: &ResourceId,
        action: &str,
        fail_op: bool,
    ) -> Reply {
        if action != "run" {
            return Reply::error(
                404,
                "InvalidResourceType",
                &format!("The resource type 'imageTemplates/{action}' could not be found."),
            );
        }
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        let mut t = match self.idle(id, now) {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        let dist = t
            .body
            .pointer("/properties/distribute/0")
            .cloned()
            .unwrap_or(Value::Null);
        let Some(version) = dist
            .get("galleryImageId")
            .and_then(Value::as_str)
            .and_then(|s| ResourceId::parse(s).ok())
        else {
            return Reply::error(
                400,
                "InvalidParameter",
                "distribute[0].galleryImageId must name a gallery image version",
            );
        };
        let kind = OpKind::Action {
            name: "run".into(),
            power: None,
            output: None,
        };
        let mut op = self.new_operation(id, kind, IMAGE_BUILD_SECS, false, now);
        if fail_op {
            op.failure = Some((
                "ImageTemplateRunFailed".into(),
                "Build failed: customization 'install-hix' (PowerShell) exited with code 1603 (fatal error during installation); see packerlogs/customization.log in the staging resource group's storage account".into(),
            ));
        } else {
            let regions = dist
                .get("targetRegions")
                .cloned()
                .unwrap_or_else(|| json!([]));
            let v = StoredResource {
                id: version,
                resource_type: lifeboat_core::api::IMAGE_VERSION_TYPE.to_string(),
                api_version: "2023-07-03".into(),
                body: json!({
                    "location": t.body.get("location").cloned().unwrap_or(json!("westeurope")),
                    "tags": dist.get("artifactTags").cloned().unwrap_or(json!({})),
                    "properties": {
                        "publishingProfile": {
                            "targetRegions": regions,
                            "excludeFromLatest": dist.get("excludeFromLatest").cloned().unwrap_or(json!(false)),
                            "publishedDate": rfc3339(op.done_ms),
                        },
                        "storageProfile": {"source": {"id": id.as_str()}},
                    }
                }),
                operation: None,
                power: None,
                sql_mode: None,
                shipping: None,
                visible_from_ms: Some(op.done_ms),
                replicated_ms: Some(op.done_ms + self.scaled_ms(REPLICATION_SECS)),
            };
            if let Err(reply) = self.save(&v) {
                return reply;
            }
        }
        t.operation = Some(op.clone());
        if let Err(reply) = self.save(&t) {
            return reply;
        }
        let api = query_param(&req.query, "api-version")
            .unwrap_or(&t.api_version)
            .to_string();
        let loc = Self::location_of(&t.body);
        self.op_headers(
            req,
            id,
            Family::Generic,
            &loc,
            &op,
            &api,
            Reply::empty(202),
            true,
        )
    }

    fn resource_graph(&self, req: &Request) -> Reply {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let top = body
            .pointer("/options/$top")
            .and_then(Value::as_u64)
            .unwrap_or(1000)
            .clamp(1, 1000) as usize;
        let mut pages = self.pages.lock().expect("pages");
        pages.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(600));
        let rows = if let Some(token) = body.pointer("/options/$skipToken").and_then(Value::as_str)
        {
            match pages.remove(token) {
                Some((_, rows)) => rows,
                None => {
                    return Reply::error(
                        400,
                        "InvalidSkipToken",
                        "The $skipToken is invalid or expired.",
                    );
                }
            }
        } else {
            let text = body.get("query").and_then(Value::as_str).unwrap_or("");
            let q = match Query::parse(text) {
                Ok(q) => q,
                Err(e) => {
                    return Reply::error(400, "BadRequest", &format!("Query is invalid: {e}"));
                }
            };
            let subs: Vec<String> = body
                .get("subscriptions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_ascii_lowercase))
                        .collect()
                })
                .unwrap_or_default();
            let now = now_ms();
            let all = match self.store.scan() {
                Ok(a) => a,
                Err(e) => return Reply::error(500, "InternalServerError", &e.to_string()),
            };
            let mut rows: Vec<Value> = all
                .iter()
                .filter(|r| {
                    subs.is_empty() || subs.contains(&r.id.subscription().to_ascii_lowercase())
                })
                .filter_map(|r| self.view(r, now).map(|v| query::row(r, v)))
                .filter(|row| q.matches(row))
                .collect();
            rows.reverse(); // pop() from the end below keeps id order
            rows
        };
        let mut rows = rows;
        let total = rows.len();
        let page: Vec<Value> = (0..top.min(total)).filter_map(|_| rows.pop()).collect();
        let mut out = json!({"totalRecords": total, "count": page.len(), "data": page, "facets": [],
            "resultTruncated": "false"});
        if !rows.is_empty() {
            let token = format!("{:032x}", fastrand::u128(..));
            out["$skipToken"] = json!(token);
            pages.insert(token, (Instant::now(), rows));
        }
        Reply::json(200, &out)
    }
}
