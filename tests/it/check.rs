//! Integration tests of the guardrails through the binary: `check` (findings,
//! template and manifest lines, waivers and their expiry, exit 3, SARIF validated
//! against the OASIS SARIF 2.1.0 schema), findings in `plan` and `apply`'s refusal,
//! the cost table in `plan`, and `pricing refresh` against a local Retail Prices
//! API that serves fixture pages.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use common::Project;
use serde_json::Value;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn findings(v: &Value) -> Vec<Value> {
    v["findings"].as_array().unwrap().clone()
}

fn with_rule<'a>(fs: &'a [Value], rule: &str) -> Vec<&'a Value> {
    fs.iter().filter(|f| f["rule"] == rule).collect()
}

/// The SARIF 2.1.0 schema, fetched by `ci/test` (npm package @microsoft/jest-sarif).
fn sarif_schema() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/sarif-2.1.0-rtm.5.json");
    assert!(
        p.exists(),
        "{} is missing: run ci/test, which fetches it",
        p.display()
    );
    p
}

/// Validate `doc` against the SARIF schema with python's jsonschema; Err(message).
fn validate_sarif(doc: &Path) -> Result<(), String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             schema=json.load(open(sys.argv[2]))\n\
             jsonschema.validators.validator_for(schema)(schema).validate(json.load(open(sys.argv[1])))",
        ])
        .arg(doc)
        .arg(sarif_schema())
        .output()
        .expect("python3 runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `check` with JSON output, writing SARIF to `sarif`.
fn check_with_sarif(p: &Project, sarif: &Path) -> common::Run {
    p.run(&[
        "--output",
        "json",
        "check",
        "--sarif",
        sarif.to_str().unwrap(),
    ])
}

#[test]
fn example_estate_is_clean_with_its_waivers_and_sarif_is_valid() {
    let p = Project::example("check-clean");
    // The shipped example waives only what it must; a waiver for a rule lifeboat
    // does not check is reported as a note.
    let r = p.run(&["--output", "json", "check"]);
    assert!(with_rule(&findings(&json(&r.stdout)), "LB-WAIVER-UNUSED").is_empty());
    p.edit("tenants/cwz.yaml", "  contacts:", UNUSED_WAIVER);
    let sarif = p.dir.join("findings.sarif");
    let r = check_with_sarif(&p, &sarif);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = json(&r.stdout);
    assert!(v["rules"].as_u64().unwrap() >= 25);
    let fs = findings(&v);
    // The NetScaler gateways have no Trusted Launch: waived in platform.yaml.
    let tl = with_rule(&fs, "CIS-7.9");
    assert_eq!(tl.len(), 2, "{fs:#?}");
    for f in &tl {
        assert_eq!(f["waived"]["expires"], "2027-06-30");
        assert!(
            f["resource"]
                .as_str()
                .unwrap()
                .contains("/virtualMachines/lb-gw0")
        );
        assert_eq!(f["location"]["file"], "templates/shared/citrix.yaml.tera");
    }
    // cwz's waiver for a rule lifeboat does not check is a note.
    let unused = with_rule(&fs, "LB-WAIVER-UNUSED");
    assert_eq!(unused.len(), 1);
    assert_eq!(unused[0]["tenant"], "cwz");
    assert_eq!(unused[0]["location"]["file"], "tenants/cwz.yaml");
    assert_eq!(v["summary"]["error"], 0);

    validate_sarif(&sarif).unwrap();
    let doc: Value = json(&std::fs::read_to_string(&sarif).unwrap());
    let run = &doc["runs"][0];
    assert!(run["tool"]["driver"]["rules"].as_array().unwrap().len() >= 25);
    let waived = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["suppressions"][0]["status"] == "accepted")
        .count();
    assert_eq!(waived, 2);
    // The validator does reject a broken document.
    let mut broken = doc.clone();
    broken["runs"][0]["results"][0]["level"] = "critical".into();
    let bad = p.dir.join("broken.sarif");
    std::fs::write(&bad, broken.to_string()).unwrap();
    assert!(validate_sarif(&bad).is_err());
}

