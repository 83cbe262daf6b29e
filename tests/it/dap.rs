//! Integration tests of the Disaster Activation Plan through the binary, on the
//! embedded cloud at time scale 0.001: activate / status / deactivate / drill with
//! its reports (the HTML one rendered by headless Chromium), the RPO refusal when
//! log shipping stopped, read-write confirmation, a partial failure continued by a
//! re-run, and the audit trail's hash chain.

use crate::common;

use std::path::Path;

use common::{Project, Run};
use serde_json::{Value, json};

const FAST: (&str, &str) = ("LIFEBOAT_EMULATOR_TIME_SCALE", "0.001");

fn run(p: &Project, args: &[&str], faults: Option<&str>) -> Run {
    let mut env = vec![FAST];
    if let Some(f) = faults {
        env.push(("LIFEBOAT_EMULATOR_FAULTS", f));
    }
    p.run_env(args, &env)
}

/// The last JSON object on stdout (events come first as JSON lines).
pub(crate) fn last_json(r: &Run) -> Value {
    r.stdout
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("event").is_none())
        })
        .unwrap_or_else(|| panic!("no JSON result in:\n{}\n{}", r.stdout, r.stderr))
}

/// Provision the examples with their images and front-ends.
pub(crate) fn provisioned(name: &str, faults: Option<&str>) -> Project {
    let p = Project::example(name);
    for args in [
        &["apply", "--auto-approve"][..],
        &["image", "build", "--all"],
        &["apply", "--auto-approve"],
        // Who may log in (activation refuses an empty roster).
        &["roster", "apply", "--auto-approve"],
    ] {
        let r = run(&p, args, faults);
        assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stdout, r.stderr);
    }
    p
}

/// `activate cwz --reason outage --force --read-write` plus `extra`.
fn read_write(p: &Project, extra: &[&str], faults: Option<&str>) -> Run {
    let mut args = vec![
        "activate",
        "cwz",
        "--reason",
        "outage",
        "--force",
        "--read-write",
    ];
    args.extend_from_slice(extra);
    run(p, &args, faults)
}

fn status(p: &Project, faults: Option<&str>) -> Vec<Value> {
    let r = run(p, &["--output", "json", "status"], faults);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["tenants"].as_array().unwrap().clone()
}

