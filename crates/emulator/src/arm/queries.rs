//! The read-only query endpoints: Azure Resource Graph (its tables as Microsoft
//! documents them, inline children, `project`, paging by `$skipToken`, and an
//! indexing lag: a write shows in its row only `--graph-lag` Azure-seconds after
//! it completed) and the Log Analytics query API (`api/query`).

use super::*;
use crate::query::Table;

impl Emulator {
    /// A Log Analytics query through ARM (`<workspace>/api/query`). The emulated
    /// workspace holds one table, `LifeboatLogShipping_CL`: the log-shipping
    /// monitor row every SQL VM reports (its latest, as `arg_max` would give).
    pub(super) fn log_query(&self, req: &Request) -> Reply {
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
        // `| where ResourceId =~ '<id>'`: one VM's row (the DAP preflight).
        let only = text
            .split_once("ResourceId =~ '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(id, _)| id.to_ascii_lowercase());
        let rows: Vec<Value> = all
            .iter()
            .filter(|r| r.shipping.is_some())
            .filter(|r| only.as_ref().is_none_or(|id| r.id.key() == id))
            .filter_map(|r| {
                let m = crate::sql::monitor(
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

    /// Alerts Management's fired alerts (`Alerts_GetAll`): lifeboat's log alert
    /// rules evaluated now, on the emulator's clock, against what the SQL VMs
    /// would report. The emulator does not run KQL: it recognises the three
    /// rules the templates render by their queries (`age_min > N` over the
    /// newest copied log backup; no monitor row, i.e. the VM is not running)
    /// and evaluates those; any other rule never fires here.
    pub(super) fn fired_alerts(&self, req: &Request, subscription: &str) -> Reply {
        if query_param(&req.query, "api-version").is_none() {
            return Reply::error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        let now = now_ms();
        let all = match self.store.scan() {
            Ok(a) => a,
            Err(e) => return Reply::error(500, "InternalServerError", &e.to_string()),
        };
        let mut fired = Vec::new();
        for rule in all.iter().filter(|r| {
            r.resource_type
                .eq_ignore_ascii_case("Microsoft.Insights/scheduledQueryRules")
                && r.id.subscription().eq_ignore_ascii_case(subscription)
        }) {
            let Some(body) = self.view_with(rule, now, &[]) else {
                continue;
            };
            if body.pointer("/properties/enabled") == Some(&Value::Bool(false)) {
                continue;
            }
            let query = body
                .pointer("/properties/criteria/allOf/0/query")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(vm_id) = query
                .split_once("ResourceId =~ '")
                .and_then(|(_, rest)| rest.split_once('\''))
                .and_then(|(id, _)| lifeboat_core::id::ResourceId::parse(id).ok())
            else {
                continue;
            };
            let vm = all.get(&vm_id);
            let running = vm.is_some_and(|v| self.power(v, now).as_deref() == Some("running"));
            let firing = if query.contains("isnull(last)") {
                !running
            } else if let Some(limit) = query
                .split_once("age_min > ")
                .and_then(|(_, n)| n.trim().parse::<i64>().ok())
            {
                // A VM that is down reports nothing: its last row says nothing new.
                vm.filter(|_| running)
                    .and_then(|v| {
                        crate::sql::monitor(
                            v,
                            now,
                            self.cfg.time_scale,
                            self.cfg.faults.shipping_stop_s,
                        )
                    })
                    .and_then(|row| {
                        let t = |k: &str| {
                            row.get(k)
                                .and_then(Value::as_str)
                                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                        };
                        Some((t("now_utc")? - t("last_copied_date_utc")?).as_secs() / 60)
                    })
                    .is_some_and(|age| age > limit)
            } else {
                false
            };
            if !firing {
                continue;
            }
            let severity = body
                .pointer("/properties/severity")
                .and_then(Value::as_u64)
                .unwrap_or(3);
            let target = body
                .pointer("/properties/scopes/0")
                .and_then(Value::as_str)
                .unwrap_or("");
            let alert_id = lifeboat_core::model::naming::stable_guid(rule.id.key());
            fired.push(json!({
                "id": format!("/subscriptions/{subscription}/providers/Microsoft.AlertsManagement/alerts/{alert_id}"),
                "type": "Microsoft.AlertsManagement/alerts",
                "name": rule.id.name(),
                "properties": {"essentials": {
                    "severity": format!("Sev{severity}"),
                    "signalType": "Log",
                    "alertState": "New",
                    "monitorCondition": "Fired",
                    "monitorService": "Log Alerts V2",
                    "targetResource": target,
                    "targetResourceType": "microsoft.operationalinsights/workspaces",
                    "alertRule": shape::canonical_id(rule.id.as_str()),
                    "description": body.pointer("/properties/description").cloned().unwrap_or(Value::Null),
                    "startDateTime": lifeboat_core::clock::stamp(),
                    "lastModifiedDateTime": lifeboat_core::clock::stamp(),
                }},
            }));
        }
        Reply::json(200, &json!({"value": fired}))
    }

    pub(super) fn resource_graph(&self, req: &Request) -> Reply {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let top = body
            .pointer("/options/$top")
            .and_then(Value::as_u64)
            .unwrap_or(1000)
            .clamp(1, 1000) as usize;
        let mut pages = self.pages.lock().expect("pages");
        pages.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(600));
        let cursor =
            if let Some(token) = body.pointer("/options/$skipToken").and_then(Value::as_str) {
                match pages.remove(token) {
                    Some((_, c)) => c,
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
                let snap = match self.store.scan() {
                    Ok(a) => a,
                    Err(e) => return Reply::error(500, "InternalServerError", &e.to_string()),
                };
                let rows = self.matching(&snap, text, &subs, &q, now);
                Cursor {
                    snap,
                    rows,
                    next: 0,
                    now,
                    q,
                }
            };
        let mut cursor = cursor;
        let total = cursor.rows.len();
        let end = (cursor.next + top).min(total);
        let page: Vec<Arc<str>> = cursor.rows[cursor.next..end]
            .iter()
            .filter_map(|r| self.indexed_row(r, &cursor))
            .collect();
        cursor.next = end;
        // The page is written around the rows' JSON as indexed.
        let mut out = Vec::with_capacity(page.iter().map(|r| r.len() + 1).sum::<usize>() + 256);
        out.extend_from_slice(
            format!(
                "{{\"totalRecords\":{total},\"count\":{},\"data\":[",
                page.len()
            )
            .as_bytes(),
        );
        for (i, row) in page.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(row.as_bytes());
        }
        out.extend_from_slice(b"],\"facets\":[],\"resultTruncated\":\"false\"");
        if end < total {
            let token = format!("{:032x}", fastrand::u128(..));
            out.extend_from_slice(format!(",\"$skipToken\":\"{token}\"").as_bytes());
            pages.insert(token, (Instant::now(), cursor));
        }
        out.push(b'}');
        let mut reply = Reply::empty(200).header("content-type", "application/json; charset=utf-8");
        reply.body = out;
        reply
    }

    /// The resources `q` (as `text`, over `subs`) has rows for at `now`.
    /// Which resources are rows is decided on their top-level fields (all the
    /// `where` clause can name); rows are built only for the page served, so
    /// a query costs its pages, not the fleet's bodies. The answer is kept
    /// for as long as it cannot change: the same snapshot (no write since)
    /// and no resource's visibility due to change (an indexing lag ending, a
    /// delete completing, an image version appearing).
    fn matching(
        &self,
        snap: &Arc<crate::store::Snapshot>,
        text: &str,
        subs: &[String],
        q: &Query,
        now: u64,
    ) -> Vec<Arc<StoredResource>> {
        let same = |m: &Matched| {
            Arc::ptr_eq(&m.snap, snap)
                && m.text == text
                && m.subs == subs
                && (m.from_ms..m.until_ms).contains(&now)
        };
        if let Some(m) = self
            .matched
            .lock()
            .expect("matched")
            .iter()
            .find(|m| same(m))
        {
            return m.rows.clone();
        }
        let mut until_ms = u64::MAX;
        let rows: Vec<Arc<StoredResource>> = snap
            .shared()
            .filter(|r| Table::of(&r.resource_type).is_some_and(|t| q.tables.contains(&t)))
            .filter(|r| {
                let sub = r.id.subscription();
                subs.is_empty() || subs.iter().any(|s| s.eq_ignore_ascii_case(sub))
            })
            .filter(|r| {
                if let Some(t) = changes_at(r, now) {
                    until_ms = until_ms.min(t);
                }
                let shown = match &r.indexing {
                    Some(i) if now < i.at_ms => i.previous.as_ref(),
                    _ if gone(r, now) => None,
                    _ => Some(&r.body),
                };
                shown.is_some_and(|b| q.matches_resource(r, b))
            })
            .cloned()
            .collect();
        let mut matched = self.matched.lock().expect("matched");
        // One answer per query kept (lifeboat sends two); the oldest goes.
        matched.retain(|m| !(m.text == text && m.subs == subs));
        if matched.len() >= 8 {
            matched.remove(0);
        }
        matched.push(Matched {
            snap: snap.clone(),
            text: text.to_string(),
            subs: subs.to_vec(),
            from_ms: now,
            until_ms,
            rows: rows.clone(),
        });
        rows
    }

    /// One resource's row, as Resource Graph has indexed it when the cursor was
    /// opened; `None` when it has no row. A settled resource's row (no write
    /// younger than the index lag, no operation, build or replication still
    /// running) depends on nothing but the resource and its inline children, so
    /// it is kept and served again until one of them changes, as Resource
    /// Graph serves rows from its index rather than from the providers.
    fn indexed_row(&self, r: &Arc<StoredResource>, cursor: &Cursor) -> Option<Arc<str>> {
        let now = cursor.now;
        // What ARG has indexed: the resource as it was before a write younger
        // than the lag.
        if let Some(i) = &r.indexing
            && now < i.at_ms
        {
            let row = cursor.q.projected(query::row(r, i.previous.clone()?));
            return Some(row.to_string().into());
        }
        let kids: Vec<&Arc<StoredResource>> =
            if shape::inline_kinds(&r.resource_type).next().is_some() {
                cursor.snap.children_shared(&r.id)
            } else {
                Vec::new()
            };
        let key = r.id.key();
        if let Some(hit) = self.rows.lock().expect("rows").get(key)
            && hit.serves(r, &kids, &cursor.q.project)
        {
            return hit.json.clone();
        }
        let owned: Vec<StoredResource> = kids.iter().map(|k| k.as_ref().clone()).collect();
        let json: Option<Arc<str>> = self
            .view_with(r, now, &owned)
            .map(|v| cursor.q.projected(query::row(r, v)).to_string().into());
        if std::iter::once(r)
            .chain(kids.iter().copied())
            .all(|x| settled(x, now))
        {
            self.rows.lock().expect("rows").insert(
                key.to_string(),
                IndexedRow {
                    resource: r.clone(),
                    kids: kids.into_iter().cloned().collect(),
                    project: cursor.q.project.clone(),
                    json: json.clone(),
                },
            );
        }
        json
    }
}

/// The next time after `now` at which whether `r` is shown, or as what,
/// changes with the clock alone (what [`gone`] and the indexing lag read).
fn changes_at(r: &StoredResource, now: u64) -> Option<u64> {
    let deleting = r
        .operation
        .as_ref()
        .filter(|op| op.kind == crate::store::OpKind::Delete && op.failure.is_none())
        .map(|op| op.done_ms);
    [
        r.indexing.as_ref().map(|i| i.at_ms),
        deleting,
        r.visible_from_ms,
    ]
    .into_iter()
    .flatten()
    .filter(|&t| t > now)
    .min()
}

/// The resources a Resource Graph query matched, and how long that holds.
pub(super) struct Matched {
    snap: Arc<crate::store::Snapshot>,
    text: String,
    subs: Vec<String>,
    from_ms: u64,
    /// The first time a matched or unmatched resource's visibility changes.
    until_ms: u64,
    rows: Vec<Arc<StoredResource>>,
}

/// Nothing about the resource changes with the clock any more: its operation,
/// build, replication and indexing are over.
fn settled(r: &StoredResource, now: u64) -> bool {
    r.operation.as_ref().is_none_or(|o| now >= o.done_ms)
        && r.visible_from_ms.is_none_or(|t| now >= t)
        && r.replicated_ms.is_none_or(|t| now >= t)
        && r.indexing.as_ref().is_none_or(|i| now >= i.at_ms)
}

/// A settled resource's row as served (`None`: no row), with what it was made
/// from: the same stored resource and children (held, so compared by
/// identity) and the same projection serve it again.
pub(super) struct IndexedRow {
    resource: Arc<StoredResource>,
    kids: Vec<Arc<StoredResource>>,
    project: Option<Vec<String>>,
    json: Option<Arc<str>>,
}

impl IndexedRow {
    fn serves(
        &self,
        r: &Arc<StoredResource>,
        kids: &[&Arc<StoredResource>],
        project: &Option<Vec<String>>,
    ) -> bool {
        Arc::ptr_eq(&self.resource, r)
            && self.kids.len() == kids.len()
            && self.kids.iter().zip(kids).all(|(a, b)| Arc::ptr_eq(a, b))
            && &self.project == project
    }
}

/// A Resource Graph result being paged: the snapshot it was taken from, the
/// resources that are its rows, and where the next page starts.
pub(super) struct Cursor {
    snap: Arc<crate::store::Snapshot>,
    rows: Vec<Arc<StoredResource>>,
    next: usize,
    now: u64,
    q: Query,
}