/// A waiver for a rule lifeboat does not check, before cwz's contacts.
const UNUSED_WAIVER: &str = "  exceptions:\n    - { rule: CIS-7.1, reason: \"jump host during migration\", expires: 2027-03-01 }\n  contacts:";

/// A project whose templates and platform break rules: TLS 1.0 and public blobs on
/// the backup storage, RDP from the internet to the front-ends, one StoreFront.
fn violating(name: &str) -> Project {
    let p = Project::example(name);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let backup = std::fs::read_to_string(root.join("templates/tenant/backup.yaml.tera")).unwrap();
    p.write(
        "templates/tenant/backup.yaml.tera",
        backup
            .replace("minimumTlsVersion: TLS1_2", "minimumTlsVersion: TLS1_0")
            .replace(
                "allowBlobPublicAccess: false",
                "allowBlobPublicAccess: true",
            ),
    );
    let net = std::fs::read_to_string(root.join("templates/tenant/network.yaml.tera")).unwrap();
    p.write(
        "templates/tenant/network.yaml.tera",
        net.replacen(
            "      - name: allow-ica-from-citrix",
            "      - name: allow-rdp-from-anywhere\n        properties: { priority: 90, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: Internet, sourcePortRange: \"*\", destinationAddressPrefix: \"*\", destinationPortRange: \"3389\" }\n      - name: allow-ica-from-citrix",
            1,
        ),
    );
    p.edit(
        "platform.yaml",
        "storefront:      { count: 2,",
        "storefront:      { count: 1,",
    );
    p
}

fn line_of(text: &str, needle: &str) -> u64 {
    text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1
}

#[test]
fn violations_name_rule_resource_line_and_fix_and_exit_3() {
    let p = violating("check-violations");
    let sarif = p.dir.join("out.sarif");
    let r = check_with_sarif(&p, &sarif);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let fs = findings(&json(&r.stdout));
    let backup = p.read("templates/tenant/backup.yaml.tera");

    let tls = with_rule(&fs, "CIS-3.15");
    assert_eq!(tls.len(), 6, "two backup accounts per tenant: {tls:#?}");
    let f = tls[0];
    assert_eq!(f["severity"], "error");
    assert_eq!(f["location"]["file"], "templates/tenant/backup.yaml.tera");
    assert_eq!(f["location"]["line"], line_of(&backup, "minimumTlsVersion"));
    assert!(f["message"].as_str().unwrap().contains("TLS1_0"));
    assert!(f["fix"].as_str().unwrap().contains("TLS1_2"));
    assert!(
        f["resource"]
            .as_str()
            .unwrap()
            .contains("/storageAccounts/")
    );
    assert_eq!(with_rule(&fs, "CIS-3.7").len(), 6);

    let rdp = with_rule(&fs, "CIS-6.1");
    assert_eq!(rdp.len(), 3, "one front-end NSG per tenant");
    let net = p.read("templates/tenant/network.yaml.tera");
    assert_eq!(
        rdp[0]["location"]["line"],
        line_of(&net, "allow-rdp-from-anywhere")
    );

    let tier = with_rule(&fs, "LB-HA-TIER");
    assert_eq!(tier.len(), 1);
    assert_eq!(tier[0]["location"]["file"], "platform.yaml");
    assert_eq!(
        tier[0]["location"]["line"],
        line_of(&p.read("platform.yaml"), "storefront:")
    );
    assert!(
        tier[0]["message"]
            .as_str()
            .unwrap()
            .contains("1 instance(s) in 1 zone(s)")
    );

    validate_sarif(&sarif).unwrap();

    // Human output names the same.
    let r = p.run(&["check"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stdout.contains(
            "CIS-6.1 Ensure that RDP access from the Internet is evaluated and restricted"
        )
    );
    assert!(r.stdout.contains("templates/tenant/backup.yaml.tera:"));
}

#[test]
fn waivers_cover_until_their_expiry_then_count_again() {
    let p = violating("check-waivers");
    p.edit(
        "tenants/mst.yaml",
        "  contacts:",
        "  exceptions:\n    - { rule: CIS-3.15, reason: \"legacy log shipper speaks TLS 1.0 until its upgrade\", expires: 2026-12-31 }\n  contacts:",
    );
    let before = p.run_env(
        &["--output", "json", "check"],
        &[("LIFEBOAT_NOW", "2026-12-31T23:00:00Z")],
    );
    let fs = findings(&json(&before.stdout));
    let mst_tls: Vec<&Value> = with_rule(&fs, "CIS-3.15")
        .into_iter()
        .filter(|f| f["tenant"] == "mst")
        .collect();
    assert_eq!(mst_tls.len(), 2);
    assert!(
        mst_tls
            .iter()
            .all(|f| f["waived"]["reason"].as_str().unwrap().contains("legacy"))
    );
    assert!(
        with_rule(&fs, "CIS-3.15")
            .iter()
            .any(|f| f["tenant"] == "cwz" && f["waived"].is_null())
    );
    assert!(with_rule(&fs, "LB-WAIVER-EXPIRED").is_empty());

    let after = p.run_env(
        &["--output", "json", "check"],
        &[("LIFEBOAT_NOW", "2027-01-01T00:00:00Z")],
    );
    assert_eq!(after.code, 3);
    let fs = findings(&json(&after.stdout));
    let expired = with_rule(&fs, "LB-WAIVER-EXPIRED");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["tenant"], "mst");
    assert_eq!(expired[0]["location"]["file"], "tenants/mst.yaml");
    assert!(
        with_rule(&fs, "CIS-3.15")
            .iter()
            .all(|f| f["waived"].is_null())
    );
}