fn tenant<'a>(ts: &'a [Value], id: &str) -> &'a Value {
    ts.iter().find(|t| t["tenant"] == id).unwrap()
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn activate_status_deactivate_drill_and_the_audit_trail() {
    let p = provisioned("dap-flow", None);
    let ts = status(&p, None);
    let cwz = tenant(&ts, "cwz");
    assert_eq!(cwz["state"], "STANDBY");
    assert_eq!(cwz["sql"]["state"], "RESTORING");
    assert_eq!(cwz["power"]["deallocated"], 20);
    assert_eq!(cwz["images"]["6.3.52"], 20);
    assert_eq!(cwz["drift"], 0);
    assert!(cwz["rpo_ok"].as_bool().unwrap(), "{cwz}");
    assert_eq!(cwz["alerts"], json!([]), "log shipping runs: nothing fires");
    assert_eq!(cwz["roster_members"], 14);
    assert_eq!(cwz["mfa_policy"], "enabled");
    assert_eq!(tenant(&ts, "mst")["sql"]["mode"], "standby");

    let r = run(
        &p,
        &[
            "--output",
            "json",
            "activate",
            "cwz",
            "--reason",
            "fire in the data centre",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let a = last_json(&r);
    assert_eq!(a["outcome"], "succeeded");
    let names: Vec<&str> = a["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "preflight",
            "sql-standby",
            "start-frontends",
            "open-access",
            "mark-active",
            "health-probe"
        ]
    );
    let (rto, cp) = (
        a["rto_ms"].as_u64().unwrap(),
        a["critical_path_ms"].as_u64().unwrap(),
    );
    assert!(
        rto >= cp && rto <= cp + 100,
        "RTO {rto} ms vs critical path {cp} ms"
    );
    assert!(a["sql"]["rpo_seconds"].as_i64().unwrap() <= 900);
    // #17: nothing slower than a read beside the front-ends' start. The
    // preflight took the monitor row from Log Analytics (no runCommand), the
    // switch read the database back itself, and the probe needs no runCommand.
    let step = |n: &str| {
        a["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap()
            .clone()
    };
    let detail = |n: &str| step(n)["detail"].as_str().unwrap().to_string();
    assert!(
        detail("preflight").contains("read from Log Analytics"),
        "{a}"
    );
    assert!(
        detail("sql-standby").contains("ONLINE (standby) read back"),
        "{a}"
    );
    // The ratio to the VM start is measured by ci/bench-fleet (timings here
    // share two cores with the rest of the suite).
    assert!(
        detail("health-probe").contains("database ONLINE (standby)"),
        "{a}"
    );

    let ts = status(&p, None);
    let cwz = tenant(&ts, "cwz");
    assert_eq!(cwz["state"], "ACTIVE");
    assert_eq!(cwz["reason"], "fire in the data centre");
    assert_eq!(cwz["power"]["running"], 20);
    assert_eq!(cwz["sql"]["state"], "ONLINE");
    assert_eq!(cwz["sql"]["mode"], "standby");
    // Activation is not drift: the plan keeps the open access and the mark.
    let r = run(&p, &["plan", "--detailed-exitcode"], None);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let prom = run(&p, &["status", "--format", "prometheus"], None).stdout;
    assert!(
        prom.contains("lifeboat_tenant_active{tenant=\"cwz\"} 1"),
        "{prom}"
    );
    assert!(prom.contains("lifeboat_frontends{tenant=\"cwz\",state=\"running\"} 20"));
    let html = run(&p, &["status", "--format", "html"], None).stdout;
    assert!(html.contains("<tr class=\"ACTIVE\" data-tenant=\"cwz\">"));

    // A second activation is refused and changes nothing.
    let r = run(&p, &["activate", "cwz", "--reason", "again"], None);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("REFUSED") && r.stdout.contains("already active"),
        "{}",
        r.stdout
    );

    let r = run(&p, &["--output", "json", "deactivate", "cwz"], None);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let ts = status(&p, None);
    let cwz = tenant(&ts, "cwz");
    assert_eq!(cwz["state"], "STANDBY");
    assert_eq!(cwz["power"]["deallocated"], 20);
    assert_eq!(cwz["sql"]["state"], "RESTORING");

    // Drill with reports.
    let dir = p.dir.join("drill-report");
    let r = run(
        &p,
        &["drill", "mst", "--report", dir.to_str().unwrap()],
        None,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Drill mst PASSED"), "{}", r.stdout);
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("drill.json")).unwrap()).unwrap();
    assert_eq!(d["outcome"], "passed");
    assert_eq!(d["deactivation"]["outcome"], "succeeded");
    let junit = dir.join("drill-junit.xml");
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys,xml.etree.ElementTree as E; s=E.parse(sys.argv[1]).getroot().find('testsuite'); print(s.get('tests'), s.get('failures'), len(s.findall('testcase')))"])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "12 0 12",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mst = tenant(&status(&p, None), "mst").clone();
    assert!(
        mst["last_drill"].as_str().unwrap().ends_with(" ok"),
        "{mst}"
    );
    assert!(mst["last_drill_rto_seconds"].as_f64().unwrap() > 0.0);

    // The HTML report renders in a real browser.
    let browser =
        chromium().expect("Chromium is needed for the report test: run ci/test, which installs it");
    let html = dir.join("drill.html");
    let out = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("id=\"verdict\" class=\"pass\">Drill mst: PASSED"),
        "{dom}"
    );
    assert_eq!(dom.matches("<tr class=\"step ok\">").count(), 12, "{dom}");

    // Every mutating command is in the audit trail, and an edit is detected.
    let r = run(&p, &["--output", "json", "audit", "verify"], None);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["records"], 44,
        "apply x2, image build, 37 roster joins, activate, refused activate, deactivate, drill"
    );
    let log = p.dir.join(".lifeboat/state/audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"reason\":\"fire in the data centre\""));
    std::fs::write(
        &log,
        text.replace("fire in the data centre", "routine maintenance"),
    )
    .unwrap();
    let r = run(&p, &["audit", "verify"], None);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("line 4") && r.stderr.contains("edited"),
        "{}",
        r.stderr
    );
}

