//! Carrying out a plan: a DAG walk over the plan's changes (and nothing else),
//! longest remaining path first, started at the pace of ARM's write and delete
//! quotas (the client's token buckets, corrected by 429 feedback) rather than a
//! fixed "N at once"; `--max-parallel` only caps it. A failed change skips its
//! dependants and nothing else. Every step is journalled (`started`, then `done`
//! or `failed`), and every step is idempotent, so a re-run after a crash resumes:
//! resources in doubt are first waited on until their operation settles.
//!
//! Secrets: a `$secret` reference becomes a generated password stored in the named
//! Key Vault on create (never read back, never logged or journalled); on update
//! write-only secrets are left out, as ARM does not allow changing them in place.
//! `$ref` values are read from the referenced resource just before the PUT.
//!
//! Never prints: progress goes out as [`Event`]s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cloud::client::{ArmClient, ArmError, StatsSnapshot};
use crate::cloud::ratelimit::Class;
use crate::state::{JournalEntry, JournalWriter};
use lifeboat_core::graph::{PowerState, ResourceId};
use lifeboat_core::plan::{Action, Change, Plan};

/// Progress, for the `ui` to render.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {
        id: String,
        action: Action,
        tenant: Option<String>,
    },
    Finished {
        id: String,
        action: Action,
        duration_ms: u64,
    },
    Failed {
        id: String,
        action: Action,
        error: String,
    },
    Skipped {
        id: String,
        action: Action,
        because: String,
    },
    /// Totals so far, after every finished change.
    Progress { done: usize, total: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceOutcome {
    pub id: String,
    pub tenant: Option<String>,
    pub action: Action,
    pub outcome: Outcome,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OutcomeSummary {
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// The final report object (DESIGN.md: makespan, critical path, requests by verb,
/// throttling, retries, per-resource outcomes).
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub format_version: String,
    pub plan: String,
    pub outcome: &'static str,
    pub summary: OutcomeSummary,
    pub makespan_ms: u64,
    pub critical_path_ms: u64,
    pub requests: StatsSnapshot,
    pub throttled: u64,
    pub retries: u64,
    pub max_in_flight: usize,
    pub resources: Vec<ResourceOutcome>,
    /// What the plan left waiting (front-ends whose HiX image is not built
    /// yet, or whose tenant is activated): not applied, and not done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<lifeboat_core::plan::Kept>,
}

pub struct ApplyOptions {
    /// Cap on changes in flight (`--max-parallel`); `None` = the quotas decide.
    pub max_parallel: Option<usize>,
    /// This run's id in the journal.
    pub run: String,
    /// Resources whose last journalled operation may still be running.
    pub in_doubt: Vec<ResourceId>,
    /// The plan's hash as saved (a resumed plan has finished changes blanked out).
    pub plan_hash: String,
}

/// Expected duration of a change in Azure seconds, to rank the critical path.
fn estimate(resource_type: &str, action: Action) -> u64 {
    let t = resource_type.to_ascii_lowercase();
    let put = match t.as_str() {
        // Front-ends are also deallocated after create (~60 s).
        "microsoft.compute/virtualmachines" => 150,
        "microsoft.storage/storageaccounts" => 25,
        "microsoft.keyvault/vaults" => 15,
        "microsoft.operationalinsights/workspaces" => 12,
        "microsoft.network/virtualnetworks" | "microsoft.network/loadbalancers" => 10,
        "microsoft.resources/resourcegroups" | "microsoft.authorization/roleassignments" => 1,
        _ => 5,
    };
    match action {
        Action::Replace => put + 60,
        Action::Delete => 30,
        _ => put,
    }
}

struct Dag {
    /// Nodes (changes that do something), as indexes into `plan.changes`.
    nodes: Vec<usize>,
    waits_for: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    priority: Vec<u64>,
}

fn build_dag(plan: &Plan) -> Dag {
    let nodes: Vec<usize> = plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.action != Action::NoOp)
        .map(|(i, _)| i)
        .collect();
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(n, &i)| (plan.changes[i].id.key(), n))
        .collect();
    let mut waits_for = vec![Vec::new(); nodes.len()];
    for (n, &i) in nodes.iter().enumerate() {
        let c = &plan.changes[i];
        for d in &c.depends_on {
            let Some(&m) = index.get(d.key()) else {
                continue;
            };
            if m == n {
                continue;
            }
            let other = &plan.changes[nodes[m]];
            match (c.action == Action::Delete, other.action == Action::Delete) {
                // Deletes run in reverse: what refers to X goes before X.
                (true, true) => waits_for[m].push(n),
                (false, false) => waits_for[n].push(m),
                _ => {}
            }
        }
    }
    for w in &mut waits_for {
        w.sort_unstable();
        w.dedup();
    }
    let mut dependents = vec![Vec::new(); nodes.len()];
    for (n, w) in waits_for.iter().enumerate() {
        for &m in w {
            dependents[m].push(n);
        }
    }
    // Longest remaining path: own estimate + the longest among dependants, in
    // reverse topological order (Kahn on the reversed edges).
    let mut priority = vec![0u64; nodes.len()];
    let mut pending: Vec<usize> = dependents.iter().map(Vec::len).collect();
    let mut stack: Vec<usize> = (0..nodes.len()).filter(|&n| pending[n] == 0).collect();
    while let Some(n) = stack.pop() {
        let c = &plan.changes[nodes[n]];
        let tail = dependents[n]
            .iter()
            .map(|&d| priority[d])
            .max()
            .unwrap_or(0);
        priority[n] = estimate(&c.resource_type, c.action) + tail;
        for &m in &waits_for[n] {
            pending[m] -= 1;
            if pending[m] == 0 {
                stack.push(m);
            }
        }
    }
    Dag {
        nodes,
        waits_for,
        dependents,
        priority,
    }
}