#[test]
fn plan_lists_findings_and_apply_refuses_unwaived_errors() {
    let p = violating("check-plan");
    let r = p.run(&["plan"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("Policy findings on the changed resources"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("CIS-3.15"));
    assert!(r.stdout.contains("apply refuses this plan"));
    let md = p.run(&["plan", "--format", "markdown"]);
    assert!(md.stdout.contains("**Policy findings**"));

    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unwaived policy error(s)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("CIS-6.1"));
    // Nothing was written: the next plan still creates everything.
    let v = json(&p.run(&["plan", "--format", "json"]).stdout);
    assert_eq!(v["summary"]["no_op"], 0);
    assert!(v["summary"]["create"].as_u64().unwrap() > 100);
    assert!(v["policy"]["error"].as_u64().unwrap() > 0);

    // A saved plan carries its findings: applying it is refused too.
    let planfile = p.dir.join("saved.plan");
    p.run(&["plan", "--out", planfile.to_str().unwrap()]);
    let r = p.run(&["apply", planfile.to_str().unwrap(), "--auto-approve"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unwaived policy error(s)"),
        "{}",
        r.stderr
    );
}

/// Serve `pages` (in order, one per request) as JSON; `{BASE}` in a page becomes
/// the server's URL. Returns the base URL.
fn serve(pages: Vec<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    std::thread::spawn(move || {
        for page in pages {
            let (mut s, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let body = page.replace("{BASE}", &b);
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    base
}

#[test]
fn plan_shows_cost_and_pricing_refresh_reads_the_retail_prices_api() {
    let p = Project::example("check-cost");
    let v = json(&p.run(&["plan", "--format", "json"]).stdout);
    let cost = &v["cost"];
    assert_eq!(cost["currency"], "USD");
    let rows = cost["tenants"].as_array().unwrap();
    let row = |t: &str| rows.iter().find(|r| r["tenant"] == t).unwrap().clone();
    let cwz = row("cwz");
    // Idle: SQL VM running, 20 front-ends deallocated; activated: everything.
    let idle = cwz["declared"]["idle_monthly"].as_f64().unwrap();
    let active = cwz["declared"]["active_hourly"].as_f64().unwrap();
    assert!(idle > 500.0 && idle < 5000.0, "{cwz}");
    assert!(
        active * 730.0 > idle * 2.0,
        "activation runs 20 front-ends: {cwz}"
    );
    assert_eq!(cwz["delta_idle_monthly"], cwz["declared"]["idle_monthly"]);
    assert!(rows.iter().any(|r| r["tenant"].is_null()), "shared row");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/retail-prices");
    let pages = ["page1.json", "page2.json"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .collect();
    let base = serve(pages);
    let r = p.run_env(
        &[
            "pricing",
            "refresh",
            "--endpoint",
            &format!("{base}/api/retail/prices"),
        ],
        &[("LIFEBOAT_NOW", "2026-12-01T09:00:00Z")],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("Updated 4 price(s) from 6 item(s) in 2 page(s)"),
        "{}",
        r.stdout
    );
    let table = json(&p.read("pricing/westeurope.json"));
    assert_eq!(table["date"], "2026-12-01");
    assert!(
        table["source"]
            .as_str()
            .unwrap()
            .contains("Azure Retail Prices API")
    );
    assert_eq!(table["vmHourly"]["Standard_D4s_v5"], 0.5);
    assert_eq!(table["vmHourly"]["Standard_E8ds_v5"], 1.2);
    assert_eq!(table["diskMonthly"]["Premium_LRS"]["P30"], 160.0);

    // The plan now prices with the refreshed table: cwz's front-ends cost more.
    let v = json(&p.run(&["plan", "--format", "json"]).stdout);
    assert_eq!(v["cost"]["prices_date"], "2026-12-01");
    let rows = v["cost"]["tenants"].as_array().unwrap();
    let after = rows.iter().find(|r| r["tenant"] == "cwz").unwrap();
    assert!(after["declared"]["active_hourly"].as_f64().unwrap() > active);
}

/// The mismatch the shipped template once had: a customer-key disk under a
/// double-encryption set. Azure refuses that PUT, so `check` does too, naming
/// the line; the embedded cloud refuses it like Azure (see `emulator.rs`).
#[test]
fn a_disk_whose_encryption_type_differs_from_its_set_is_an_error() {
    let p = Project::example("check-des-type");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sql = std::fs::read_to_string(root.join("templates/tenant/sql.yaml.tera")).unwrap();
    assert!(sql.contains("type: EncryptionAtRestWithPlatformAndCustomerKeys"));
    p.write(
        "templates/tenant/sql.yaml.tera",
        sql.replace(
            "type: EncryptionAtRestWithPlatformAndCustomerKeys",
            "type: EncryptionAtRestWithCustomerKey",
        ),
    );
    let r = p.run(&["--output", "json", "check"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let fs = findings(&json(&r.stdout));
    let hits = with_rule(&fs, "LB-DISK-DES-TYPE");
    assert_eq!(hits.len(), 3, "one SQL data disk per tenant: {hits:#?}");
    assert_eq!(
        hits[0]["location"]["file"],
        "templates/tenant/sql.yaml.tera"
    );
    assert_eq!(
        hits[0]["location"]["line"],
        line_of(&p.read("templates/tenant/sql.yaml.tera"), "    encryption:")
    );
    assert!(
        hits[0]["message"]
            .as_str()
            .unwrap()
            .contains("EncryptionAtRestWithPlatformAndCustomerKeys")
    );
}

/// #18: a platform without alerts renders no action group or alert rules, and
/// `check` says that nobody would be told (a warning at platform.yaml).
#[test]
fn a_platform_without_alerts_is_flagged_and_renders_no_alert_rules() {
    let p = Project::example("check-alerts");
    let r = p.run(&["--output", "json", "check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(with_rule(&findings(&json(&r.stdout)), "LB-ALERTS").is_empty());
    let platform = p.read("platform.yaml");
    let start = platform.find("  alerts:").unwrap();
    let end = start + platform[start..].find("\n  exceptions:").unwrap();
    p.write(
        "platform.yaml",
        format!("{}{}", &platform[..start], &platform[end + 1..]),
    );
    let r = p.run(&["--output", "json", "check"]);
    assert_eq!(r.code, 0, "a warning: {}", r.stderr);
    let fs = findings(&json(&r.stdout));
    let hits = with_rule(&fs, "LB-ALERTS");
    assert_eq!(hits.len(), 1, "{fs:#?}");
    assert_eq!(hits[0]["location"]["file"], "platform.yaml");
    let plan = p.run(&["--output", "json", "plan"]);
    assert!(!plan.stdout.contains("scheduledQueryRules") && !plan.stdout.contains("actionGroups"));
}