#[test]
fn stale_log_shipping_refuses_and_read_write_needs_the_tenant_typed_again() {
    // Log backups stop 10 Azure-minutes after shipping began.
    let stop = Some("shipping-stop=600");
    let p = provisioned("dap-rpo", stop);
    let r = run(&p, &["activate", "cwz", "--reason", "outage"], stop);
    assert_eq!(r.code, 1);
    // The Log Analytics row would refuse: the refusal rests on a direct read.
    assert!(r.stdout.contains("read from runCommand"), "{}", r.stdout);
    assert!(
        r.stdout.contains("REFUSED") && r.stdout.contains("target 15 min"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("--force"));
    let cwz = tenant(&status(&p, stop), "cwz").clone();
    assert_eq!(cwz["state"], "STANDBY");
    assert_eq!(cwz["power"]["deallocated"], 20);
    assert!(!cwz["rpo_ok"].as_bool().unwrap());
    // #18: the embedded cloud evaluated the log alert rules on its clock.
    let fired: Vec<&str> = cwz["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(fired.contains(&"rpo-over-target"), "{cwz}");
    assert!(!fired.contains(&"sql-unavailable"), "{cwz}");
    let prom = run(&p, &["status", "--format", "prometheus"], stop).stdout;
    assert!(
        prom.contains("lifeboat_alert_firing{tenant=\"cwz\",alert=\"rpo-over-target\"} 1"),
        "{prom}"
    );

    let r = read_write(&p, &[], stop);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--confirm cwz"), "{}", r.stderr);
    assert_eq!(read_write(&p, &["--confirm", "mst"], stop).code, 1);

    let r = read_write(&p, &["--confirm", "cwz", "--output", "json"], stop);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(last_json(&r)["read_write"], true);
    assert_eq!(tenant(&status(&p, stop), "cwz")["sql"]["mode"], "recovery");

    // Back to standby is impossible for the database; the rest still happens.
    let r = run(&p, &["deactivate", "cwz"], stop);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("re-seed"), "{}", r.stdout);
    let cwz = tenant(&status(&p, stop), "cwz").clone();
    assert_eq!(cwz["power"]["deallocated"], 20);
    assert_eq!(cwz["state"], "STANDBY");

    // An hour of Azure time without a backup: shipping-stopped fires as well.
    // And the SQL VM goes down: sql-unavailable (its rows stop, so the age
    // rules say nothing new).
    let fires = |name: &str| {
        tenant(&status(&p, stop), "cwz")["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == name)
    };
    assert!(!fires("sql-unavailable"), "{cwz}");
    // The emulator's clock runs on (an Azure hour is 3.6 s here).
    common::wait_for(
        "shipping-stopped to fire",
        std::time::Duration::from_secs(30),
        || fires("shipping-stopped"),
    );
    let store = lifeboat_emulator::store::Store::for_project(&p.dir);
    let mut sql = store
        .list()
        .unwrap()
        .into_iter()
        .find(|r| r.id.as_str().ends_with("/virtualMachines/lb-cwz-sql"))
        .unwrap();
    sql.power = Some("deallocated".into());
    sql.operation = None;
    store.put(&sql).unwrap();
    let cwz = tenant(&status(&p, stop), "cwz").clone();
    assert_eq!(cwz["alerts"], json!(["sql-unavailable"]), "{cwz}");
}

#[test]
fn a_failed_activation_says_where_it_stopped_and_a_rerun_continues() {
    let p = provisioned("dap-partial", None);
    let r = run(
        &p,
        &["--output", "json", "activate", "rst", "--reason", "flood"],
        Some("lro-fail=0.5"),
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    let a = last_json(&r);
    assert_eq!(a["outcome"], "failed");
    let steps = a["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["outcome"], "skipped");
    assert!(steps.iter().any(|s| s["outcome"] == "failed"));
    let r = run(
        &p,
        &["--output", "json", "activate", "rst", "--reason", "flood"],
        None,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let rst = tenant(&status(&p, None), "rst").clone();
    assert_eq!(rst["state"], "ACTIVE");
    assert_eq!(rst["power"]["running"], 12);
    assert!(Path::new(&p.dir.join(".lifeboat/state/audit.jsonl")).exists());
}

fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is needed (ci/test installs it): {e}"))
}

/// A 2048-bit RSA key and its self-signed certificate (PEM), by openssl.
fn self_signed(key: &str, cert: &str) {
    let o = sh(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-subj",
            "/CN=lifeboat catalog",
            "-days",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn catalog_is_signed_accepted_by_xmlsec1_rejected_when_tampered_and_republished() {
    let p = provisioned("dap-catalog", None);
    let d = p.dir.to_str().unwrap().to_string();
    let (key, cert, out) = (
        format!("{d}/key.pem"),
        format!("{d}/cert.pem"),
        format!("{d}/catalog.xml"),
    );
    self_signed(&key, &cert);
    let r = run(
        &p,
        &[
            "catalog", "publish", "--key", &key, "--cert", &cert, "--out", &out,
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let xmlsec = |file: &str| sh("xmlsec1", &["--verify", "--pubkey-cert-pem", &cert, file]);
    let v = xmlsec(&out);
    assert!(
        v.status.success(),
        "xmlsec1 rejected it: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    let xml = std::fs::read_to_string(&out).unwrap();
    assert!(xml.contains("<Tenant id=\"cwz\""));
    assert!(xml.contains("role=\"fallback\" status=\"INACTIVE\""));
    assert!(!xml.contains("role=\"fallback\" status=\"ACTIVE\""));
    let r = run(&p, &["catalog", "verify", &out, "--cert", &cert], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("signature valid; 3 tenant(s), active: none"),
        "{}",
        r.stdout
    );

    // A tampered copy (cwz's fallback switched on by hand) fails both verifiers.
    let tampered = format!("{d}/tampered.xml");
    let i = xml.find("role=\"fallback\" status=\"INACTIVE\"").unwrap();
    let mut t = xml.clone();
    t.replace_range(
        i..i + "role=\"fallback\" status=\"INACTIVE\"".len(),
        "role=\"fallback\" status=\"ACTIVE\"",
    );
    std::fs::write(&tampered, t).unwrap();
    assert!(!xmlsec(&tampered).status.success());
    let r = run(&p, &["catalog", "verify", &tampered, "--cert", &cert], None);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("edited after signing"), "{}", r.stderr);
    // Another key's certificate does not verify it either.
    let other = format!("{d}/other.pem");
    self_signed(&format!("{d}/other.key"), &other);
    assert_eq!(
        run(&p, &["catalog", "verify", &out, "--cert", &other], None).code,
        1
    );
    // Past its cache validity (15 minutes) the catalog is refused, while the
    // certificate (2 days) still is valid.
    let in_an_hour =
        String::from_utf8(sh("date", &["-u", "-d", "+1 hour", "+%Y-%m-%dT%H:%M:%SZ"]).stdout)
            .unwrap();
    let r = p.run_env(
        &["catalog", "verify", &out, "--cert", &cert],
        &[FAST, ("LIFEBOAT_NOW", in_an_hour.trim())],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("catalog expired"), "{}", r.stderr);
    // Outside the certificate's own validity, it is refused whatever the catalog says.
    for when in ["2099-01-01T00:00:00Z", "2000-01-01T00:00:00Z"] {
        let r = p.run_env(
            &["catalog", "verify", &out, "--cert", &cert],
            &[FAST, ("LIFEBOAT_NOW", when)],
        );
        assert_eq!(r.code, 1);
        assert!(
            r.stderr.contains("signing certificate not valid"),
            "{}",
            r.stderr
        );
    }

    // Activation republishes it: cwz's fallback is ACTIVE, still signed.
    let env = [
        FAST,
        ("LIFEBOAT_CATALOG_KEY", key.as_str()),
        ("LIFEBOAT_CATALOG_CERT", cert.as_str()),
        ("LIFEBOAT_CATALOG_OUT", out.as_str()),
    ];
    let r = p.run_env(&["activate", "cwz", "--reason", "catalog"], &env);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("republished"), "{}", r.stderr);
    assert!(xmlsec(&out).status.success());
    let r = run(&p, &["catalog", "verify", &out, "--cert", &cert], None);
    assert!(r.stdout.contains("active: cwz"), "{}", r.stdout);
    let r = p.run_env(&["deactivate", "cwz"], &env);
    assert_eq!(r.code, 0);
    let r = run(&p, &["catalog", "verify", &out, "--cert", &cert], None);
    assert!(r.stdout.contains("active: none"), "{}", r.stdout);
}

/// #15 item 2: forgeries that the old byte-slicing verifier accepted, and that
/// xmlsec1 rejects, are refused: a genuine signed root hidden in a comment
/// beside a forged root (legal XML spelling: a newline after the element name,
/// `</EndpointCatalog >`) pointing mst's fallback at an attacker, ACTIVE until
/// 2099; a DOCTYPE whose ATTLIST moves every Endpoint into another namespace.
/// Publishing with a certificate outside its validity is refused too.
#[test]
fn catalog_forgeries_are_refused_as_xmlsec1_refuses_them() {
    let p = Project::example("catalog-forgery");
    let d = p.dir.to_str().unwrap().to_string();
    let (key, cert, out) = (
        format!("{d}/key.pem"),
        format!("{d}/cert.pem"),
        format!("{d}/catalog.xml"),
    );
    self_signed(&key, &cert);
    let publish = [
        "catalog", "publish", "--key", &key, "--cert", &cert, "--out", &out,
    ];
    let r = run(&p, &publish, None);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let genuine = std::fs::read_to_string(&out).unwrap();
    let body = genuine.split_once("?>\n").unwrap().1.trim_end();
    let forged_root = body
        .replacen("<EndpointCatalog ", "<EndpointCatalog\n ", 1)
        .replace("</EndpointCatalog>", "</EndpointCatalog >");
    let forged_root = {
        // mst's fallback now at the attacker, ACTIVE, valid until 2099.
        let i = forged_root.find("<Tenant id=\"mst\"").unwrap();
        let j = i + forged_root[i..]
            .find("role=\"fallback\" status=\"INACTIVE\" url=\"")
            .unwrap();
        let k = j + forged_root[j..].find("\"></Endpoint>").unwrap();
        let mut f = forged_root.clone();
        f.replace_range(
            j..k,
            "role=\"fallback\" status=\"ACTIVE\" url=\"https://evil.example/Citrix",
        );
        let v = f.find("validUntil=\"").unwrap() + "validUntil=\"".len();
        f.replace_range(v..v + 20, "2099-01-01T00:00:00Z");
        f
    };
    let comment =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!--{body}-->\n{forged_root}\n");
    let doctype = genuine.replacen(
        "?>\n",
        "?>\n<!DOCTYPE EndpointCatalog [<!ATTLIST Endpoint xmlns CDATA \"urn:evil\">]>\n",
        1,
    );
    for (name, text, says) in [
        ("comment", comment, "beside the root element"),
        ("doctype", doctype, "without a DTD"),
    ] {
        let file = format!("{d}/{name}.xml");
        std::fs::write(&file, text).unwrap();
        let peer = sh("xmlsec1", &["--verify", "--pubkey-cert-pem", &cert, &file]);
        assert!(!peer.status.success(), "{name}: xmlsec1 accepted it");
        let r = run(&p, &["catalog", "verify", &file, "--cert", &cert], None);
        assert_eq!(r.code, 1, "{name}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(says), "{name}: {}", r.stderr);
        assert!(!r.stdout.contains("signature valid"), "{name}");
    }
    // The genuine one still verifies with both.
    assert!(
        sh("xmlsec1", &["--verify", "--pubkey-cert-pem", &cert, &out])
            .status
            .success()
    );
    assert_eq!(
        run(&p, &["catalog", "verify", &out, "--cert", &cert], None).code,
        0
    );
    // A certificate outside its validity signs nothing.
    let r = p.run_env(&publish, &[FAST, ("LIFEBOAT_NOW", "2099-01-01T00:00:00Z")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("signing certificate not valid"),
        "{}",
        r.stderr
    );
}

/// A hosting data centre fails for several hospitals: `activate A B C` runs
/// them at once, one JSON object per tenant and a summary; `deactivate A B C`
/// likewise. `--read-write` stays one tenant at a time.
#[test]
fn several_tenants_activate_at_once_with_a_summary() {
    let p = provisioned("dap-many", None);
    let r = run(
        &p,
        &[
            "--output",
            "json",
            "activate",
            "cwz",
            "mst",
            "rst",
            "--reason",
            "hosting data centre down",
            "--force",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let objects: Vec<Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_none())
        .collect();
    assert_eq!(objects.len(), 4, "three runs and a summary: {}", r.stdout);
    let summary = &objects[3];
    assert_eq!(summary["summary"], "activate");
    assert_eq!(summary["tenants"], 3);
    assert_eq!(summary["succeeded"], 3);
    assert_eq!(summary["failed"], serde_json::json!([]));
    let rtos: Vec<u64> = ["cwz", "mst", "rst"]
        .iter()
        .map(|t| summary["rto"][*t]["rto_ms"].as_u64().unwrap())
        .collect();
    let sum: u64 = rtos.iter().sum();
    let makespan = summary["makespan_ms"].as_u64().unwrap();
    // At once, not one after the other.
    assert!(
        makespan < sum,
        "makespan {makespan} ms vs sum of RTOs {sum} ms"
    );
    for t in ["cwz", "mst", "rst"] {
        assert_eq!(tenant(&status(&p, None), t)["state"], "ACTIVE");
    }
    let r = run(&p, &["deactivate", "cwz", "mst", "rst"], None);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("deactivate: 3 of 3 tenant(s) succeeded"),
        "{}",
        r.stdout
    );
    for t in ["cwz", "mst", "rst"] {
        assert_eq!(tenant(&status(&p, None), t)["state"], "STANDBY");
    }
    let r = run(
        &p,
        &[
            "activate",
            "cwz",
            "mst",
            "--reason",
            "x",
            "--read-write",
            "--confirm",
            "cwz",
        ],
        None,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("--read-write takes one tenant at a time"),
        "{}",
        r.stderr
    );
}
