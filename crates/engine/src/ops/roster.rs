//! The emergency-access roster against Microsoft Graph: read IST (the
//! `<prefix>-<tenant>-emergency` group's members), reconcile it with SOLL
//! (`lifeboat_core::roster`), apply the difference in `$batch`es (invite joiners
//! as B2B guests without e-mail and add them, remove leavers and disable their
//! guest accounts, remove unmanaged members), keep the Conditional Access policy
//! that requires MFA for every emergency group, and answer what `activate` and
//! `status` need (member count, policy state).
//!
//! Who lifeboat added, and under which grant, is read back from the audit trail
//! (one record per change), so a member who disappears from the HR export is a
//! leaver, and one nobody added is unmanaged. Never prints; the CLI renders.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cloud::graph::{BatchItem, DIRECTORY_OBJECTS, GraphClient, GraphError, GraphRequests};
use crate::state::audit::Record;
use lifeboat_core::model::{Platform, Project, Tenant};
use lifeboat_core::roster::{self, Grant, Ist, Member, OverCapacity, TenantRoster};

/// The one Conditional Access policy for every emergency group.
pub const MFA_POLICY: &str = "lifeboat emergency access: require MFA";
/// The audit trail's command for roster changes.
pub const AUDIT_COMMAND: &str = "roster apply";
/// Where an invited guest lands after redeeming (required by Graph; no e-mail
/// is sent, staff sign in through the Citrix gateway).
const REDIRECT: &str = "https://myapps.microsoft.com";

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    OverCapacity(#[from] OverCapacity),
    #[error("tenant {tenant} has no access.roster in its manifest (tenants/{tenant}.yaml)")]
    NoRoster { tenant: String },
    #[error(
        "there are {} groups named {name} in the directory ({}): display names are not unique in Entra ID; remove or rename all but one, then run again",
        .ids.len(),
        .ids.join(", ")
    )]
    AmbiguousGroup { name: String, ids: Vec<String> },
    #[error("tenant {tenant}: {what} failed for {}", .failed.join("; "))]
    Incomplete {
        tenant: String,
        what: &'static str,
        failed: Vec<String>,
    },
}

/// `<prefix>-<tenant>-emergency`.
pub fn group_name(p: &Platform, t: &Tenant) -> String {
    format!("{}-{}-emergency", p.prefix.value, t.id.value)
}

/// The emergency group by display name: `None` when missing, an error when
/// there are several.
pub async fn find_group(graph: &GraphClient, name: &str) -> Result<Option<String>, RosterError> {
    group_of(name, &graph.list(&group_query(name)).await?)
}

/// The lookup of a group by display name (relative to `/v1.0`).
fn group_query(name: &str) -> String {
    let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
    format!("/groups?$filter={}&$select=id,displayName", encode(&filter))
}

