//! Long-running operations as ARM shapes them per family (see the recordings):
//! the 201/202 replies with `Azure-AsyncOperation`/`Location`/`Retry-After`, the
//! operation status endpoints, and the 409 for a resource whose operation runs.

use super::*;

impl Emulator {
    pub(super) fn busy(op: &Operation, now: u64, retry: String) -> Reply {
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

    pub(super) fn new_operation(
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

    pub(super) fn location_of(body: &Value) -> String {
        body.get("location")
            .and_then(Value::as_str)
            .unwrap_or("westeurope")
            .to_string()
            .replace(' ', "")
            .to_ascii_lowercase()
    }

    /// URLs to poll, per family.
    #[allow(clippy::too_many_arguments)] // one call shape per family; a struct would only rename them
    pub(super) fn op_headers(
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

    pub(super) fn operation_status(
        &self,
        token: &str,
        location_style: bool,
        req: &Request,
    ) -> Reply {
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
}