/// Shared context of one apply run.
struct Run<'a> {
    plan: &'a Plan,
    client: &'a ArmClient,
    journal: &'a JournalWriter,
    /// Set when the journal could not be written: nothing more is started,
    /// because a crash now could not be resumed safely.
    journal_lost: Mutex<Option<String>>,
    run: String,
    plan_hash: String,
    in_doubt: std::collections::HashSet<String>,
    secrets: Mutex<HashMap<String, std::sync::Arc<tokio::sync::OnceCell<String>>>>,
    refs: Mutex<HashMap<String, Value>>,
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Arm(#[from] ArmError),
    #[error("{0}")]
    Reference(String),
    #[error("journal: {0}")]
    Journal(#[from] crate::state::StateError),
}

/// A strong random password for a Windows admin account (Azure requires 3 of 4
/// character classes; this has all four). Every choice takes its own random
/// value, drawn without modulo bias (rejection sampling): the class of a
/// position and the character within it are independent and uniform.
fn generate_password() -> String {
    use ring::rand::SecureRandom;
    const SETS: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"!#%+-=?@^_",
    ];
    const LEN: usize = 28;
    let rng = ring::rand::SystemRandom::new();
    // A uniform value below `n` (n <= 256) from the system random source.
    let below = |n: usize| -> usize {
        let limit = 256 - 256 % n;
        loop {
            let mut b = [0u8; 1];
            rng.fill(&mut b).expect("the system random source works");
            if (b[0] as usize) < limit {
                return b[0] as usize % n;
            }
        }
    };
    let mut out: Vec<u8> = (0..LEN)
        .map(|i| {
            // The first four positions carry one character of each class.
            let set = SETS[if i < 4 { i } else { below(SETS.len()) }];
            set[below(set.len())]
        })
        .collect();
    // Shuffle (Fisher-Yates) so the guaranteed characters sit anywhere.
    for i in (1..LEN).rev() {
        out.swap(i, below(i + 1));
    }
    String::from_utf8(out).expect("ASCII")
}

