//! The ARM asynchronous-operation protocol, as data: where to poll, how long to wait,
//! and what a status body means. The client's polling loop is driven by these
//! functions and nothing else.
//!
//! Rules (ARM RPC, "Asynchronous operations", and the recordings in
//! `shared/azure/recordings`): `Azure-AsyncOperation` is preferred over `Location`;
//! an Azure-AsyncOperation URL answers 200 with `{"status": InProgress|Succeeded|
//! Failed|Canceled, "error"?}`; a Location URL answers 202 while running and
//! 200/204 when done. The wait between polls is the response's `retry-after-ms` /
//! `x-ms-retry-after-ms` (as the Azure SDKs read them) or `Retry-After` in seconds,
//! else the configured default (60 s on real Azure).

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollUrl {
    AsyncOperation(String),
    Location(String),
}

impl PollUrl {
    pub fn url(&self) -> &str {
        match self {
            PollUrl::AsyncOperation(u) | PollUrl::Location(u) => u,
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Where to poll for the outcome of the request that returned `h`, if anywhere.
pub fn poll_url(h: &HeaderMap) -> Option<PollUrl> {
    header(h, "azure-asyncoperation")
        .map(|u| PollUrl::AsyncOperation(u.to_string()))
        .or_else(|| header(h, "location").map(|u| PollUrl::Location(u.to_string())))
}

/// The server's requested wait, if it gave one.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = header(h, name).and_then(|v| v.parse::<f64>().ok()) {
            return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
        }
    }
    let v = header(h, "retry-after")?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // An HTTP date (RFC 7231 allows it); ARM itself sends seconds.
    let at = jiff::fmt::rfc2822::parse(v).ok()?;
    let now = jiff::Timestamp::now();
    let secs = (at.timestamp().as_second() - now.as_second()).max(0) as u64;
    Some(Duration::from_secs(secs))
}

/// An ARM error object `{"code","message",...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

impl ErrorInfo {
    /// From `{"error": {...}}` or a bare `{...}` error object; the raw text otherwise.
    pub fn from_body(body: &[u8]) -> Option<ErrorInfo> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let e = v.get("error").unwrap_or(&v);
        let code = e.get("code")?.as_str()?.to_string();
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Some(ErrorInfo { code, message })
    }
}

/// The state of a long-running operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpStatus {
    InProgress,
    Succeeded,
    Failed(ErrorInfo),
    Canceled(Option<ErrorInfo>),
}

/// Interpret one poll response.
pub fn status(url: &PollUrl, http_status: u16, body: &[u8]) -> OpStatus {
    match url {
        PollUrl::Location(_) => match http_status {
            202 => OpStatus::InProgress,
            200..=299 => OpStatus::Succeeded,
            _ => OpStatus::Failed(ErrorInfo::from_body(body).unwrap_or(ErrorInfo {
                code: format!("HTTP{http_status}"),
                message: String::from_utf8_lossy(body).into_owned(),
            })),
        },
        PollUrl::AsyncOperation(_) => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let s = v.get("status").and_then(Value::as_str).unwrap_or("");
            let err = || {
                v.get("error")
                    .and_then(|e| ErrorInfo::from_body(e.to_string().as_bytes()))
            };
            match s.to_ascii_lowercase().as_str() {
                "succeeded" => OpStatus::Succeeded,
                "failed" => OpStatus::Failed(err().unwrap_or(ErrorInfo {
                    code: "Failed".into(),
                    message: "the operation failed without an error object".into(),
                })),
                "canceled" | "cancelled" => OpStatus::Canceled(err()),
                // InProgress, Accepted, Running, Creating, Updating, Deleting...
                _ => OpStatus::InProgress,
            }
        }
    }
}

/// `provisioningState` values after which nothing runs on the resource.
pub fn is_terminal_state(state: &str) -> bool {
    matches!(
        state.to_ascii_lowercase().as_str(),
        "succeeded" | "failed" | "canceled"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn async_operation_is_preferred_over_location() {
        let h = headers(&[
            ("Location", "https://l"),
            ("Azure-AsyncOperation", "https://a"),
        ]);
        assert_eq!(
            poll_url(&h),
            Some(PollUrl::AsyncOperation("https://a".into()))
        );
        let h = headers(&[("Location", "https://l")]);
        assert_eq!(poll_url(&h), Some(PollUrl::Location("https://l".into())));
        assert_eq!(poll_url(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&headers(&[("Retry-After", "10")])),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(&headers(&[
                ("Retry-After", "10"),
                ("retry-after-ms", "250")
            ])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
        let past = retry_after(&headers(&[(
            "Retry-After",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        )]));
        assert_eq!(past, Some(Duration::ZERO));
    }

    #[test]
    fn status_bodies() {
        let a = PollUrl::AsyncOperation("u".into());
        assert_eq!(
            status(&a, 200, br#"{"status":"InProgress"}"#),
            OpStatus::InProgress
        );
        assert_eq!(
            status(&a, 200, br#"{"status":"Succeeded"}"#),
            OpStatus::Succeeded
        );
        assert_eq!(
            status(
                &a,
                200,
                br#"{"status":"Failed","error":{"code":"X","message":"m"}}"#
            ),
            OpStatus::Failed(ErrorInfo {
                code: "X".into(),
                message: "m".into()
            })
        );
        assert!(matches!(
            status(&a, 200, br#"{"status":"Canceled"}"#),
            OpStatus::Canceled(None)
        ));
        let l = PollUrl::Location("u".into());
        assert_eq!(status(&l, 202, b""), OpStatus::InProgress);
        assert_eq!(status(&l, 200, b""), OpStatus::Succeeded);
        assert_eq!(status(&l, 204, b""), OpStatus::Succeeded);
    }
}
