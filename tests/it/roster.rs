//! #18: the emergency-access roster through the binary and the embedded cloud's
//! Microsoft Graph: joiners, movers and leavers across two HR exports, an expired
//! manual entry, a member added by hand in the directory, the `maxUsers` refusal,
//! the audit trail, the attestation report, activation refused without a roster,
//! and the Graph client's paging, `$batch` and 429 handling.

use serde_json::{Value, json};

use crate::common::{Project, Run};
use lifeboat_emulator::arm::Request;
use lifeboat_emulator::graph::{Directory, GRAPH_HOST};

fn json_out(r: &Run) -> Value {
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap()
}

fn tenant<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == id)
        .unwrap()
}

fn upns(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["upn"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// The directory as another process sees it (the embedded cloud's own files).
fn directory(p: &Project) -> Directory {
    Directory::open(p.dir.join(".lifeboat/cloud"), 0.0, 1)
}

fn graph(d: &Directory, method: &str, path: &str, body: Value) -> Value {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let r = d.handle(&Request {
        method: method.into(),
        path: format!("/v1.0{path}"),
        query: query.into(),
        identity: "test".into(),
        body: if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        },
        base: "http://127.0.0.1:1".into(),
    });
    assert!(
        r.status < 300,
        "{method} {path}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// The id of the (first) group named `name`.
fn group_id(d: &Directory, name: &str) -> String {
    graph(
        d,
        "GET",
        &format!("/groups?$filter=displayName%20eq%20'{name}'"),
        Value::Null,
    )["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn user_by_mail(d: &Directory, mail: &str) -> Value {
    let v = graph(
        d,
        "GET",
        &format!("/users?$filter=mail%20eq%20'{mail}'&$select=id,mail,accountEnabled"),
        Value::Null,
    );
    v["value"][0].clone()
}

#[test]
fn joiners_movers_and_leavers_across_two_hr_exports_with_their_audit_trail() {
    let p = Project::example("roster-flow");
    let plan = json_out(&p.run(&["roster", "plan", "--tenant", "cwz", "--format", "json"]));
    assert_eq!(plan["format_version"], "1");
    let cwz = tenant(&plan, "cwz");
    assert_eq!(cwz["group"], "lb-cwz-emergency");
    assert_eq!(cwz["joiners"].as_array().unwrap().len(), 14);
    assert!(
        cwz["joiners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["upn"] == "k.bakker@cwz.nl"
                && j["rule"].as_str().unwrap().contains("ICT on-call"))
    );
    // The one who left in October is not a joiner.
    assert!(!upns(&cwz["joiners"]).contains(&"d.deboer3@cwz.nl".to_string()));
    assert_eq!(cwz["max_users"], 20);
    let r = p.run(&["roster", "plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "changes pending: {}", r.stdout);

    let r = p.run(&["roster", "apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("MFA policy created, 3 group(s)"),
        "{}",
        r.stdout
    );
    assert_eq!(p.run(&["roster", "plan", "--detailed-exitcode"]).code, 0);

    // Someone adds a colleague to the group by hand.
    let d = directory(&p);
    let gid = group_id(&d, "lb-cwz-emergency");
    let inv = graph(
        &d,
        "POST",
        "/invitations",
        json!({"invitedUserEmailAddress": "friend@cwz.nl", "inviteRedirectUrl": "https://x"}),
    );
    let fid = inv["invitedUser"]["id"].as_str().unwrap().to_string();
    graph(
        &d,
        "POST",
        &format!("/groups/{gid}/members/$ref"),
        json!({"@odata.id": format!("{GRAPH_HOST}/v1.0/directoryObjects/{fid}")}),
    );

    // The next HR export: one left, one moved departments (still eligible),
    // one is gone from the export, one joined; the manual entry expired.
    let hr = p.read("hr/cwz.csv");
    let hr = hr
        .replace(
            "1000;a.devries0@cwz.nl;Anna de Vries;SEH;arts;2010-01-01;;",
            "1000;a.devries0@cwz.nl;Anna de Vries;SEH;arts;2010-01-01;2025-06-30;",
        )
        .replace(
            "1001;b.mulder1@cwz.nl;Bram Mulder;IC;arts;",
            "1001;b.mulder1@cwz.nl;Bram Mulder;SEH;arts;",
        );
    let hr: String = hr
        .lines()
        .filter(|l| !l.contains("f.meijer5@cwz.nl"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "2000;new.arts@cwz.nl;Nieuwe Arts;IC;arts;2026-01-01;;KP-1\n";
    p.write("hr/cwz.csv", hr);
    p.edit(
        "tenants/cwz.yaml",
        "expires: 2027-03-01",
        "expires: 2026-01-01",
    );

    let plan = json_out(&p.run(&["roster", "plan", "--tenant", "cwz", "--format", "json"]));
    let cwz = tenant(&plan, "cwz");
    assert_eq!(upns(&cwz["joiners"]), ["new.arts@cwz.nl"]);
    let why: std::collections::BTreeMap<String, String> = cwz["leavers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["upn"].as_str().unwrap().to_string(),
                l["why"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(why["a.devries0@cwz.nl"], "left on 2025-06-30");
    assert_eq!(why["f.meijer5@cwz.nl"], "no longer in the HR export");
    assert_eq!(why["k.bakker@cwz.nl"], "manual entry expired on 2026-01-01");
    assert_eq!(why.len(), 3, "{why:?}");
    assert_eq!(upns(&cwz["movers"]), ["b.mulder1@cwz.nl"]);
    assert!(
        cwz["movers"][0]["from"]
            .as_str()
            .unwrap()
            .starts_with("IC / arts"),
        "{cwz}"
    );
    assert_eq!(upns(&cwz["unmanaged"]), ["friend@cwz.nl"]);

    // --keep-unmanaged leaves the hand-added member; the leavers go regardless.
    let r = p.run(&[
        "roster",
        "apply",
        "--tenant",
        "cwz",
        "--auto-approve",
        "--keep-unmanaged",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let d = directory(&p);
    assert_eq!(
        user_by_mail(&d, "a.devries0@cwz.nl")["accountEnabled"],
        false,
        "a leaver's guest account is disabled"
    );
    assert_eq!(user_by_mail(&d, "new.arts@cwz.nl")["accountEnabled"], true);
    let members = graph(
        &d,
        "GET",
        &format!("/groups/{gid}/members?$select=mail"),
        Value::Null,
    );
    let mut mails: Vec<&str> = members["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mail"].as_str().unwrap())
        .collect();
    mails.sort();
    assert!(mails.contains(&"friend@cwz.nl") && mails.contains(&"new.arts@cwz.nl"));
    assert!(!mails.contains(&"a.devries0@cwz.nl") && !mails.contains(&"k.bakker@cwz.nl"));
    let r = p.run(&["roster", "apply", "--tenant", "cwz", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("- cwz friend@cwz.nl (not in the roster (unmanaged))"),
        "{}",
        r.stdout
    );

    // A leaver who is hired again is a joiner, and their account comes back.
    let hr = p
        .read("hr/cwz.csv")
        .replace("2010-01-01;2025-06-30;", "2010-01-01;;");
    p.write("hr/cwz.csv", hr);
    let r = p.run(&["roster", "apply", "--tenant", "cwz", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        user_by_mail(&directory(&p), "a.devries0@cwz.nl")["accountEnabled"],
        true
    );

    // One audit record per change, in the verified trail.
    let audit = p.run(&["--output", "json", "audit", "verify"]);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    let trail = p.read(".lifeboat/state/audit.jsonl");
    let changes: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["command"] == "roster apply")
        .collect();
    // 37 joins, then 1 join + 3 leaves + 1 move, 1 removal, 1 re-join.
    assert_eq!(changes.len(), 37 + 5 + 1 + 1, "{}", changes.len());
    assert!(changes.iter().any(|c| c["details"]["change"] == "leave"
        && c["details"]["upn"] == "k.bakker@cwz.nl"
        && c["reason"] == "manual entry expired on 2026-01-01"));

    // The attestation list: who, on which basis, since when.
    let csv = p.run(&["roster", "report", "--tenant", "cwz", "--format", "csv"]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    assert!(
        csv.stdout
            .starts_with("upn,displayName,basis,since,inGroup\n")
    );
    assert!(
        csv.stdout.contains("new.arts@cwz.nl,Nieuwe Arts,"),
        "{}",
        csv.stdout
    );
    assert!(!csv.stdout.contains("k.bakker@cwz.nl"));
    assert_eq!(csv.stdout.lines().count(), 1 + 13);
    let html = p.run(&["roster", "report", "--tenant", "cwz", "--format", "html"]);
    assert!(
        html.stdout.contains("<td>new.arts@cwz.nl</td>"),
        "{}",
        html.stdout
    );
}

#[test]
fn more_people_than_max_users_is_refused_naming_them_and_changes_nothing() {
    let p = Project::example("roster-max");
    p.edit("tenants/cwz.yaml", "maxUsers: 20", "maxUsers: 12");
    let r = p.run(&["roster", "apply", "--tenant", "cwz", "--auto-approve"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("14 people qualify for the emergency group but maxUsers is 12: 2 over"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("z.hendriks21@cwz.nl"), "{}", r.stderr);
    let d = directory(&p);
    assert_eq!(
        graph(&d, "GET", "/groups", Value::Null)["value"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        graph(&d, "GET", "/users", Value::Null)["value"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_broken_hr_export_names_file_line_column_and_field() {
    let p = Project::example("roster-hr");
    let hr = p.read("hr/mst.csv").replacen("2011-02-01", "2011-02-31", 1);
    p.write("hr/mst.csv", hr);
    p.edit("tenants/rst.yaml", "hr: hr/rst.csv", "hr: ../rst.csv");
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(
        out.contains("hr/mst.csv:3:") && out.contains("startDate: `2011-02-31` is not a date"),
        "{out}"
    );
    assert!(
        out.contains("tenants/rst.yaml:")
            && out.contains("spec.access.roster.hr")
            && out.contains("inside the project"),
        "{out}"
    );
}

#[test]
fn activation_is_refused_without_a_roster_and_without_the_mfa_policy() {
    let p = Project::example("roster-activate");
    let r = p.run(&[
        "--output", "json", "activate", "cwz", "--reason", "fire", "--force",
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let run = crate::dap::last_json(&r);
    assert_eq!(run["outcome"], "refused");
    assert!(
        run["error"].as_str().unwrap().contains("nobody may log in"),
        "{run}"
    );
    assert_eq!(p.run(&["roster", "apply", "--auto-approve"]).code, 0);
    // The policy switched off: staff would log in without MFA.
    let d = directory(&p);
    let pol = graph(
        &d,
        "GET",
        "/identity/conditionalAccess/policies",
        Value::Null,
    );
    let id = pol["value"][0]["id"].as_str().unwrap().to_string();
    graph(
        &d,
        "PATCH",
        &format!("/identity/conditionalAccess/policies/{id}"),
        json!({"state": "disabled"}),
    );
    let r = p.run(&["--output", "json", "activate", "cwz", "--reason", "fire"]);
    let run = crate::dap::last_json(&r);
    assert_eq!(run["outcome"], "refused", "{run}");
    assert!(run["error"].as_str().unwrap().contains("MFA"), "{run}");
    // Status shows both.
    let s = p.run(&["--output", "json", "status", "--tenant", "cwz"]);
    let v: Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(v["tenants"][0]["roster_members"], 14);
    assert_eq!(v["tenants"][0]["mfa_policy"], "disabled");
    // roster apply enables it again; then the activation gets past the roster
    // to its own preflight (this project is not provisioned).
    assert_eq!(p.run(&["roster", "apply", "--auto-approve"]).code, 0);
    let r = p.run(&["--output", "json", "activate", "cwz", "--reason", "fire"]);
    let run = crate::dap::last_json(&r);
    assert_ne!(run["outcome"], "refused", "{run}");
    assert_eq!(run["steps"][0]["name"], "preflight");
}

/// Microsoft Graph's paging, `$batch` of 20 and 429 + Retry-After, through the
/// engine's client against the emulator's Graph.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_client_pages_batches_and_retries_throttled_items() {
    use lifeboat_engine::cloud::auth::Credential;
    use lifeboat_engine::cloud::graph::{BatchItem, GraphClient};
    let (url, _dir) = crate::common::emulator("graph-client", "tok", 0.001, |c| {
        c.faults.graph429 = 0.3;
    })
    .await;
    let g = GraphClient::new(&url, Credential::emulator("tok", "t"), Some(0.001));
    let items: Vec<BatchItem> = (0..250)
        .map(|i| BatchItem {
            method: "POST",
            url: "/invitations".into(),
            body: Some(json!({"invitedUserEmailAddress": format!("u{i}@x.nl"), "inviteRedirectUrl": "https://x"})),
        })
        .collect();
    let done = g.batch(&items).await.unwrap();
    assert!(
        done.iter().all(|r| r.status == 201),
        "every item in the end"
    );
    let r = g.requests();
    assert!(r.throttled > 0, "{r:?}");
    assert!(
        r.batches >= 13,
        "250 items need 13 batches of 20 at least: {r:?}"
    );
    let users = g.list("/users?$top=100").await.unwrap();
    assert_eq!(users.len(), 250, "three pages followed");
    assert_eq!(g.requests().reads, 3);
}

/// Microsoft's Graph SDK for Python (msgraph-sdk, installed by `ci/test` from
/// tests/msgraph-sdk/requirements.txt) drives the emulator's Graph through what
/// the roster does (`tests/msgraph-sdk/drive.py`); every check must pass.
#[test]
fn microsofts_graph_sdk_judges_the_embedded_graph() {
    use std::path::Path;
    let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/msgraph-sdk-python");
    assert!(
        deps.join("msgraph").is_dir(),
        "{} is missing: run ci/test, which installs Microsoft's Graph SDK for Python",
        deps.display()
    );
    let p = Project::example("msgraph-sdk");
    let (_emu, endpoint) = p.serve_emulator("graph-judge", "0.001");
    let out = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/msgraph-sdk/drive.py"))
        .arg(&endpoint)
        .arg("graph-judge")
        .env("PYTHONPATH", &deps)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok   ").count(), 8, "{stdout}");
}

/// Who lifeboat added is read back from the audit trail: an edited trail (a
/// roster record's address changed to keep someone in) stops the roster before
/// it reads or writes the directory.
#[test]
fn an_edited_audit_trail_stops_the_roster() {
    let p = Project::example("roster-tamper");
    assert_eq!(
        p.run(&["roster", "apply", "--tenant", "rst", "--auto-approve"])
            .code,
        0
    );
    let trail = p.read(".lifeboat/state/audit.jsonl");
    let edited = trail.replacen("a.devries0@rst.nl", "intruder@rst.nl", 1);
    assert_ne!(trail, edited);
    p.write(".lifeboat/state/audit.jsonl", edited);
    let r = p.run(&["roster", "apply", "--tenant", "rst", "--auto-approve"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("audit trail"), "{}", r.stderr);
    assert!(!r.stdout.contains("intruder"), "{}", r.stdout);
}

/// Display names are not unique in Entra ID: two groups of the emergency name
/// stop the roster, naming both ids, before anything changes.
#[test]
fn two_groups_of_the_emergency_name_are_an_error_naming_both() {
    let p = Project::example("roster-twins");
    let d = directory(&p);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let g = graph(
            &d,
            "POST",
            "/groups",
            json!({"displayName": "lb-cwz-emergency", "mailNickname": "lb-cwz-emergency", "mailEnabled": false, "securityEnabled": true}),
        );
        ids.push(g["id"].as_str().unwrap().to_string());
    }
    let r = p.run(&["roster", "apply", "--tenant", "cwz", "--auto-approve"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("2 groups named lb-cwz-emergency"),
        "{}",
        r.stderr
    );
    assert!(
        ids.iter().all(|id| r.stderr.contains(id.as_str())),
        "{}",
        r.stderr
    );
    assert_eq!(
        graph(&d, "GET", "/users", Value::Null)["value"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// `status` reads every group and its members in `$batch`es; a group whose
/// members fill more than one page (999) is read by itself, page by page, and
/// counted whole; two groups of one name are the warning `roster` gives.
#[test]
fn status_counts_a_group_of_more_than_one_page_and_names_twin_groups() {
    let p = Project::example("roster-pages");
    assert_eq!(p.run(&["roster", "apply", "--auto-approve"]).code, 0);
    let d = directory(&p);
    let group = group_id(&d, "lb-cwz-emergency");
    for i in 0..990 {
        let invited = graph(
            &d,
            "POST",
            "/invitations",
            json!({"invitedUserEmailAddress": format!("extra{i:04}@cwz.nl"), "inviteRedirectUrl": "https://myapps.microsoft.com", "sendInvitationMessage": false}),
        );
        let id = invited["invitedUser"]["id"].as_str().unwrap();
        graph(
            &d,
            "POST",
            &format!("/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("{GRAPH_HOST}/v1.0/directoryObjects/{id}")}),
        );
    }
    let counts = |r: &Run| -> Vec<(String, Value)> {
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["tenant"].as_str().unwrap().to_string(),
                    t["roster_members"].clone(),
                )
            })
            .collect()
    };
    let r = p.run(&["--output", "json", "status"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = counts(&r);
    assert!(all.contains(&("cwz".into(), json!(14 + 990))), "{all:?}");
    assert!(
        all.iter()
            .all(|(t, n)| t == "cwz" || n.as_u64().is_some_and(|n| n > 0)),
        "{all:?}"
    );
    // A second group of cwz's name: the roster is unavailable, said once.
    graph(
        &d,
        "POST",
        "/groups",
        json!({"displayName": "lb-cwz-emergency", "mailNickname": "lb-cwz-emergency", "mailEnabled": false, "securityEnabled": true}),
    );
    let r = p.run(&["status"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("roster unavailable")
            && r.stderr.contains("2 groups named lb-cwz-emergency"),
        "{}",
        r.stderr
    );
}

/// A leaver whom Graph will not let go (every write throttled, past the
/// retries) fails the run, exit 1, naming them: never a silent "done".
#[test]
fn a_leaver_that_cannot_be_removed_fails_the_run_naming_them() {
    let p = Project::example("roster-stuck");
    assert_eq!(
        p.run(&["roster", "apply", "--tenant", "rst", "--auto-approve"])
            .code,
        0
    );
    p.edit(
        "tenants/rst.yaml",
        "expires: 2027-06-30",
        "expires: 2026-01-01",
    );
    let r = p.run_env(
        &["roster", "apply", "--tenant", "rst", "--auto-approve"],
        &[
            ("LIFEBOAT_EMULATOR_FAULTS", "graph429=1"),
            ("LIFEBOAT_EMULATOR_TIME_SCALE", "0.001"),
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("leaver(s) still have access: it.oncall@rst.nl"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("FAILED - rst it.oncall@rst.nl"),
        "{}",
        r.stdout
    );
    // The failure is in the trail too; the next run (no throttling) removes them.
    let r = p.run(&["roster", "apply", "--tenant", "rst", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("- rst it.oncall@rst.nl (manual entry expired on 2026-01-01)"),
        "{}",
        r.stdout
    );
}

/// Two operators run `roster apply` at once (a pipeline and an engineer): one
/// waits for the other, then plans from what the first recorded, so every
/// change happens once and is recorded once.
#[test]
fn two_roster_runs_at_once_change_and_record_everything_once() {
    let p = Project::example("roster-twice");
    let runs: Vec<Run> = std::thread::scope(|s| {
        let a = s.spawn(|| p.run(&["roster", "apply", "--auto-approve"]));
        let b = s.spawn(|| p.run(&["roster", "apply", "--auto-approve"]));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    for r in &runs {
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    }
    let joins = p
        .read(".lifeboat/state/audit.jsonl")
        .lines()
        .filter(|l| l.contains("\"roster apply\"") && l.contains("\"join\""))
        .count();
    assert_eq!(joins, 37, "each joiner recorded once");
    assert!(
        runs.iter()
            .any(|r| r.stdout.contains("Roster applied: 0 change(s)")),
        "the second run found nothing left to do"
    );
    let d = directory(&p);
    let groups = graph(&d, "GET", "/groups", Value::Null);
    assert_eq!(
        groups["value"].as_array().unwrap().len(),
        3,
        "one group per tenant"
    );
}