/// What [`group_query`] found, as [`find_group`] answers it.
fn group_of(name: &str, found: &[Value]) -> Result<Option<String>, RosterError> {
    let ids: Vec<String> = found
        .iter()
        .filter_map(|g| g["id"].as_str().map(str::to_string))
        .collect();
    match ids.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(RosterError::AmbiguousGroup {
            name: name.to_string(),
            ids,
        }),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A group's members (every page).
pub async fn members(graph: &GraphClient, group: &str) -> Result<Vec<Member>, RosterError> {
    Ok(members_of(&graph.list(&members_query(group)).await?))
}

fn members_query(group: &str) -> String {
    format!("/groups/{group}/members?$select=id,mail,userPrincipalName,accountEnabled&$top=999")
}

fn members_of(items: &[Value]) -> Vec<Member> {
    items
        .iter()
        .map(|m| Member {
            id: m["id"].as_str().unwrap_or_default().to_string(),
            // A guest's upn is `x_host#EXT#@tenant`: the HR address is `mail`.
            mail: m["mail"]
                .as_str()
                .or_else(|| m["userPrincipalName"].as_str())
                .unwrap_or_default()
                .to_string(),
            account_enabled: m["accountEnabled"].as_bool().unwrap_or(true),
        })
        .collect()
}

/// The items of a `$batch` answer that is a whole collection: a success with
/// a `value` and no further page. Anything else is read by itself.
fn whole(r: &crate::cloud::graph::BatchResult) -> Option<&[Value]> {
    if !r.ok() || r.body.get("@odata.nextLink").is_some() {
        return None;
    }
    r.body.get("value")?.as_array().map(Vec::as_slice)
}

/// GETs of `urls` in `$batch`es of 20, four batches in flight (a batch
/// waits for its slowest item: one at a time would add their latencies up),
/// the answers in `urls`' order.
async fn get_all(
    graph: &GraphClient,
    urls: Vec<String>,
) -> Result<Vec<crate::cloud::graph::BatchResult>, GraphError> {
    use futures::StreamExt;
    let items: Vec<BatchItem> = urls
        .into_iter()
        .map(|url| BatchItem {
            method: "GET",
            url,
            body: None,
        })
        .collect();
    let answers: Vec<_> = futures::stream::iter(items.chunks(crate::cloud::graph::MAX_BATCH))
        .map(|chunk| graph.batch(chunk))
        .buffered(4)
        .collect()
        .await;
    let mut out = Vec::with_capacity(items.len());
    for a in answers {
        out.extend(a?);
    }
    Ok(out)
}

/// Who lifeboat added to `tenant`'s group and has not removed, with the grant,
/// and since when (the audit record's time), from the verified trail.
pub fn managed(records: &[Record], tenant: &str) -> BTreeMap<String, (Grant, String)> {
    let mut out = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.entry.command == AUDIT_COMMAND && r.entry.tenants.iter().any(|t| t == tenant))
    {
        let d = &r.entry.details;
        let Some(upn) = d["upn"].as_str() else {
            continue;
        };
        let key = upn.trim().to_ascii_lowercase();
        match d["change"].as_str() {
            Some("join" | "move") if r.entry.outcome == "succeeded" => {
                if let Ok(g) = serde_json::from_value::<Grant>(d["grant"].clone()) {
                    let since = out
                        .get(&key)
                        .map_or_else(|| r.at.clone(), |(_, s): &(Grant, String)| s.clone());
                    out.insert(key, (g, since));
                }
            }
            Some("leave" | "remove") if r.entry.outcome == "succeeded" => {
                out.remove(&key);
            }
            _ => {}
        }
    }
    out
}

/// The reconciliation of every tenant asked for, and the Graph requests it took.
#[derive(Debug, Serialize)]
pub struct RosterPlan {
    pub format_version: &'static str,
    pub tenants: Vec<TenantRoster>,
    pub requests: GraphRequests,
    /// Per tenant: the group's id (`None`: created by apply).
    #[serde(skip)]
    pub groups: BTreeMap<String, Option<String>>,
    #[serde(skip)]
    pub keep_unmanaged: bool,
}

impl RosterPlan {
    pub fn changes(&self) -> usize {
        self.tenants
            .iter()
            .map(|t| {
                t.joiners.len()
                    + t.leavers.len()
                    + t.movers.len()
                    + if self.keep_unmanaged {
                        0
                    } else {
                        t.unmanaged.len()
                    }
            })
            .sum()
    }
}

