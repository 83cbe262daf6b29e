//! A Blob Storage data-plane client: the few operations lifeboat's shared state
//! needs (containers, block and append blobs, leases, metadata, listing), signed
//! with Shared Key (a connection string, as for Azurite) or an Entra ID bearer
//! token from the same `--auth` chain as the ARM client.
//!
//! Like the ARM client, it retries through [`RetryPolicy`] (5xx and, for
//! requests that are safe to repeat, a broken connection) and never loops at call
//! sites. Conditional failures (412, 409 lease conflicts) are returned as typed
//! errors for the caller to decide: they are answers, not faults. It never
//! decides what to store; `state::blob` does.
//!
//! Why not `azure_storage_blob`: it is pre-1.0, and it signs through
//! `azure_core`'s pipeline whose bearer policy refuses `http://` (Azurite).

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, StatusCode};

use crate::cloud::auth::Credential;
use crate::cloud::retry::{Failure, RetryPolicy, Verdict};

/// The REST version sent as `x-ms-version` (Azurite 3.37 knows it without
/// `--skipApiVersionCheck`; it has append-position conditions and 60 s leases).
pub const API_VERSION: &str = "2021-12-02";

/// Azurite's well-known development account (public, documented by Microsoft).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{method} answered HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        method: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error(
        "cannot reach Blob Storage at {endpoint} ({cause}); gave up after {attempts} attempt(s) over {:.1} s",
        waited.as_secs_f64()
    )]
    Unreachable {
        endpoint: String,
        cause: String,
        attempts: u32,
        waited: Duration,
    },
    #[error("{0}")]
    Auth(String),
    #[error("AZURE_STORAGE_CONNECTION_STRING: {0}")]
    ConnectionString(String),
}

impl BlobError {
    pub fn status(&self) -> Option<u16> {
        match self {
            BlobError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            BlobError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// How requests are authorised.
#[derive(Clone)]
pub enum BlobAuth {
    SharedKey { account: String, key: Vec<u8> },
    Bearer(Credential),
}

impl std::fmt::Debug for BlobAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobAuth::SharedKey { account, .. } => write!(f, "SharedKey({account})"),
            BlobAuth::Bearer(c) => write!(f, "Bearer({})", c.source()),
        }
    }
}

impl BlobAuth {
    pub fn describe(&self) -> String {
        match self {
            BlobAuth::SharedKey { .. } => "account key (AZURE_STORAGE_CONNECTION_STRING)".into(),
            BlobAuth::Bearer(c) => format!("Entra ID token ({})", c.source()),
        }
    }
}

/// What a connection string says (`AccountName`, `AccountKey`, `BlobEndpoint`,
/// or `UseDevelopmentStorage=true`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionString {
    pub account: String,
    pub key: Vec<u8>,
    pub blob_endpoint: String,
}

impl ConnectionString {
    pub fn parse(s: &str) -> Result<ConnectionString, BlobError> {
        use base64::Engine as _;
        let bad = |m: String| BlobError::ConnectionString(m);
        let mut fields = std::collections::HashMap::new();
        for (n, part) in s
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            // Never echo the segment: without its `=` it may be a bare key.
            let (k, v) = part.split_once('=').ok_or_else(|| {
                bad(format!(
                    "segment {} is not Key=Value (its text is not shown: it may be a secret)",
                    n + 1
                ))
            })?;
            fields.insert(k.to_ascii_lowercase(), v.to_string());
        }
        let dev = fields
            .get("usedevelopmentstorage")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let account = fields
            .get("accountname")
            .cloned()
            .or_else(|| dev.then(|| DEV_ACCOUNT.to_string()))
            .ok_or_else(|| bad("no AccountName".into()))?;
        let key_text = fields
            .get("accountkey")
            .cloned()
            .or_else(|| dev.then(|| DEV_KEY.to_string()))
            .ok_or_else(
                || bad("no AccountKey (SAS connection strings are not supported)".into()),
            )?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_text.trim())
            .map_err(|_| bad("AccountKey is not base64".into()))?;
        let blob_endpoint = match fields.get("blobendpoint") {
            Some(e) => e.trim_end_matches('/').to_string(),
            None if dev => format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"),
            None => {
                let proto = fields
                    .get("defaultendpointsprotocol")
                    .map_or("https", String::as_str);
                let suffix = fields
                    .get("endpointsuffix")
                    .map_or("core.windows.net", String::as_str);
                format!("{proto}://{account}.blob.{suffix}")
            }
        };
        Ok(ConnectionString {
            account,
            key,
            blob_endpoint,
        })
    }
}

