//! The Microsoft Graph client (`/v1.0/`) the roster uses: its own token audience
//! (`https://graph.microsoft.com/.default`), reads that follow
//! `@odata.nextLink`, `$batch` of at most 20 requests whose items are checked
//! and retried one by one, and 429 handling with Retry-After (fractional, or
//! absent: then its own backoff) through the same [`RetryPolicy`] as ARM.
//!
//! Speaks HTTP only; never decides who belongs in a group (see `ops::roster`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::auth::{AuthError, Credential};
use super::retry::{Failure, RetryPolicy, Verdict};
use lifeboat_core::api::TIME_SCALE_HEADER;

/// Microsoft Graph's own limit on one `$batch`.
pub const MAX_BATCH: usize = 20;
/// Every member reference names this host, whatever the endpoint.
pub const DIRECTORY_OBJECTS: &str = "https://graph.microsoft.com/v1.0/directoryObjects";

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Microsoft Graph {method} {url}: {status} {code}: {message}")]
    Api {
        method: String,
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("Microsoft Graph {method} {url}: {source}")]
    Http {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Microsoft Graph {url}: the answer is not JSON ({reason})")]
    Unreadable { url: String, reason: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Requests sent, by kind (a `$batch` is one request).
#[derive(Debug, Default, Serialize)]
pub struct GraphStats {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub batches: AtomicU64,
    pub throttled: AtomicU64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct GraphRequests {
    pub reads: u64,
    pub writes: u64,
    pub batches: u64,
    pub throttled: u64,
}

impl GraphRequests {
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.batches
    }
}

/// One request inside a `$batch`.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub method: &'static str,
    /// Relative to `/v1.0` (`/invitations`, `/groups/{id}/members/$ref`).
    pub url: String,
    pub body: Option<Value>,
}

/// What a `$batch` item finally answered.
#[derive(Debug, Clone)]
pub struct BatchResult {
    pub status: u16,
    pub body: Value,
}

impl BatchResult {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn message(&self) -> String {
        let code = self
            .body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("");
        let msg = self
            .body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("");
        format!("{} {code}: {msg}", self.status)
    }
}

pub struct GraphClient {
    http: reqwest::Client,
    endpoint: String,
    credential: Credential,
    scale: AtomicU64,
    discover: bool,
    retry: RetryPolicy,
    pub stats: GraphStats,
}

fn retry_after(v: Option<&str>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 3600.0)
        .map(Duration::from_secs_f64)
}

impl GraphClient {
    /// `endpoint` is `https://graph.microsoft.com` or the emulator's listener;
    /// `time_scale` as for ARM (`None`: Azure time unless the endpoint announces
    /// the emulator's).
    pub fn new(endpoint: &str, credential: Credential, time_scale: Option<f64>) -> GraphClient {
        GraphClient::with_http(endpoint, credential, time_scale, GraphClient::http())
    }