/// Read IST and reconcile it for `tenants` (8 at a time). Every tenant is read
/// before anything is decided; one over `maxUsers` fails the whole plan.
pub async fn plan(
    graph: &GraphClient,
    project: &Project,
    tenants: &[&Tenant],
    today: jiff::civil::Date,
    audit: &[Record],
    keep_unmanaged: bool,
) -> Result<RosterPlan, RosterError> {
    use futures::StreamExt;
    let p = &project.platform;
    let read = futures::stream::iter(tenants.iter().map(|t| async move {
        let name = group_name(p, t);
        let group = find_group(graph, &name).await?;
        let ist = match &group {
            Some(id) => members(graph, id).await?,
            None => Vec::new(),
        };
        Ok::<_, RosterError>((t, name, group, ist))
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let mut out = RosterPlan {
        format_version: "1",
        tenants: Vec::new(),
        requests: GraphRequests::default(),
        groups: BTreeMap::new(),
        keep_unmanaged,
    };
    for r in read {
        let (t, name, group, ist) = r?;
        let Some(roster) = &t.access.roster else {
            return Err(RosterError::NoRoster {
                tenant: t.id.value.clone(),
            });
        };
        let managed: BTreeMap<String, Grant> = managed(audit, &t.id.value)
            .into_iter()
            .map(|(k, (g, _))| (k, g))
            .collect();
        let rec = roster::reconcile(
            &t.id.value,
            &name,
            roster,
            t.access.max_users,
            today,
            Ist {
                members: &ist,
                managed: &managed,
            },
            keep_unmanaged,
        )?;
        out.groups.insert(t.id.value.clone(), group);
        out.tenants.push(rec);
    }
    out.requests = graph.requests();
    Ok(out)
}

/// One change made (or tried), for the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub tenant: String,
    /// `join`, `leave`, `move` or `remove` (an unmanaged member).
    pub change: &'static str,
    pub upn: String,
    pub detail: String,
    pub grant: Option<Grant>,
    pub ok: bool,
    pub error: Option<String>,
}

/// What `apply` did.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    pub changes: Vec<Change>,
    pub groups_created: Vec<String>,
    pub policy: String,
    pub requests: GraphRequests,
}

impl Applied {
    pub fn failed(&self) -> Vec<&Change> {
        self.changes.iter().filter(|c| !c.ok).collect()
    }
}

fn member_ref(id: &str) -> Value {
    json!({"@odata.id": format!("{DIRECTORY_OBJECTS}/{id}")})
}

/// Apply `plan`: per tenant, the group (created when missing), joiners invited
/// and added (a disabled guest re-enabled), leavers removed and disabled,
/// unmanaged members removed unless kept; then the MFA policy. Tenants run 8 at
/// a time; every change is reported, failed ones with why.
pub async fn apply(graph: &GraphClient, plan: &RosterPlan) -> Result<Applied, RosterError> {
    use futures::StreamExt;
    let runs = futures::stream::iter(plan.tenants.iter().map(|t| async move {
        apply_tenant(
            graph,
            t,
            plan.groups.get(&t.tenant).cloned().flatten(),
            plan.keep_unmanaged,
        )
        .await
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let mut out = Applied::default();
    let mut group_ids = Vec::new();
    for r in runs {
        let (group, created, changes) = r?;
        if created {
            out.groups_created.push(group.clone());
        }
        group_ids.push(group);
        out.changes.extend(changes);
    }
    out.policy = ensure_policy(graph, &group_ids).await?;
    out.requests = graph.requests();
    Ok(out)
}

async fn apply_tenant(
    graph: &GraphClient,
    t: &TenantRoster,
    group: Option<String>,
    keep_unmanaged: bool,
) -> Result<(String, bool, Vec<Change>), RosterError> {
    let (group, created) = match group {
        Some(g) => (g, false),
        None => match find_group(graph, &t.group).await? {
            Some(g) => (g, false),
            None => {
                let g = graph
                    .post(
                        "/groups",
                        &json!({
                            "displayName": t.group,
                            "mailNickname": t.group,
                            "mailEnabled": false,
                            "securityEnabled": true,
                            "description": format!("lifeboat: who may use {}'s emergency environment (managed by `lifeboat roster apply`)", t.tenant),
                        }),
                    )
                    .await?;
                (g["id"].as_str().unwrap_or_default().to_string(), true)
            }
        },
    };
    let mut changes = Vec::new();
    let grant_of = |upn: &str| t.soll.get(&upn.to_ascii_lowercase()).cloned();
    let change = |kind: &'static str,
                  upn: &str,
                  detail: String,
                  grant: Option<Grant>,
                  r: Result<(), String>| Change {
        tenant: t.tenant.clone(),
        change: kind,
        upn: upn.to_string(),
        detail,
        grant,
        ok: r.is_ok(),
        error: r.err(),
    };
    // Leavers first: a leaver loses access in this run, whatever else fails.
    let mut items = Vec::new();
    for l in &t.leavers {
        items.push(BatchItem {
            method: "DELETE",
            url: format!("/groups/{group}/members/{}/$ref", l.id),
            body: None,
        });
        items.push(BatchItem {
            method: "PATCH",
            url: format!("/users/{}", l.id),
            body: Some(json!({"accountEnabled": false})),
        });
    }
    let unmanaged: Vec<&roster::Unmanaged> = if keep_unmanaged {
        Vec::new()
    } else {
        t.unmanaged.iter().collect()
    };
    for u in &unmanaged {
        items.push(BatchItem {
            method: "DELETE",
            url: format!("/groups/{group}/members/{}/$ref", u.id),
            body: None,
        });
    }
    let done = graph.batch(&items).await?;
    let outcome = |r: &crate::cloud::graph::BatchResult| -> Result<(), String> {
        // Already gone is gone.
        if r.ok() || r.status == 404 {
            Ok(())
        } else {
            Err(r.message())
        }
    };
    for (i, l) in t.leavers.iter().enumerate() {
        let r = outcome(&done[2 * i]).and(outcome(&done[2 * i + 1]));
        changes.push(change("leave", &l.upn, l.why.clone(), None, r));
    }
    for (i, u) in unmanaged.iter().enumerate() {
        let r = outcome(&done[2 * t.leavers.len() + i]);
        changes.push(change(
            "remove",
            &u.upn,
            "not in the roster (unmanaged)".into(),
            None,
            r,
        ));
    }
    // Joiners: invite (an existing guest is returned as is), then add and enable.
    let invites: Vec<BatchItem> = t
        .joiners
        .iter()
        .map(|j| BatchItem {
            method: "POST",
            url: "/invitations".into(),
            body: Some(json!({
                "invitedUserEmailAddress": j.upn,
                "invitedUserDisplayName": t.soll.get(&j.upn.to_ascii_lowercase()).map_or(j.upn.as_str(), |g| g.display_name.as_str()),
                "inviteRedirectUrl": REDIRECT,
                "sendInvitationMessage": false,
            })),
        })
        .collect();
    let invited = graph.batch(&invites).await?;
    let mut adds = Vec::new();
    let mut who = Vec::new();
    for (j, r) in t.joiners.iter().zip(&invited) {
        match r
            .body
            .pointer("/invitedUser/id")
            .and_then(Value::as_str)
            .filter(|_| r.ok())
        {
            Some(id) => {
                adds.push(BatchItem {
                    method: "PATCH",
                    url: format!("/users/{id}"),
                    body: Some(json!({"accountEnabled": true})),
                });
                adds.push(BatchItem {
                    method: "POST",
                    url: format!("/groups/{group}/members/$ref"),
                    body: Some(member_ref(id)),
                });
                who.push(j);
            }
            None => changes.push(change(
                "join",
                &j.upn,
                j.rule.clone(),
                grant_of(&j.upn),
                Err(format!("invitation: {}", r.message())),
            )),
        }
    }
    let added = graph.batch(&adds).await?;
    for (i, j) in who.iter().enumerate() {
        let enable = outcome(&added[2 * i]);
        // Already a member (a disabled guest re-admitted) is fine.
        let add = &added[2 * i + 1];
        let add = if add.ok() || (add.status == 400 && add.message().contains("already exist")) {
            Ok(())
        } else {
            Err(add.message())
        };
        changes.push(change(
            "join",
            &j.upn,
            j.rule.clone(),
            grant_of(&j.upn),
            enable.and(add),
        ));
    }
    for m in &t.movers {
        let grant = grant_of(&m.upn);
        changes.push(change(
            "move",
            &m.upn,
            format!("{} -> {}", m.from, m.to),
            grant,
            Ok(()),
        ));
    }
    Ok((group, created, changes))
}

/// The MFA policy's state for `groups` (ids): `None` when it is missing.
pub async fn policy(graph: &GraphClient) -> Result<Option<Value>, RosterError> {
    let all = graph.list("/identity/conditionalAccess/policies").await?;
    Ok(all
        .into_iter()
        .find(|p| p["displayName"].as_str() == Some(MFA_POLICY)))
}

/// Create the MFA policy, or widen it to every emergency group and enable it.
async fn ensure_policy(graph: &GraphClient, groups: &[String]) -> Result<String, RosterError> {
    let existing = policy(graph).await?;
    let mut include: Vec<String> = existing
        .as_ref()
        .and_then(|p| p.pointer("/conditions/users/includeGroups"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let before = include.clone();
    for g in groups {
        if !include.contains(g) {
            include.push(g.clone());
        }
    }
    let body = json!({
        "displayName": MFA_POLICY,
        "state": "enabled",
        "conditions": {
            "users": {"includeGroups": include},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    });
    match existing {
        None => {
            graph
                .post("/identity/conditionalAccess/policies", &body)
                .await?;
            Ok(format!("created, {} group(s)", include.len()))
        }
        Some(p) if p["state"] == "enabled" && before == include => {
            Ok(format!("enabled, {} group(s)", include.len()))
        }
        Some(p) => {
            let id = p["id"].as_str().unwrap_or_default();
            graph
                .patch(&format!("/identity/conditionalAccess/policies/{id}"), &body)
                .await?;
            Ok(format!("updated, {} group(s)", include.len()))
        }
    }
}

/// What `activate` and `status` need to know about a tenant's access.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    /// Enabled members of the emergency group (`None`: no group).
    pub members: Option<usize>,
    /// `enabled`, `disabled`, `missing`, or `not covering the group`.
    pub mfa_policy: String,
}

impl Access {
    /// Why an activation must not go ahead, if it must not.
    pub fn refusal(&self, tenant: &str) -> Option<String> {
        match self.members {
            None | Some(0) => Some(format!(
                "nobody may log in to {tenant}'s emergency environment: its emergency group is empty or missing; run `lifeboat roster apply --tenant {tenant}`"
            )),
            _ if self.mfa_policy != "enabled" => Some(format!(
                "the Conditional Access policy \"{MFA_POLICY}\" is {}: staff would log in without MFA; run `lifeboat roster apply --tenant {tenant}`",
                self.mfa_policy
            )),
            _ => None,
        }
    }
}

/// The access state of `tenant`: its group's enabled members and the policy.
pub async fn access(graph: &GraphClient, p: &Platform, t: &Tenant) -> Result<Access, RosterError> {
    let mut all = access_all(graph, p, &[t]).await?;
    Ok(all.remove(&t.id.value).expect("asked for this tenant"))
}

/// [`access`] for many tenants: the policy read once, the groups and then
/// their members in `$batch`es of 20 (a fleet's status reads 200 groups in
/// 21 requests, not 401). An answer a batch cannot give whole (a second page,
/// an error) is read again by itself, which answers it exactly as
/// [`find_group`] and [`members`] do.
pub async fn access_all(
    graph: &GraphClient,
    p: &Platform,
    tenants: &[&Tenant],
) -> Result<BTreeMap<String, Access>, RosterError> {
    let names: Vec<String> = tenants.iter().map(|t| group_name(p, t)).collect();
    let (found, policy) = futures::join!(
        get_all(graph, names.iter().map(|n| group_query(n)).collect()),
        policy(graph)
    );
    // The policy's error first, then the groups' in tenant order.
    let policy = policy?;
    let found = found?;
    let mut group_ids = Vec::with_capacity(names.len());
    for (name, r) in names.iter().zip(&found) {
        group_ids.push(match whole(r) {
            Some(items) => group_of(name, items),
            None => find_group(graph, name).await,
        });
    }
    let listed: Vec<String> = group_ids
        .iter()
        .filter_map(|g| g.as_ref().ok()?.as_ref())
        .map(|g| members_query(g))
        .collect();
    let mut pages = get_all(graph, listed).await?.into_iter();
    let mut groups = Vec::with_capacity(names.len());
    for (t, group) in tenants.iter().zip(group_ids) {
        let group = group?;
        let members = match &group {
            Some(g) => {
                let r = pages.next().expect("a members page per group found");
                Some(match whole(&r) {
                    Some(items) => members_of(items),
                    None => members(graph, g).await?,
                })
            }
            None => None,
        };
        groups.push((t.id.value.clone(), group, members));
    }
    let mut out = BTreeMap::new();
    for (tenant, group, members) in groups {
        let state = match (&policy, &group) {
            (None, _) => "missing".to_string(),
            (Some(p), Some(g))
                if !p
                    .pointer("/conditions/users/includeGroups")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(g))) =>
            {
                "not covering the group".to_string()
            }
            (Some(p), _) => p["state"].as_str().unwrap_or("unknown").to_string(),
        };
        out.insert(
            tenant,
            Access {
                members: members.map(|m| m.iter().filter(|m| m.account_enabled).count()),
                mfa_policy: state,
            },
        );
    }
    Ok(out)
}
