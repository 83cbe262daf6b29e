//! The one generic Azure Resource Manager client: GET, PUT, DELETE, POST actions and
//! Resource Graph queries for every resource type, with the ARM async protocol
//! ([`super::lro`]), retries ([`super::retry`]) and client-side pacing
//! ([`super::ratelimit`]) applied in exactly one place, [`ArmClient::send`].
//!
//! The same client talks to Azure and to the loopback emulator. It never prints and
//! never decides what to change; it counts what it did in [`Stats`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lifeboat_core::api::TIME_SCALE_HEADER;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::{AuthError, Credential};
use super::lro::{self, ErrorInfo, OpStatus, PollUrl};
use super::ratelimit::{Class, RateLimiter};
use super::retry::{Failure, RetryPolicy, Verdict};
use lifeboat_core::id::ResourceId;

/// Log Analytics queries routed through ARM.
pub use lifeboat_core::api::LOG_QUERY as LOG_QUERY_API;
pub use lifeboat_core::api::RESOURCE_GRAPH as RESOURCE_GRAPH_API;

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// ARM's own error, code and message verbatim.
    #[error("{method} {target}: HTTP {status} {code}: {message}")]
    Api {
        method: String,
        target: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{target}: the operation {outcome}: {code}: {message}")]
    Operation {
        target: String,
        outcome: &'static str,
        code: String,
        message: String,
    },
    #[error("{method} {target}: {message}")]
    Connection {
        method: String,
        target: String,
        message: String,
    },
    #[error("{target}: {message}")]
    Protocol { target: String, message: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl ArmError {
    /// Worth another run: throttling, server faults and failed operations.
    pub fn is_transient(&self) -> bool {
        match self {
            ArmError::Api { status, .. } => *status == 429 || *status >= 500,
            // Operation failures ARM documents as retryable; others are the
            // request's own fault and would fail again.
            ArmError::Operation { code, .. } => matches!(
                code.as_str(),
                "InternalOperationError"
                    | "InternalServerError"
                    | "RetryableError"
                    | "OperationPreempted"
                    | "ServiceUnavailable"
                    | "Canceled"
            ),
            ArmError::Connection { .. } => true,
            ArmError::Protocol { .. } | ArmError::Auth(_) => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://management.azure.com` or the emulator's `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Multiplies every wait (1.0 against Azure; the emulator's `--time-scale`
    /// against it, so waits are in the emulator's seconds).
    pub time_scale: f64,
    /// Take the time scale from the server's `x-lifeboat-time-scale` header (an
    /// endpoint that announces itself as the lifeboat emulator). Off when the
    /// scale is known (the embedded cloud, an explicit `--time-scale`); an
    /// endpoint that never sends the header keeps Azure's time.
    pub discover_time_scale: bool,
    /// Poll interval when an operation response gives no Retry-After.
    pub default_poll: Duration,
    pub retry: RetryPolicy,
    /// Keep every wait (unscaled) in [`Stats::waits`], for protocol tests.
    pub record_waits: bool,
}

impl ClientConfig {
    pub fn azure(endpoint: &str) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            time_scale: 1.0,
            discover_time_scale: false,
            default_poll: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            record_waits: false,
        }
    }
}

/// What the client did, by verb; reported by plan and apply.
#[derive(Debug, Default)]
pub struct Stats {
    pub get: AtomicU64,
    pub list: AtomicU64,
    pub put: AtomicU64,
    pub delete: AtomicU64,
    pub post: AtomicU64,
    pub poll: AtomicU64,
    pub query: AtomicU64,
    pub throttled: AtomicU64,
    pub retries: AtomicU64,
    pub waits: Mutex<Vec<Duration>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub get: u64,
    pub list: u64,
    pub put: u64,
    pub delete: u64,
    pub post: u64,
    pub poll: u64,
    pub query: u64,
    pub throttled: u64,
    pub retries: u64,
}

impl StatsSnapshot {
    /// What was sent between `before` and this snapshot.
    pub fn since(&self, before: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            get: self.get - before.get,
            list: self.list - before.list,
            put: self.put - before.put,
            delete: self.delete - before.delete,
            post: self.post - before.post,
            poll: self.poll - before.poll,
            query: self.query - before.query,
            throttled: self.throttled - before.throttled,
            retries: self.retries - before.retries,
        }
    }

    pub fn reads(&self) -> u64 {
        self.get + self.list + self.poll + self.query
    }
    pub fn writes(&self) -> u64 {
        self.put + self.delete + self.post
    }
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            get: l(&self.get),
            list: l(&self.list),
            put: l(&self.put),
            delete: l(&self.delete),
            post: l(&self.post),
            poll: l(&self.poll),
            query: l(&self.query),
            throttled: l(&self.throttled),
            retries: l(&self.retries),
        }
    }
}