    /// The HTTP client a [`GraphClient`] sends with (see
    /// [`crate::cloud::client::ArmClient::http`]).
    pub fn http() -> reqwest::Client {
        super::install_crypto();
        reqwest::Client::builder()
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(100))
            .build()
            .expect("the HTTP client builds with a crypto provider installed")
    }

    /// [`GraphClient::new`], sending with `http` (from [`GraphClient::http`]).
    pub fn with_http(
        endpoint: &str,
        credential: Credential,
        time_scale: Option<f64>,
        http: reqwest::Client,
    ) -> GraphClient {
        GraphClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            credential,
            scale: AtomicU64::new(time_scale.unwrap_or(1.0).to_bits()),
            discover: time_scale.is_none(),
            retry: RetryPolicy::default(),
            stats: GraphStats::default(),
        }
    }

    pub fn requests(&self) -> GraphRequests {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GraphRequests {
            reads: g(&self.stats.reads),
            writes: g(&self.stats.writes),
            batches: g(&self.stats.batches),
            throttled: g(&self.stats.throttled),
        }
    }

    fn time_scale(&self) -> f64 {
        f64::from_bits(self.scale.load(Ordering::Relaxed))
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/v1.0{path}", self.endpoint)
        }
    }

    /// Send one request, retried per the policy (429 after Retry-After, 5xx,
    /// resets of reads); the final answer's status and JSON body.
    async fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), GraphError> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut attempt = 0;
        loop {
            let token = self.credential.bearer().await?;
            let mut rb = self.http.request(m.clone(), url).bearer_auth(token);
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let counter = match (method, url.ends_with("/$batch")) {
                (_, true) => &self.stats.batches,
                ("GET", _) => &self.stats.reads,
                _ => &self.stats.writes,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let failure = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if self.discover
                        && let Some(s) = resp
                            .headers()
                            .get(TIME_SCALE_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<f64>().ok())
                            .filter(|s| *s > 0.0 && *s <= 1.0)
                    {
                        self.scale.store(s.to_bits(), Ordering::Relaxed);
                    }
                    let ra = retry_after(
                        resp.headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()),
                    );
                    let bytes = resp.bytes().await.map_err(|source| GraphError::Http {
                        method: method.into(),
                        url: url.into(),
                        source,
                    })?;
                    let v: Value = if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).map_err(|e| GraphError::Unreadable {
                            url: url.into(),
                            reason: e.to_string(),
                        })?
                    };
                    if status == 429 || status >= 500 {
                        if status == 429 {
                            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        Failure::Status {
                            status,
                            code: None,
                            retry_after: ra,
                        }
                    } else {
                        return Ok((status, v));
                    }
                }
                Err(e) if method == "GET" => {
                    let _ = e;
                    Failure::Connection
                }
                Err(source) => {
                    return Err(GraphError::Http {
                        method: method.into(),
                        url: url.into(),
                        source,
                    });
                }
            };
            match self.retry.verdict(&failure, attempt, method == "GET") {
                Verdict::RetryAfter(wait) => {
                    tokio::time::sleep(wait.mul_f64(self.time_scale())).await;
                    attempt += 1;
                }
                Verdict::GiveUp => {
                    let Failure::Status { status, .. } = failure else {
                        unreachable!("connection failures of writes return above")
                    };
                    return Err(GraphError::Api {
                        method: method.into(),
                        url: url.into(),
                        status,
                        code: "TooManyRequests".into(),
                        message: format!("still refused after {} attempts", attempt + 1),
                    });
                }
            }
        }
    }

    fn check(method: &str, url: &str, (status, body): (u16, Value)) -> Result<Value, GraphError> {
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(GraphError::Api {
            method: method.into(),
            url: url.into(),
            status,
            code: body
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            message: body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
        })
    }

    /// Every item of a collection, following `@odata.nextLink`.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, GraphError> {
        let mut url = self.url(path);
        let mut out = Vec::new();
        loop {
            let page = Self::check("GET", &url, self.send("GET", &url, None).await?)?;
            if let Some(items) = page.get("value").and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                // The link is absolute, on whatever host answered.
                Some(next) => url = next.to_string(),
                None => return Ok(out),
            }
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, GraphError> {
        let url = self.url(path);
        Self::check("POST", &url, self.send("POST", &url, Some(body)).await?)
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<(), GraphError> {
        let url = self.url(path);
        Self::check("PATCH", &url, self.send("PATCH", &url, Some(body)).await?).map(|_| ())
    }

    /// Run `items` in `$batch`es of at most 20; an item answered 429 or 5xx is
    /// sent again by itself in the next batch (after the longest Retry-After of
    /// the round), until the retry policy gives up. The results are in `items`'
    /// order.
    pub async fn batch(&self, items: &[BatchItem]) -> Result<Vec<BatchResult>, GraphError> {
        let mut results: Vec<Option<BatchResult>> = vec![None; items.len()];
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let mut again = Vec::new();
            let mut wait: Option<Duration> = None;
            for chunk in pending.chunks(MAX_BATCH) {
                let requests: Vec<Value> = chunk
                    .iter()
                    .map(|&i| {
                        let it = &items[i];
                        let mut r =
                            json!({"id": i.to_string(), "method": it.method, "url": it.url});
                        if let Some(b) = &it.body {
                            r["body"] = b.clone();
                            r["headers"] = json!({"Content-Type": "application/json"});
                        }
                        r
                    })
                    .collect();
                let url = self.url("/$batch");
                let answer = Self::check(
                    "POST",
                    &url,
                    self.send("POST", &url, Some(&json!({"requests": requests})))
                        .await?,
                )?;
                for r in answer
                    .get("responses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(i) = r["id"].as_str().and_then(|s| s.parse::<usize>().ok()) else {
                        continue;
                    };
                    let status = r["status"].as_u64().unwrap_or(0) as u16;
                    if status == 429 || status >= 500 {
                        if status == 429 {
                            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        let ra = retry_after(
                            r.pointer("/headers/Retry-After")
                                .or_else(|| r.pointer("/headers/retry-after"))
                                .and_then(Value::as_str),
                        );
                        let failure = Failure::Status {
                            status,
                            code: None,
                            retry_after: ra,
                        };
                        match self.retry.verdict(&failure, attempt, true) {
                            Verdict::RetryAfter(w) => {
                                wait = Some(wait.map_or(w, |x| x.max(w)));
                                again.push(i);
                                continue;
                            }
                            Verdict::GiveUp => {}
                        }
                    }
                    if i < results.len() {
                        results[i] = Some(BatchResult {
                            status,
                            body: r.get("body").cloned().unwrap_or(Value::Null),
                        });
                    }
                }
                // An item the batch did not answer is sent again.
                let unanswered: Vec<usize> = chunk
                    .iter()
                    .copied()
                    .filter(|&i| results[i].is_none() && !again.contains(&i))
                    .collect();
                again.extend(unanswered);
            }
            again.sort_unstable();
            again.dedup();
            if let Some(w) = wait {
                tokio::time::sleep(w.mul_f64(self.time_scale())).await;
            }
            attempt += 1;
            if attempt >= self.retry.max_attempts && !again.is_empty() {
                for i in again.drain(..) {
                    results[i] = Some(BatchResult {
                        status: 429,
                        body: json!({"error": {"code": "TooManyRequests", "message": format!("still refused after {attempt} attempts")}}),
                    });
                }
            }
            pending = again;
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every item answered"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_may_be_fractional_and_is_bounded() {
        assert_eq!(retry_after(Some("1.5")), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(Some(" 2 ")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some("soon")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(Some("1e9")), None);
        assert_eq!(retry_after(None), None);
    }
}