/// Preconditions of a write.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// `If-None-Match: *`: only if the blob does not exist.
    pub if_none_match_any: bool,
    pub if_match: Option<String>,
    pub lease_id: Option<String>,
    /// Append Block only where the blob is exactly this long.
    pub append_position: Option<u64>,
}

impl Conditions {
    /// Only if the blob does not exist yet.
    pub const IF_ABSENT: Conditions = Conditions {
        if_none_match_any: true,
        if_match: None,
        lease_id: None,
        append_position: None,
    };
}

/// A create-once write that found the blob there already (409 `BlobAlreadyExists`,
/// or 412 for `If-None-Match: *`) did what it was for.
fn existing_is_fine(r: Result<Response, BlobError>) -> Result<(), BlobError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.status(), Some(409 | 412)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A blob's properties (from HEAD or GET).
#[derive(Debug, Clone, Default)]
pub struct Properties {
    pub length: u64,
    pub etag: String,
    /// `locked` / `unlocked`.
    pub lease_status: String,
    /// `available`, `leased`, `expired`, `breaking`, `broken`.
    pub lease_state: String,
    pub metadata: Vec<(String, String)>,
    pub committed_blocks: Option<u64>,
}

impl Properties {
    pub fn meta(&self, name: &str) -> Option<String> {
        self.metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_meta(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    Acquire { seconds: u32 },
    Renew,
    Release,
}

/// Metadata values are HTTP header values: ASCII only. Anything else (a user's
/// name with an accent) is percent-encoded, and decoded on read.
pub fn encode_meta(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn decode_meta(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One container of one storage account.
#[derive(Debug, Clone)]
pub struct BlobClient {
    http: reqwest::Client,
    /// `https://ACCOUNT.blob.core.windows.net` or Azurite's `http://127.0.0.1:10000/devstoreaccount1`.
    endpoint: String,
    account: String,
    container: String,
    auth: BlobAuth,
    pub retry: RetryPolicy,
}

/// One request, before signing (signed anew on every attempt: the date changes).
struct Request<'a> {
    method: Method,
    blob: Option<&'a str>,
    query: Vec<(&'static str, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
    /// Safe to send again after a broken connection.
    idempotent: bool,
}

impl<'a> Request<'a> {
    fn new(method: Method, blob: Option<&'a str>) -> Request<'a> {
        Request {
            method,
            blob,
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            idempotent: true,
        }
    }
    fn query(mut self, k: &'static str, v: &str) -> Self {
        self.query.push((k, v.to_string()));
        self
    }
    fn header(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn conditions(mut self, c: &Conditions) -> Self {
        if c.if_none_match_any {
            self = self.header("if-none-match", "*");
        }
        if let Some(e) = &c.if_match {
            self = self.header("if-match", e.clone());
        }
        if let Some(l) = &c.lease_id {
            self = self.header("x-ms-lease-id", l.clone());
        }
        if let Some(p) = c.append_position {
            self = self.header("x-ms-blob-condition-appendpos", p.to_string());
        }
        self
    }
}

/// The service's answer to one request.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn properties(&self) -> Properties {
        let num = |n: &str| self.header(n).and_then(|v| v.parse::<u64>().ok());
        let length = self
            .header("content-range")
            .and_then(|r| r.rsplit('/').next()?.parse().ok())
            .or_else(|| num("content-length"))
            .unwrap_or(0);
        Properties {
            length,
            etag: self.header("etag").unwrap_or_default().to_string(),
            lease_status: self.header("x-ms-lease-status").unwrap_or_default().into(),
            lease_state: self.header("x-ms-lease-state").unwrap_or_default().into(),
            metadata: self
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    let name = k.as_str().strip_prefix("x-ms-meta-")?;
                    Some((name.to_string(), v.to_str().ok()?.to_string()))
                })
                .collect(),
            committed_blocks: num("x-ms-blob-committed-block-count"),
        }
    }
}

/// The `<Code>`/`<Message>` of an XML error body.
fn xml_field(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(xml_unescape(&body[start..end]))
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The blob names and the next marker of one List Blobs page.
fn parse_list(body: &str) -> (Vec<(String, u64)>, Option<String>) {
    let mut names = Vec::new();
    let mut rest = body;
    while let Some(p) = rest.find("<Blob>") {
        let blob = &rest[p..];
        let end = blob
            .find("</Blob>")
            .map_or(blob.len(), |e| e + "</Blob>".len());
        let item = &blob[..end];
        if let Some(name) = xml_field(item, "Name") {
            let len = xml_field(item, "Content-Length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            names.push((name, len));
        }
        rest = &blob[end..];
    }
    let marker = xml_field(body, "NextMarker").filter(|m| !m.is_empty());
    (names, marker)
}

/// Shared Key: the canonical string of a request (Blob service, version 2015-02-21
/// and later: an empty Content-Length for a zero-length body).
fn string_to_sign(
    method: &str,
    headers: &[(&str, String)],
    account: &str,
    path: &str,
    query: &[(&str, String)],
) -> String {
    let h = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    };
    let length = match h("content-length") {
        "0" => "",
        l => l,
    };
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .collect();
    ms.sort();
    let mut s = format!(
        "{method}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        h("content-encoding"),
        h("content-language"),
        h("content-md5"),
        h("content-type"),
        h("if-modified-since"),
        h("if-match"),
        h("if-none-match"),
        h("if-unmodified-since"),
        h("range"),
    );
    for (k, v) in ms {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&format!("/{account}{path}"));
    let mut q: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    q.sort();
    for (k, v) in q {
        s.push_str(&format!("\n{k}:{v}"));
    }
    s
}

fn sign(key: &[u8], text: &str) -> String {
    use base64::Engine as _;
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&k, text.as_bytes()))
}

/// Percent-encode all but ASCII letters, digits and `keep` (RFC 3986's unreserved
/// characters are `-._~`; a blob path keeps `/` too).
fn percent_encode(v: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl BlobClient {
    pub fn new(endpoint: &str, account: &str, container: &str, auth: BlobAuth) -> BlobClient {
        crate::cloud::install_crypto();
        let http = reqwest::Client::builder()
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client builds with the default TLS configuration");
        BlobClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            account: account.to_string(),
            container: container.to_string(),
            auth,
            // Short: state operations sit on the critical path of an apply, and
            // a store that is gone for longer must fail clearly, not hang.
            retry: RetryPolicy {
                max_attempts: 6,
                base: Duration::from_millis(250),
                cap: Duration::from_secs(4),
            },
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
    pub fn auth(&self) -> &BlobAuth {
        &self.auth
    }

    /// `azblob://ACCOUNT/CONTAINER/NAME`, for messages.
    pub fn location(&self, name: &str) -> String {
        format!("azblob://{}/{}/{name}", self.account, self.container)
    }

    /// Send `req` with retries; a non-2xx answer that is not transient is returned
    /// as [`BlobError::Status`].
    async fn send(&self, req: Request<'_>) -> Result<Response, BlobError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let failure = match self.send_once(&req).await {
                Ok(r) if (200..300).contains(&r.status) => return Ok(r),
                Ok(r) => {
                    let err = self.status_error(&req, &r);
                    let retry_after = r
                        .header("retry-after")
                        .and_then(|s| s.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let f = Failure::Status {
                        status: r.status,
                        code: err.code().map(str::to_string),
                        retry_after,
                    };
                    match self.retry.verdict(&f, attempt, req.idempotent) {
                        Verdict::GiveUp => return Err(err),
                        Verdict::RetryAfter(d) => {
                            tokio::time::sleep(d).await;
                            attempt += 1;
                            continue;
                        }
                    }
                }
                Err(cause) => cause,
            };
            match self
                .retry
                .verdict(&Failure::Connection, attempt, req.idempotent)
            {
                Verdict::RetryAfter(d) => {
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                Verdict::GiveUp => {
                    return Err(BlobError::Unreachable {
                        endpoint: self.endpoint.clone(),
                        cause: failure,
                        attempts: attempt + 1,
                        waited: started.elapsed(),
                    });
                }
            }
        }
    }

    fn status_error(&self, req: &Request<'_>, r: &Response) -> BlobError {
        let text = String::from_utf8_lossy(&r.body);
        let code = r
            .header("x-ms-error-code")
            .map(str::to_string)
            .or_else(|| xml_field(&text, "Code"));
        let message = xml_field(&text, "Message")
            .map(|m| m.lines().next().unwrap_or_default().to_string())
            .unwrap_or_else(|| {
                StatusCode::from_u16(r.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_string()
            });
        BlobError::Status {
            method: req.method.to_string(),
            status: r.status,
            code,
            message,
        }
    }

    /// One attempt; `Err` is a connection-level failure (no HTTP answer).
    async fn send_once(&self, req: &Request<'_>) -> Result<Response, String> {
        let mut path = format!("/{}", self.container);
        if let Some(b) = req.blob {
            path.push('/');
            path.push_str(&percent_encode(b, b"-._~/"));
        }
        let base_path = self
            .endpoint
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .unwrap_or_default();
        let mut url = format!("{}{path}", self.endpoint);
        for (i, (k, v)) in req.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{k}={}", percent_encode(v, b"-._~")));
        }
        let date = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let mut headers: Vec<(&str, String)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        headers.push(("x-ms-date", date));
        headers.push(("x-ms-version", API_VERSION.to_string()));
        let length = req.body.len().to_string();
        if req.method == Method::PUT || !req.body.is_empty() {
            headers.push(("content-length", length));
        }
        let authorization = match &self.auth {
            BlobAuth::SharedKey { account, key } => {
                let text = string_to_sign(
                    req.method.as_str(),
                    &headers,
                    account,
                    &format!("{base_path}{path}"),
                    &req.query,
                );
                format!("SharedKey {account}:{}", sign(key, &text))
            }
            BlobAuth::Bearer(c) => format!(
                "Bearer {}",
                c.bearer().await.map_err(|e| format!("token: {e}"))?
            ),
        };
        let mut rb = self
            .http
            .request(req.method.clone(), &url)
            .header("authorization", authorization);
        for (k, v) in &headers {
            // reqwest sets Content-Length from a non-empty body itself; an empty
            // PUT needs it said (Azurite rejects one without it).
            if *k != "content-length" || req.body.is_empty() {
                rb = rb.header(*k, v);
            }
        }
        let resp = rb
            .body(req.body.clone())
            .send()
            .await
            .map_err(|e| connection_cause(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| connection_cause(&e))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Create the container; an existing one is fine.
    pub async fn create_container(&self) -> Result<(), BlobError> {
        let req = Request::new(Method::PUT, None).query("restype", "container");
        match self.send(req).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ContainerAlreadyExists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create a block blob with `body` and metadata once (`If-None-Match: *`); an
    /// existing blob is kept and is fine (another writer created it first).
    pub async fn create_block_blob(
        &self,
        name: &str,
        body: Bytes,
        content_type: &str,
        metadata: &[(&'static str, String)],
    ) -> Result<(), BlobError> {
        let mut req = Request::new(Method::PUT, Some(name))
            .header("x-ms-blob-type", "BlockBlob")
            .header("x-ms-blob-content-type", content_type);
        for (k, v) in metadata {
            req = req.header(format!("x-ms-meta-{k}"), encode_meta(v));
        }
        req.body = body;
        existing_is_fine(self.send(req.conditions(&Conditions::IF_ABSENT)).await)
    }

    /// Create an empty append blob once; an existing one is fine.
    pub async fn create_append_blob(&self, name: &str) -> Result<(), BlobError> {
        let req = Request::new(Method::PUT, Some(name))
            .header("x-ms-blob-type", "AppendBlob")
            .header("x-ms-blob-content-type", "application/x-ndjson")
            .conditions(&Conditions::IF_ABSENT);
        existing_is_fine(self.send(req).await)
    }

    /// Append Block: one atomic append. After a broken connection it is sent
    /// again only when the caller says a repeat is harmless (`repeat_safe`: with
    /// an append position a landed first attempt makes the repeat fail with 412).
    pub async fn append_block(
        &self,
        name: &str,
        data: Bytes,
        cond: &Conditions,
        repeat_safe: bool,
    ) -> Result<Properties, BlobError> {
        let mut req = Request::new(Method::PUT, Some(name))
            .query("comp", "appendblock")
            .conditions(cond);
        req.idempotent = repeat_safe;
        req.body = data;
        Ok(self.send(req).await?.properties())
    }

    /// The whole blob, or `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<(Bytes, Properties)>, BlobError> {
        self.get_range(name, None).await
    }

    /// Bytes `from..` (or the whole blob), or `None` when it does not exist.
    pub async fn get_range(
        &self,
        name: &str,
        from: Option<u64>,
    ) -> Result<Option<(Bytes, Properties)>, BlobError> {
        let mut req = Request::new(Method::GET, Some(name));
        if let Some(f) = from {
            req = req.header("x-ms-range", format!("bytes={f}-"));
        }
        match self.send(req).await {
            Ok(r) => {
                let p = r.properties();
                Ok(Some((r.body, p)))
            }
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Get Blob Properties (HEAD), or `None` when it does not exist.
    pub async fn properties(&self, name: &str) -> Result<Option<Properties>, BlobError> {
        match self.send(Request::new(Method::HEAD, Some(name))).await {
            Ok(r) => Ok(Some(r.properties())),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lease Blob. Acquire proposes `lease_id`, so a repeat after a lost answer
    /// is the same acquisition, not a conflict.
    pub async fn lease(
        &self,
        name: &str,
        action: LeaseAction,
        lease_id: &str,
    ) -> Result<(), BlobError> {
        let mut req = Request::new(Method::PUT, Some(name)).query("comp", "lease");
        req = match action {
            LeaseAction::Acquire { seconds } => req
                .header("x-ms-lease-action", "acquire")
                .header("x-ms-lease-duration", seconds.to_string())
                .header("x-ms-proposed-lease-id", lease_id),
            LeaseAction::Renew => req
                .header("x-ms-lease-action", "renew")
                .header("x-ms-lease-id", lease_id),
            LeaseAction::Release => req
                .header("x-ms-lease-action", "release")
                .header("x-ms-lease-id", lease_id),
        };
        self.send(req).await.map(|_| ())
    }

    /// Replace a blob's metadata (under its lease, when it has one).
    pub async fn set_metadata(
        &self,
        name: &str,
        metadata: &[(&'static str, String)],
        cond: &Conditions,
    ) -> Result<(), BlobError> {
        let mut req = Request::new(Method::PUT, Some(name))
            .query("comp", "metadata")
            .conditions(cond);
        for (k, v) in metadata {
            req = req.header(format!("x-ms-meta-{k}"), encode_meta(v));
        }
        self.send(req).await.map(|_| ())
    }

    /// Delete a blob; a missing one is fine.
    pub async fn delete(&self, name: &str) -> Result<(), BlobError> {
        match self.send(Request::new(Method::DELETE, Some(name))).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every blob under `prefix` (name, length), following the pages.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BlobError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut req = Request::new(Method::GET, None)
                .query("restype", "container")
                .query("comp", "list")
                .query("prefix", prefix);
            if let Some(m) = &marker {
                req = req.query("marker", m);
            }
            let r = self.send(req).await?;
            let (names, next) = parse_list(&String::from_utf8_lossy(&r.body));
            out.extend(names);
            match next {
                Some(m) => marker = Some(m),
                None => return Ok(out),
            }
        }
    }
}

fn connection_cause(e: &reqwest::Error) -> String {
    let mut cause = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    cause
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let dev = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(dev.account, "devstoreaccount1");
        assert_eq!(dev.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(dev.key.len(), 64);
        let azurite = ConnectionString::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1;"
        ))
        .unwrap();
        assert_eq!(
            azurite.blob_endpoint,
            "http://127.0.0.1:41234/devstoreaccount1"
        );
        let azure =
            ConnectionString::parse(&format!("AccountName=lbstate;AccountKey={DEV_KEY}")).unwrap();
        assert_eq!(azure.blob_endpoint, "https://lbstate.blob.core.windows.net");
        for bad in [
            "AccountName=x",
            "AccountName=x;AccountKey=!!notbase64",
            "garbage",
        ] {
            assert!(ConnectionString::parse(bad).is_err(), "{bad}");
        }
        // A bare key (its `AccountKey=` label lost) is never echoed (#15).
        let bare = DEV_KEY.trim_end_matches('=');
        let e = ConnectionString::parse(&format!("AccountName=x;{bare}"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("segment 2 is not Key=Value"), "{e}");
        assert!(!e.contains(&DEV_KEY[..12]), "{e}");
    }

    /// The canonical string follows the documented Shared Key layout: twelve
    /// standard header lines, sorted x-ms headers, then the account-qualified
    /// path and sorted query parameters; a zero length is left empty.
    #[test]
    fn shared_key_string_to_sign() {
        let headers = vec![
            ("x-ms-version", API_VERSION.to_string()),
            ("x-ms-date", "Thu, 03 Dec 2026 16:00:00 GMT".to_string()),
            ("content-length", "0".to_string()),
            ("if-none-match", "*".to_string()),
            ("x-ms-blob-type", "AppendBlob".to_string()),
        ];
        let s = string_to_sign(
            "PUT",
            &headers,
            "devstoreaccount1",
            "/devstoreaccount1/lifeboat/audit.jsonl",
            &[("comp", "appendblock".into())],
        );
        let want = "PUT\n\n\n\n\n\n\n\n\n*\n\n\nx-ms-blob-type:AppendBlob\nx-ms-date:Thu, 03 Dec 2026 16:00:00 GMT\nx-ms-version:2021-12-02\n/devstoreaccount1/devstoreaccount1/lifeboat/audit.jsonl\ncomp:appendblock";
        assert_eq!(s, want);
        // HMAC-SHA256 over it with the account key, base64: stable for a given input.
        let key = ConnectionString::parse("UseDevelopmentStorage=true")
            .unwrap()
            .key;
        assert_eq!(sign(&key, &s), sign(&key, want));
        assert_ne!(sign(&key, &s), sign(&key, &(want.to_string() + "x")));
    }

    #[test]
    fn list_pages_and_errors_parse() {
        let body = "<?xml version=\"1.0\"?><EnumerationResults><Prefix>journal/</Prefix><Blobs><Blob><Name>journal/a&amp;b/0000.jsonl</Name><Properties><Content-Length>12</Content-Length></Properties></Blob><Blob><Name>journal/c/0000.jsonl</Name><Properties><Content-Length>0</Content-Length></Properties></Blob></Blobs><NextMarker>m2</NextMarker></EnumerationResults>";
        let (names, next) = parse_list(body);
        assert_eq!(
            names,
            vec![
                ("journal/a&b/0000.jsonl".to_string(), 12),
                ("journal/c/0000.jsonl".to_string(), 0)
            ]
        );
        assert_eq!(next.as_deref(), Some("m2"));
        let (_, none) =
            parse_list("<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>");
        assert_eq!(none, None);
        let err = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>LeaseAlreadyPresent</Code><Message>There is already a lease present.\nRequestId:x</Message></Error>";
        assert_eq!(
            xml_field(err, "Code").as_deref(),
            Some("LeaseAlreadyPresent")
        );
    }

    #[test]
    fn metadata_values_survive_non_ascii() {
        for v in ["José Müller", "100%", "plain", ""] {
            let e = encode_meta(v);
            assert!(e.is_ascii());
            assert_eq!(decode_meta(&e), v);
        }
    }
}