/// One HTTP response, read in full.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> Value {
        lifeboat_core::observed::parse(&self.body).unwrap_or(Value::Null)
    }
}

/// Which counter a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    /// A page of a collection.
    List,
    Put,
    Delete,
    Post,
    Poll,
    Query,
}

impl Verb {
    fn method(self) -> Method {
        match self {
            Verb::Get | Verb::List | Verb::Poll => Method::GET,
            Verb::Put => Method::PUT,
            Verb::Delete => Method::DELETE,
            Verb::Post | Verb::Query => Method::POST,
        }
    }
    fn class(self) -> Class {
        match self {
            Verb::Get | Verb::List | Verb::Poll | Verb::Query => Class::Read,
            Verb::Put | Verb::Post => Class::Write,
            Verb::Delete => Class::Delete,
        }
    }
}

/// What to do before retrying after a lost connection on a mutating request: wait
/// until the resource's own operation (which may have started) settles.
#[derive(Clone, Copy)]
struct Settle<'a> {
    id: &'a ResourceId,
    api_version: &'a str,
}

pub struct ArmClient {
    http: reqwest::Client,
    cfg: ClientConfig,
    credential: Credential,
    limits: RateLimiter,
    /// The time scale in force (`f64` bits): `cfg.time_scale` until a server
    /// announces its own.
    scale: AtomicU64,
    pub stats: Stats,
    /// One lock per resource id: a resource is never re-PUT (or deleted) while an
    /// operation this process started on it is still running.
    busy: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Tokens taken in advance by a scheduler ([`ArmClient::reserve`]), per class.
    prepaid: [AtomicU64; 3],
}

fn class_index(c: Class) -> usize {
    match c {
        Class::Read => 0,
        Class::Write => 1,
        Class::Delete => 2,
    }
}

impl ArmClient {
    pub fn new(cfg: ClientConfig, credential: Credential) -> ArmClient {
        ArmClient::with_http(cfg, credential, ArmClient::http())
    }

    /// The HTTP client an [`ArmClient`] sends with. Building one loads the
    /// platform's root certificates (~3 ms): a command builds it while it
    /// loads its manifests ([`ArmClient::with_http`]).
    pub fn http() -> reqwest::Client {
        crate::cloud::install_crypto();
        reqwest::Client::builder()
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(64)
            .build()
            .expect("the HTTP client builds with a crypto provider installed")
    }