impl Run<'_> {
    async fn journal(&self, c: &Change, event: &str) -> Result<(), StepError> {
        let entry = JournalEntry {
            run: self.run.clone(),
            plan: self.plan_hash.clone(),
            id: c.id.clone(),
            api_version: c.api_version.clone(),
            event: event.to_string(),
            at: jiff::Timestamp::now().to_string(),
        };
        if let Err(e) = self.journal.append(&entry).await {
            self.journal_lost
                .lock()
                .expect("journal flag")
                .get_or_insert_with(|| e.to_string());
            return Err(e.into());
        }
        Ok(())
    }

    async fn secret(&self, vault: &str, name: &str) -> Result<String, StepError> {
        let key = format!("{}/secrets/{name}", vault.to_ascii_lowercase());
        let cell = self
            .secrets
            .lock()
            .expect("secrets")
            .entry(key)
            .or_default()
            .clone();
        let value = cell
            .get_or_try_init(|| async {
                let vault_id = ResourceId::parse(vault)
                    .map_err(|e| StepError::Reference(format!("$secret vault: {e}")))?;
                let id = vault_id.child("secrets", name);
                let password = generate_password();
                let body = json!({"properties": {"value": password, "contentType": "generated by lifeboat",
                    "attributes": {"enabled": true}}});
                self.client
                    .put(&id, &self.plan.api_version_for("Microsoft.KeyVault/vaults/secrets"), &body)
                    .await?;
                Ok::<_, StepError>(password)
            })
            .await?;
        Ok(value.clone())
    }

    async fn reference(&self, id: &str, path: &str) -> Result<Value, StepError> {
        let cached = self
            .refs
            .lock()
            .expect("refs")
            .get(&id.to_ascii_lowercase())
            .cloned();
        let body = match cached {
            Some(b) => b,
            None => {
                let rid = ResourceId::parse(id)
                    .map_err(|e| StepError::Reference(format!("$ref: {e}")))?;
                let api = self.plan.api_version_for(&rid.resource_type());
                let b =
                    self.client.get(&rid, &api).await?.ok_or_else(|| {
                        StepError::Reference(format!("$ref: {id} does not exist"))
                    })?;
                self.refs
                    .lock()
                    .expect("refs")
                    .insert(id.to_ascii_lowercase(), b.clone());
                b
            }
        };
        let mut cur = &body;
        for part in path.split('.') {
            cur = cur
                .get(part)
                .ok_or_else(|| StepError::Reference(format!("$ref: {id} has no `{path}`")))?;
        }
        Ok(cur.clone())
    }

    /// Replace `$secret` and `$ref` objects with values. With `creating` false,
    /// secret-bearing keys are dropped (write-only; ARM refuses to change them).
    fn resolve<'b>(
        &'b self,
        v: &'b Value,
        creating: bool,
    ) -> futures::future::BoxFuture<'b, Result<Option<Value>, StepError>> {
        Box::pin(async move {
            Ok(Some(match v {
                Value::Object(o) if o.contains_key("$secret") => {
                    if !creating {
                        return Ok(None);
                    }
                    let s = &o["$secret"];
                    let vault = s.get("vault").and_then(Value::as_str).unwrap_or("");
                    let name = s.get("name").and_then(Value::as_str).unwrap_or("");
                    Value::String(self.secret(vault, name).await?)
                }
                Value::Object(o) if o.contains_key("$ref") => {
                    let r = &o["$ref"];
                    let id = r.get("id").and_then(Value::as_str).unwrap_or("");
                    let path = r.get("path").and_then(Value::as_str).unwrap_or("");
                    self.reference(id, path).await?
                }
                Value::Object(o) => {
                    let mut out = serde_json::Map::new();
                    for (k, x) in o {
                        if let Some(r) = self.resolve(x, creating).await? {
                            out.insert(k.clone(), r);
                        }
                    }
                    Value::Object(out)
                }
                Value::Array(a) => {
                    let mut out = Vec::with_capacity(a.len());
                    for x in a {
                        if let Some(r) = self.resolve(x, creating).await? {
                            out.push(r);
                        }
                    }
                    Value::Array(out)
                }
                other => other.clone(),
            }))
        })
    }

    /// One change, with up to two more attempts after a transient failure of its
    /// operation (HTTP-level retries happen inside the client already).
    async fn step(&self, c: &Change) -> Result<(), StepError> {
        let mut attempt = 0;
        loop {
            match self.attempt(c).await {
                Err(StepError::Arm(e)) if e.is_transient() && attempt < 2 => {
                    attempt += 1;
                    let wait = self.client.config().retry.backoff(attempt);
                    tokio::time::sleep(wait.mul_f64(self.client.time_scale())).await;
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, c: &Change) -> Result<(), StepError> {
        self.journal(c, "started").await?;
        if self.in_doubt.contains(c.id.key()) {
            // A crashed run may have left an operation running on it.
            self.client.wait_settled(&c.id, &c.api_version).await?;
        }
        let empty = Value::Null;
        let planned = c.body.as_ref().map_or(Value::Null, |b| b.to_value());
        let body = &planned;
        let fresh;
        let body = if c.action == Action::Update && !c.lifecycle.ignore.is_empty() {
            // Values `lifecycle.ignore` keeps are the cloud's at the moment of the
            // PUT, not at planning time: an activation may have opened the
            // emergency access rule since (or a deactivation closed it).
            let mut b = body.clone();
            if let Some(now) = self.client.get(&c.id, &c.api_version).await? {
                lifeboat_core::plan::diff::keep_ignored(&mut b, &now, &c.lifecycle.ignore);
            }
            fresh = b;
            &fresh
        } else {
            body
        };
        match c.action {
            Action::Create | Action::Update => {
                let resolved = self.resolve(body, c.action == Action::Create).await?;
                self.client
                    .put(&c.id, &c.api_version, resolved.as_ref().unwrap_or(&empty))
                    .await?;
            }
            Action::Replace => {
                self.client.delete(&c.id, &c.api_version).await?;
                let resolved = self.resolve(body, true).await?;
                self.client
                    .put(&c.id, &c.api_version, resolved.as_ref().unwrap_or(&empty))
                    .await?;
            }
            Action::Delete => {
                self.client.delete(&c.id, &c.api_version).await?;
            }
            Action::NoOp => {}
        }
        if matches!(c.action, Action::Create | Action::Replace)
            && c.lifecycle.power_state == Some(PowerState::Deallocated)
        {
            // Idempotent: deallocating a deallocated VM succeeds at once.
            self.client
                .action(&c.id, "deallocate", &c.api_version, None, true)
                .await?;
        }
        self.journal(c, "done").await?;
        Ok(())
    }
}

/// How long an apply waits with changes in flight and none finishing before it
/// stops: 30 Azure minutes (longer than any operation in the templates), and
/// never less than two real minutes.
fn watchdog(time_scale: f64) -> Duration {
    Duration::from_secs_f64((1800.0 * time_scale).max(120.0))
}

/// Apply `plan`. Protected resources are never deleted here unless the plan was
/// made with `--allow-data-loss` for their tenant (the plan refuses otherwise).
pub async fn apply(
    plan: &Plan,
    client: &ArmClient,
    journal: &JournalWriter,
    opts: ApplyOptions,
    emit: &(dyn Fn(Event) + Sync),
) -> ApplyReport {
    let started = Instant::now();
    let stats_before = client.stats.snapshot();
    let dag = build_dag(plan);
    let total = dag.nodes.len();
    let run = Run {
        plan,
        client,
        journal,
        journal_lost: Mutex::new(None),
        run: opts.run.clone(),
        plan_hash: opts.plan_hash.clone(),
        in_doubt: opts.in_doubt.iter().map(|i| i.key().to_string()).collect(),
        secrets: Mutex::new(HashMap::new()),
        refs: Mutex::new(HashMap::new()),
    };
    let mut remaining: Vec<usize> = dag.waits_for.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<(u64, Reverse<usize>)> = (0..total)
        .filter(|&n| remaining[n] == 0)
        .map(|n| (dag.priority[n], Reverse(n)))
        .collect();
    let mut outcome: Vec<Option<(Outcome, u64, Option<String>)>> = vec![None; total];
    let mut finish_at = vec![0u64; total];
    let mut running = FuturesUnordered::new();
    let mut done = 0usize;
    let mut max_in_flight = 0usize;
    let cap = opts.max_parallel.unwrap_or(usize::MAX).max(1);
    let watchdog = watchdog(client.time_scale());
    let mut last_progress = Instant::now();
    let mut stalled: Option<Duration> = None;

    let change = |n: usize| &plan.changes[dag.nodes[n]];
    let class = |c: &Change| match c.action {
        Action::Delete | Action::Replace => Class::Delete,
        _ => Class::Write,
    };

    loop {
        let journal_ok = run.journal_lost.lock().expect("journal flag").is_none();
        if running.is_empty() && (ready.is_empty() || !journal_ok) {
            break;
        }
        let can_launch = journal_ok && !ready.is_empty() && running.len() < cap;
        let next_class = ready.peek().map(|&(_, Reverse(n))| class(change(n)));
        tokio::select! {
            biased;
            Some((n, result, ms)) = running.next(), if !running.is_empty() => {
                last_progress = Instant::now();
                let result: Result<(), StepError> = result;
                let c = change(n);
                finish_at[n] = started.elapsed().as_millis() as u64;
                done += 1;
                match result {
                    Ok(()) => {
                        emit(Event::Finished { id: c.id.to_string(), action: c.action, duration_ms: ms });
                        outcome[n] = Some((Outcome::Succeeded, ms, None));
                        for &d in &dag.dependents[n] {
                            remaining[d] -= 1;
                            if remaining[d] == 0 && outcome[d].is_none() {
                                ready.push((dag.priority[d], Reverse(d)));
                            }
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        emit(Event::Failed { id: c.id.to_string(), action: c.action, error: msg.clone() });
                        outcome[n] = Some((Outcome::Failed, ms, Some(msg)));
                        // Skip everything downstream, and only that.
                        let mut stack = dag.dependents[n].clone();
                        while let Some(d) = stack.pop() {
                            if outcome[d].is_some() {
                                continue;
                            }
                            let because = format!("depends on {}, which failed", c.id.display_name());
                            let dc = change(d);
                            emit(Event::Skipped { id: dc.id.to_string(), action: dc.action, because: because.clone() });
                            outcome[d] = Some((Outcome::Skipped, 0, Some(because)));
                            done += 1;
                            stack.extend(dag.dependents[d].iter().copied());
                        }
                    }
                }
                emit(Event::Progress { done, total });
            }
            _ = tokio::time::sleep_until((last_progress + watchdog).into()), if !running.is_empty() => {
                // Nothing finished for far longer than any ARM operation takes:
                // stop waiting (the changes stay in doubt in the journal and the
                // next run settles them) rather than hold the locks forever.
                stalled = Some(watchdog);
                break;
            }
            _ = client.reserve(next_class.unwrap_or(Class::Write)), if can_launch => {
                let Some((_, Reverse(n))) = ready.pop() else { continue };
                let c = change(n);
                emit(Event::Started { id: c.id.to_string(), action: c.action, tenant: c.tenant.clone() });
                let run = &run;
                running.push(async move {
                    let t = Instant::now();
                    let r = run.step(c).await;
                    if r.is_err() {
                        // Journalled here, inside the change's own future, never
                        // in the loop's select arm: a blob journal's group commit
                        // may be held by another running change, which is only
                        // polled while the loop waits (awaiting it in the arm
                        // deadlocked the apply).
                        let _ = run.journal(c, "failed").await;
                    }
                    (n, r, t.elapsed().as_millis() as u64)
                });
                max_in_flight = max_in_flight.max(running.len());
            }
        }
    }

    // Anything never reached was held back by a lost journal, a stalled run, or
    // sits on a dependency cycle through deletes.
    let lost = run.journal_lost.lock().expect("journal flag").clone();
    drop(running);
    for (n, o) in outcome.iter_mut().enumerate() {
        if o.is_none() {
            let c = change(n);
            let because = match (&lost, stalled) {
                (Some(e), _) => format!("not started: the apply journal cannot be written ({e})"),
                (None, Some(w)) => format!(
                    "stopped: no change finished for {:.0} s (the progress watchdog); it may still be running in Azure and is settled by the next apply",
                    w.as_secs_f64()
                ),
                (None, None) => "never became ready (dependency cycle)".to_string(),
            };
            emit(Event::Skipped {
                id: c.id.to_string(),
                action: c.action,
                because: because.clone(),
            });
            *o = Some((Outcome::Skipped, 0, Some(because)));
        }
    }

    // Critical path over observed durations: the longest chain of dependencies.
    let mut longest = vec![0u64; total];
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&n| finish_at[n]);
    for &n in &order {
        let own = outcome[n].as_ref().map_or(0, |o| o.1);
        let before = dag.waits_for[n]
            .iter()
            .map(|&m| longest[m])
            .max()
            .unwrap_or(0);
        longest[n] = before + own;
    }
    let mut summary = OutcomeSummary::default();
    let resources: Vec<ResourceOutcome> = (0..total)
        .map(|n| {
            let c = change(n);
            let (o, ms, err) = outcome[n].clone().expect("every node has an outcome");
            match o {
                Outcome::Succeeded => summary.succeeded += 1,
                Outcome::Failed => summary.failed += 1,
                Outcome::Skipped => summary.skipped += 1,
            }
            ResourceOutcome {
                id: c.id.to_string(),
                tenant: c.tenant.clone(),
                action: c.action,
                outcome: o,
                duration_ms: ms,
                error: err,
            }
        })
        .collect();
    let after = client.stats.snapshot();
    let requests = after.since(&stats_before);
    ApplyReport {
        format_version: "1".into(),
        plan: run.plan_hash.clone(),
        outcome: if summary.failed + summary.skipped == 0 {
            "succeeded"
        } else {
            "failed"
        },
        summary,
        makespan_ms: started.elapsed().as_millis() as u64,
        critical_path_ms: longest.into_iter().max().unwrap_or(0),
        throttled: requests.throttled,
        retries: requests.retries,
        requests,
        max_in_flight,
        resources,
        waiting: plan.deferred.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_strong_and_different() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a.chars().any(|c| c.is_ascii_uppercase()));
        assert!(a.chars().any(|c| c.is_ascii_lowercase()));
        assert!(a.chars().any(|c| c.is_ascii_digit()));
        assert!(a.chars().any(|c| !c.is_ascii_alphanumeric()));
    }

    /// The old generator took class and character from one byte, so digits were
    /// almost always 4 or 8. Every digit is now about as common as any other,
    /// and the classes take their share of the 24 free positions.
    #[test]
    fn password_characters_are_uniform_within_and_across_classes() {
        let mut digits = [0usize; 10];
        let mut classes = [0usize; 4];
        for _ in 0..2000 {
            for c in generate_password().bytes() {
                match c {
                    b'0'..=b'9' => {
                        digits[(c - b'0') as usize] += 1;
                        classes[2] += 1;
                    }
                    b'A'..=b'Z' => classes[0] += 1,
                    b'a'..=b'z' => classes[1] += 1,
                    _ => classes[3] += 1,
                }
            }
        }
        let used: Vec<usize> = (2..10).map(|d| digits[d]).collect();
        assert_eq!(digits[0] + digits[1], 0, "0 and 1 are not in the set");
        let mean = used.iter().sum::<usize>() as f64 / used.len() as f64;
        for (d, n) in used.iter().enumerate() {
            assert!(
                (*n as f64) > 0.8 * mean && (*n as f64) < 1.2 * mean,
                "digit {} appears {n} times, mean {mean}: {used:?}",
                d + 2
            );
        }
        // 2000 x (1 guaranteed + 24/4 expected) = 14000 per class.
        for n in classes {
            assert!((12_600..15_400).contains(&n), "{classes:?}");
        }
    }
}