    /// [`ArmClient::new`], sending with `http` (from [`ArmClient::http`]).
    pub fn with_http(
        cfg: ClientConfig,
        credential: Credential,
        http: reqwest::Client,
    ) -> ArmClient {
        let limits = RateLimiter::arm(cfg.time_scale);
        let scale = cfg.time_scale.to_bits();
        ArmClient {
            http,
            cfg,
            credential,
            limits,
            scale: AtomicU64::new(scale),
            stats: Stats::default(),
            busy: Mutex::new(HashMap::new()),
            prepaid: Default::default(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The factor every wait is multiplied by: 1.0 against Azure.
    pub fn time_scale(&self) -> f64 {
        f64::from_bits(self.scale.load(Ordering::Relaxed))
    }

    /// Adopt the scale an emulator announces; anything unparsable or outside
    /// (0, 1] is ignored, so a hostile or broken header can only keep Azure time.
    fn observe_time_scale(&self, headers: &reqwest::header::HeaderMap) {
        if !self.cfg.discover_time_scale {
            return;
        }
        let Some(f) = headers
            .get(TIME_SCALE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|f| *f > 0.0 && *f <= 1.0)
        else {
            return;
        };
        if self.scale.swap(f.to_bits(), Ordering::Relaxed) != f.to_bits() {
            self.limits.rescale(f);
        }
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    pub fn url(&self, id: &ResourceId, suffix: &str, api_version: &str) -> String {
        format!(
            "{}{}{suffix}?api-version={api_version}",
            self.cfg.endpoint,
            id.as_str()
        )
    }

    /// Sleep for a wait measured in the cloud's seconds.
    async fn sleep(&self, d: Duration) {
        if self.cfg.record_waits {
            self.stats.waits.lock().expect("waits").push(d);
        }
        tokio::time::sleep(d.mul_f64(self.time_scale())).await;
    }

    /// Wait for a request token now, on behalf of a request sent soon. A scheduler
    /// uses this to start work in its own priority order at the quota's pace;
    /// cancel-safe (no token is taken unless the future completes).
    pub async fn reserve(&self, class: Class) {
        super::ratelimit::acquire(self.limits.bucket(class)).await;
        self.prepaid[class_index(class)].fetch_add(1, Ordering::AcqRel);
    }

    async fn pace(&self, class: Class) {
        let credit = &self.prepaid[class_index(class)];
        if credit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_err()
        {
            super::ratelimit::acquire(self.limits.bucket(class)).await;
        }
    }

    fn busy_lock(&self, id: &ResourceId) -> Arc<tokio::sync::Mutex<()>> {
        self.busy
            .lock()
            .expect("busy map")
            .entry(id.key().to_string())
            .or_default()
            .clone()
    }

    fn count(&self, verb: Verb) {
        let c = match verb {
            Verb::Get => &self.stats.get,
            Verb::List => &self.stats.list,
            Verb::Put => &self.stats.put,
            Verb::Delete => &self.stats.delete,
            Verb::Post => &self.stats.post,
            Verb::Poll => &self.stats.poll,
            Verb::Query => &self.stats.query,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn observe_quota(&self, h: &HeaderMap) {
        for (name, class) in [
            ("x-ms-ratelimit-remaining-subscription-reads", Class::Read),
            ("x-ms-ratelimit-remaining-subscription-writes", Class::Write),
            (
                "x-ms-ratelimit-remaining-subscription-deletes",
                Class::Delete,
            ),
        ] {
            if let Some(n) = h
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.limits.bucket(class).observe_remaining(n);
            }
        }
    }

    /// Send one request with pacing, auth and retries. Statuses below 400 are
    /// returned; anything else is an [`ArmError`] after the retry policy gave up.
    async fn send(
        &self,
        verb: Verb,
        url: &str,
        body: Option<&Value>,
        target: &str,
        settle: Option<Settle<'_>>,
    ) -> Result<Response, ArmError> {
        let method = verb.method();
        let idempotent = verb != Verb::Post || settle.is_some();
        let mut attempt = 0u32;
        loop {
            self.pace(verb.class()).await;
            let token = self.credential.bearer().await?;
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token)
                .header(
                    "x-ms-client-request-id",
                    format!("{:032x}", fastrand::u128(..)),
                );
            if let Some(b) = body {
                req = req.json(b);
            } else if matches!(verb, Verb::Post) {
                req = req.header("content-length", "0");
            }
            self.count(verb);
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    self.observe_time_scale(&headers);
                    match resp.bytes().await {
                        Ok(body) => Ok(Response {
                            status,
                            headers,
                            body,
                        }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let failure = match outcome {
                Ok(r) if r.status < 400 => {
                    self.observe_quota(&r.headers);
                    return Ok(r);
                }
                Ok(r) => {
                    self.observe_quota(&r.headers);
                    let info = ErrorInfo::from_body(&r.body);
                    let retry_after = lro::retry_after(&r.headers);
                    if r.status == 429 {
                        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                        let wait = retry_after.unwrap_or(Duration::from_secs(1));
                        self.limits
                            .bucket(verb.class())
                            .throttled(wait.mul_f64(self.time_scale()));
                    }
                    let f = Failure::Status {
                        status: r.status,
                        code: info.as_ref().map(|i| i.code.clone()),
                        retry_after,
                    };
                    if self.cfg.retry.verdict(&f, attempt, idempotent) == Verdict::GiveUp {
                        let info = info.unwrap_or_else(|| ErrorInfo {
                            code: format!("HTTP{}", r.status),
                            message: String::from_utf8_lossy(&r.body).into_owned(),
                        });
                        return Err(ArmError::Api {
                            method: method.to_string(),
                            target: target.to_string(),
                            status: r.status,
                            code: info.code,
                            message: info.message,
                        });
                    }
                    f
                }
                Err(e) => {
                    if self
                        .cfg
                        .retry
                        .verdict(&Failure::Connection, attempt, idempotent)
                        == Verdict::GiveUp
                    {
                        return Err(ArmError::Connection {
                            method: method.to_string(),
                            target: target.to_string(),
                            message: error_chain(&e),
                        });
                    }
                    Failure::Connection
                }
            };
            let wait = match self.cfg.retry.verdict(&failure, attempt, idempotent) {
                Verdict::RetryAfter(d) => d,
                Verdict::GiveUp => unreachable!("handled above"),
            };
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            self.sleep(wait).await;
            if failure == Failure::Connection
                && let Some(s) = settle
            {
                // The lost request may have started an operation: let it finish
                // before sending the request again.
                Box::pin(self.wait_settled(s.id, s.api_version)).await?;
            }
            attempt += 1;
        }
    }

    /// Every item of the collection at `path` (an id path such as
    /// `<vault>/keys`, optionally with a query), following `nextLink`; empty
    /// when the collection's parent does not exist.
    pub async fn list(&self, path: &str, api_version: &str) -> Result<Vec<Value>, ArmError> {
        // A path may carry its own query (`…/skus?$filter=…`).
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{}{path}{sep}api-version={api_version}", self.cfg.endpoint);
        let mut items = Vec::new();
        loop {
            let mut page = match self.send(Verb::List, &url, None, path, None).await {
                Ok(r) => r.json(),
                Err(ArmError::Api { status: 404, .. }) => return Ok(items),
                Err(e) => return Err(e),
            };
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(v)) => items.extend(v),
                _ => {
                    return Err(ArmError::Protocol {
                        target: path.to_string(),
                        message: "the collection response has no `value` array".into(),
                    });
                }
            }
            match page.get("nextLink").and_then(Value::as_str) {
                // Only follow links to the same endpoint: a token never leaves it.
                Some(next) if next.starts_with(&self.cfg.endpoint) => url = next.to_string(),
                Some(next) => {
                    return Err(ArmError::Protocol {
                        target: path.to_string(),
                        message: format!("nextLink {next} leaves {}", self.cfg.endpoint),
                    });
                }
                None => return Ok(items),
            }
        }
    }

    /// GET a resource; `None` when it does not exist.
    pub async fn get(&self, id: &ResourceId, api_version: &str) -> Result<Option<Value>, ArmError> {
        match self
            .send(
                Verb::Get,
                &self.url(id, "", api_version),
                None,
                id.as_str(),
                None,
            )
            .await
        {
            Ok(r) => Ok(Some(r.json())),
            Err(ArmError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a view of a resource (`instanceView` of a VM).
    pub async fn get_view(
        &self,
        id: &ResourceId,
        view: &str,
        api_version: &str,
    ) -> Result<Value, ArmError> {
        let url = self.url(id, &format!("/{view}"), api_version);
        let target = format!("{}/{view}", id.as_str());
        Ok(self
            .send(Verb::Get, &url, None, &target, None)
            .await?
            .json())
    }

    /// GET until the resource's provisioningState is terminal (or it is gone).
    pub async fn wait_settled(
        &self,
        id: &ResourceId,
        api_version: &str,
    ) -> Result<Option<Value>, ArmError> {
        loop {
            let url = self.url(id, "", api_version);
            let r = match self.send(Verb::Get, &url, None, id.as_str(), None).await {
                Ok(r) => r,
                Err(ArmError::Api { status: 404, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let body = r.json();
            let state = body
                .pointer("/properties/provisioningState")
                .and_then(Value::as_str)
                .unwrap_or("Succeeded");
            if lro::is_terminal_state(state) {
                return Ok(Some(body));
            }
            let wait = lro::retry_after(&r.headers).unwrap_or(self.cfg.default_poll);
            self.sleep(wait).await;
        }
    }

    /// PUT and wait for the operation; returns the response body.
    pub async fn put(
        &self,
        id: &ResourceId,
        api_version: &str,
        body: &Value,
    ) -> Result<Value, ArmError> {
        let lock = self.busy_lock(id);
        let _guard = lock.lock().await;
        let settle = Settle { id, api_version };
        let url = self.url(id, "", api_version);
        let r = self
            .send(Verb::Put, &url, Some(body), id.as_str(), Some(settle))
            .await?;
        let initial = r.json();
        if lro::poll_url(&r.headers).is_some() {
            self.wait_operation(id.as_str(), &r).await?;
        } else if initial
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
            .is_some_and(|s| !lro::is_terminal_state(s))
        {
            self.wait_settled(id, api_version).await?;
        }
        Ok(initial)
    }

    /// DELETE and wait; `false` when the resource was already gone.
    pub async fn delete(&self, id: &ResourceId, api_version: &str) -> Result<bool, ArmError> {
        let lock = self.busy_lock(id);
        let _guard = lock.lock().await;
        let settle = Settle { id, api_version };
        let url = self.url(id, "", api_version);
        let r = match self
            .send(Verb::Delete, &url, None, id.as_str(), Some(settle))
            .await
        {
            Ok(r) => r,
            Err(ArmError::Api { status: 404, .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if r.status == 204 {
            return Ok(false);
        }
        self.wait_operation(id.as_str(), &r).await?;
        Ok(true)
    }

    /// POST an action (`start`, `deallocate`, `runCommand`, `run`) and wait; returns
    /// the operation's output (`properties.output` of the status, or the final body).
    /// Power actions are idempotent in ARM, so they are retried after a reset.
    pub async fn action(
        &self,
        id: &ResourceId,
        action: &str,
        api_version: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Value, ArmError> {
        let lock = self.busy_lock(id);
        let _guard = lock.lock().await;
        let url = self.url(id, &format!("/{action}"), api_version);
        let target = format!("{}/{action}", id.as_str());
        let settle = idempotent.then_some(Settle { id, api_version });
        let r = self.send(Verb::Post, &url, body, &target, settle).await?;
        if lro::poll_url(&r.headers).is_some() && r.status == 202 {
            let done = self.wait_operation(&target, &r).await?;
            let v: Value = serde_json::from_slice(&done).unwrap_or(Value::Null);
            return Ok(v.pointer("/properties/output").cloned().unwrap_or(v));
        }
        Ok(r.json())
    }

    /// Poll an operation to its end; returns the final poll's body.
    async fn wait_operation(&self, target: &str, first: &Response) -> Result<Bytes, ArmError> {
        let Some(mut poll) = lro::poll_url(&first.headers) else {
            return Ok(first.body.clone());
        };
        let mut wait = lro::retry_after(&first.headers).unwrap_or(self.cfg.default_poll);
        loop {
            self.sleep(wait).await;
            let r = match self.send(Verb::Poll, poll.url(), None, target, None).await {
                Ok(r) => r,
                // A Location poll reports a failed operation with its error status.
                Err(ArmError::Api {
                    status,
                    code,
                    message,
                    ..
                }) if matches!(poll, PollUrl::Location(_)) && (400..500).contains(&status) => {
                    return Err(ArmError::Operation {
                        target: target.to_string(),
                        outcome: "failed",
                        code,
                        message,
                    });
                }
                Err(e) => return Err(e),
            };
            match lro::status(&poll, r.status, &r.body) {
                OpStatus::InProgress => {
                    wait = lro::retry_after(&r.headers).unwrap_or(self.cfg.default_poll);
                }
                OpStatus::Succeeded => return Ok(r.body),
                OpStatus::Failed(e) => {
                    return Err(ArmError::Operation {
                        target: target.to_string(),
                        outcome: "failed",
                        code: e.code,
                        message: e.message,
                    });
                }
                OpStatus::Canceled(e) => {
                    let e = e.unwrap_or(ErrorInfo {
                        code: "Canceled".into(),
                        message: "the operation was canceled".into(),
                    });
                    return Err(ArmError::Operation {
                        target: target.to_string(),
                        outcome: "was canceled",
                        code: e.code,
                        message: e.message,
                    });
                }
            }
            if let (PollUrl::Location(_), Some(PollUrl::Location(next))) =
                (&poll, lro::poll_url(&r.headers))
            {
                // A Location that answers 202 may name the next one to poll.
                poll = PollUrl::Location(next);
            }
        }
    }

    /// Run a Log Analytics (KQL) query against `workspace` through ARM
    /// (`<workspace>/api/query`); rows as objects keyed by column name.
    pub async fn log_query(
        &self,
        workspace: &ResourceId,
        query: &str,
    ) -> Result<Vec<serde_json::Map<String, Value>>, ArmError> {
        let url = self.url(workspace, "/api/query", LOG_QUERY_API);
        let body = json!({"query": query});
        let r = self
            .send(Verb::Query, &url, Some(&body), "Log Analytics query", None)
            .await?;
        let v = r.json();
        let table = v.pointer("/tables/0").ok_or_else(|| ArmError::Protocol {
            target: "Log Analytics query".into(),
            message: "the response has no `tables`".into(),
        })?;
        let columns: Vec<&str> = table["columns"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        Ok(table["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(Value::as_array)
                    .map(|row| {
                        columns
                            .iter()
                            .zip(row)
                            .map(|(c, v)| (c.to_string(), v.clone()))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run an Azure Resource Graph query over `subscriptions`, following
    /// `$skipToken` pages of 1000 rows.
    pub async fn query(
        &self,
        subscriptions: &[String],
        query: &str,
    ) -> Result<Vec<Value>, ArmError> {
        let mut pages = Vec::new();
        self.query_pages(subscriptions, query, |p| {
            pages.push(p);
            std::future::ready(())
        })
        .await?;
        let mut rows = Vec::new();
        for p in pages {
            rows.extend(p.rows()?);
        }
        Ok(rows)
    }

    /// Run a Resource Graph query and hand each page to `each` unparsed: the
    /// next page is asked for as soon as this one's `$skipToken` is read and
    /// `each` has taken it, so a caller that parses pages elsewhere overlaps
    /// that with the service building the next one (and, by taking its time,
    /// bounds how many wait).
    pub async fn query_pages<F: std::future::Future<Output = ()>>(
        &self,
        subscriptions: &[String],
        query: &str,
        mut each: impl FnMut(GraphPage) -> F,
    ) -> Result<(), ArmError> {
        let url = format!(
            "{}/providers/Microsoft.ResourceGraph/resources?api-version={RESOURCE_GRAPH_API}",
            self.cfg.endpoint
        );
        let mut skip: Option<String> = None;
        loop {
            let mut options = json!({"$top": 1000, "resultFormat": "objectArray"});
            if let Some(s) = &skip {
                options["$skipToken"] = json!(s);
            }
            let body = json!({"subscriptions": subscriptions, "query": query, "options": options});
            let r = self
                .send(Verb::Query, &url, Some(&body), "Resource Graph query", None)
                .await?;
            #[derive(serde::Deserialize)]
            struct Head {
                #[serde(rename = "$skipToken")]
                skip: Option<String>,
            }
            // Only the token is read here; unknown fields (the rows) are
            // skipped without being built.
            skip = serde_json::from_slice::<Head>(&r.body)
                .map_err(|e| GraphPage::malformed(&e.to_string()))?
                .skip;
            each(GraphPage(r.body)).await;
            if skip.is_none() {
                return Ok(());
            }
        }
    }
}

/// One page of a Resource Graph result as the service sent it.
pub struct GraphPage(Bytes);

impl GraphPage {
    fn malformed(why: &str) -> ArmError {
        ArmError::Protocol {
            target: "Resource Graph query".into(),
            message: format!(
                "the response is not a page of rows (`data`, resultFormat objectArray): {why}"
            ),
        }
    }

    /// The ids of the page's rows, read without building the rows (what to
    /// list can be told from an id alone).
    pub fn ids(&self) -> Result<Vec<lifeboat_core::id::ResourceId>, ArmError> {
        #[derive(serde::Deserialize)]
        struct Row<'a> {
            #[serde(borrow)]
            id: Option<std::borrow::Cow<'a, str>>,
        }
        #[derive(serde::Deserialize)]
        struct Data<'a> {
            #[serde(borrow)]
            data: Vec<Row<'a>>,
        }
        serde_json::from_slice::<Data>(&self.0)
            .map(|d| {
                d.data
                    .iter()
                    .filter_map(|r| lifeboat_core::id::ResourceId::parse(r.id.as_deref()?).ok())
                    .collect()
            })
            .map_err(|e| Self::malformed(&e.to_string()))
    }

    /// The page's rows.
    pub fn rows(&self) -> Result<Vec<Value>, ArmError> {
        #[derive(serde::Deserialize)]
        struct Data {
            data: Vec<lifeboat_core::observed::Exact>,
        }
        serde_json::from_slice::<Data>(&self.0)
            .map(|d| d.data.into_iter().map(|e| e.0).collect())
            .map_err(|e| Self::malformed(&e.to_string()))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
