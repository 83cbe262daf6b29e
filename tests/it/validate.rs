//! `lifeboat validate` through the binary: every class of bad input names the file,
//! line, column and field, exits 1, and never hangs or panics.

use crate::common;

use std::time::{Duration, Instant};

use common::Project;

#[test]
fn example_project_is_valid() {
    let p = Project::example("valid");
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("3 tenant manifest(s)"), "{}", r.stdout);
    let r = p.run(&["--output", "json", "validate"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["tenants"], 3);
}

#[test]
fn field_errors_are_all_reported_with_positions() {
    let p = Project::example("fields");
    let t = "tenants/cwz.yaml";
    p.edit(t, "addressSpace: 10.10.0.0/24", "adressSpace: 10.10.0.0/24");
    p.edit(t, "dataDiskGb: 1024", "dataDiskGb: 10");
    p.edit(t, "restoreMode: norecovery", "restoreMode: recovery");
    p.edit(t, "restoreDelay: 30m", "restoreDelay: 30x");
    p.edit(
        t,
        "timezone: Europe/Amsterdam",
        "timezone: Europe/Amsterdan",
    );
    p.edit(t, "size: Standard_D4s_v5", "size: Standard_D4s_v4");
    p.edit(t, "j.devries@example.org", "j.devries@@example");
    p.edit(
        t,
        "a.jansen@example.org }\n",
        "a.jansen@example.org }\n  exceptions:\n    - { rule: CIS-7.1, reason: \"jump host\", expires: 2027-13-01 }\n",
    );
    p.edit(t, "day: saturday", "day: zaterdag");
    p.edit(t, "start: \"22:00\"", "start: \"25:00\"");
    p.edit(t, "hix: { version: \"6.3\"", "hix: { version: 6.3");
    p.edit(t, "clientSha256: 628fa032", "clientSha256: 628fa03z");
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    r.expect_error(
        "cwz.yaml:7:3: spec.adressSpace:",
        "did you mean `addressSpace`",
    );
    r.expect_error("cwz.yaml:7:3: spec.addressSpace:", "missing required field");
    r.expect_error("cwz.yaml:8:19: spec.hix.version:", "quoted string");
    r.expect_error(
        "cwz.yaml:8:50: spec.hix.clientSha256:",
        "not a SHA-256 checksum",
    );
    r.expect_error(
        "cwz.yaml:9:33: spec.frontends.size:",
        "did you mean `Standard_D4s_v5`",
    );
    r.expect_error(
        "cwz.yaml:12:17: spec.sql.dataDiskGb:",
        "between 32 and 32767",
    );
    r.expect_error(
        "cwz.yaml:13:18: spec.sql.restoreMode:",
        "did you mean `norecovery`",
    );
    r.expect_error("cwz.yaml:14:19: spec.sql.restoreDelay:", "duration");
    r.expect_error("spec.maintenanceWindow.day:", "zaterdag");
    r.expect_error("spec.maintenanceWindow.start:", "24-hour");
    r.expect_error("spec.maintenanceWindow.timezone:", "IANA");
    r.expect_error("cwz.yaml:28:35: spec.contacts[0].email:", "e-mail");
    r.expect_error("spec.exceptions[0].expires:", "date");
    assert!(
        r.stderr.trim_end().ends_with("13 errors found"),
        "{}",
        r.stderr
    );
}

#[test]
fn platform_rules() {
    let p = Project::example("platform");
    p.edit("platform.yaml", "region: westeurope", "region: uksouth");
    p.edit(
        "platform.yaml",
        "secondaryRegion: northeurope",
        "secondaryRegion: westeuroep",
    );
    p.edit("platform.yaml", "prefix: lb", "prefix: LB1");
    p.edit("platform.yaml", "mfa: required", "mfa: optional");
    p.edit("platform.yaml", "kind: Platform", "kind: Tenant");
    p.edit(
        "platform.yaml",
        "subscriptionId: 3f2a9c1e",
        "subscriptionId: 3f2a9c1",
    );
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    r.expect_error("platform.yaml:3:7: kind:", "expected kind `Platform`");
    r.expect_error("spec.subscriptionId:", "GUID");
    r.expect_error("platform.yaml:8:11: spec.region:", "outside the EU");
    r.expect_error("spec.secondaryRegion:", "did you mean `westeurope`");
    r.expect_error("spec.prefix:", "2-4 lowercase");
    r.expect_error("spec.citrix.gateway.mfa:", "must be `required`");
}

#[test]
fn the_state_store_in_platform_yaml_is_checked_and_used() {
    let p = Project::example("state-field");
    p.edit(
        "platform.yaml",
        "  logRetentionDays: 90",
        "  logRetentionDays: 90\n  state: azblob://LB_State/x",
    );
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    r.expect_error(
        "platform.yaml:23:10: spec.state:",
        "3-24 lowercase letters and digits",
    );
    p.edit(
        "platform.yaml",
        "azblob://LB_State/x",
        "azblob://devstoreaccount1/fromyaml",
    );
    assert_eq!(p.run(&["validate"]).code, 0);
    // Without --state the manifest's store is used: here one that does not answer,
    // which must fail clearly, naming it, and write nothing locally.
    let unreachable = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;";
    let r = p.run_env(
        &["apply", "--auto-approve"],
        &[("AZURE_STORAGE_CONNECTION_STRING", unreachable)],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("azblob://devstoreaccount1/fromyaml")
            && r.stderr
                .contains("cannot reach Blob Storage at http://127.0.0.1:9"),
        "{}",
        r.stderr
    );
    assert!(!p.dir.join(".lifeboat/state").exists());
    // A broken connection string is named, and its cause said once.
    let r = p.run_env(
        &["audit", "verify"],
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "AccountName=devstoreaccount1",
        )],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("AZURE_STORAGE_CONNECTION_STRING: no AccountKey")
            && r.stderr.matches("no AccountKey").count() == 1,
        "{}",
        r.stderr
    );
    // `--state local` overrides the manifest.
    let r = p.run(&["--state", "local", "audit", "verify"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = p.run(&["--state", "s3://bucket", "audit", "verify"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--state `s3://bucket`"), "{}", r.stderr);
}

#[test]
fn secondary_region_must_differ() {
    let p = Project::example("secondary");
    p.edit(
        "platform.yaml",
        "secondaryRegion: northeurope",
        "secondaryRegion: westeurope",
    );
    p.run(&["validate"])
        .expect_error("platform.yaml:9:20: spec.secondaryRegion:", "must differ");
}

#[test]
fn cross_file_rules() {
    let p = Project::example("cross");
    // Overlaps another tenant, and one that overlaps the hub.
    p.edit(
        "tenants/rst.yaml",
        "addressSpace: 10.10.8.0/25",
        "addressSpace: 10.10.0.0/25",
    );
    p.edit(
        "tenants/mst.yaml",
        "addressSpace: 10.10.4.0/23",
        "addressSpace: 10.0.2.0/23",
    );
    // Same id in a second file.
    p.write(
        "tenants/cwz2.yaml",
        p.read("tenants/cwz.yaml")
            .replace("10.10.0.0/24", "10.20.0.0/24"),
    );
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    r.expect_error(
        "rst.yaml:7:17: spec.addressSpace:",
        "overlaps 10.10.0.0/24 of tenant `cwz`",
    );
    r.expect_error(
        "cwz.yaml:7:17: spec.addressSpace:",
        "overlaps 10.10.0.0/25 of tenant `rst`",
    );
    assert!(!r.stderr.contains("collides"), "{}", r.stderr);
    r.expect_error(
        "mst.yaml:7:17: spec.addressSpace:",
        "overlaps 10.0.0.0/22 of the hub",
    );
    r.expect_error("cwz2.yaml:4:7: metadata.id:", "duplicate tenant id `cwz`");
    r.expect_error("cwz2.yaml:4:7: metadata.id:", "must match its file name");
}

#[test]
fn derived_names_must_fit_azure_limits() {
    let p = Project::example("names");
    p.edit("platform.yaml", "prefix: lb", "prefix: lbwe");
    std::fs::rename(
        p.dir.join("tenants/cwz.yaml"),
        p.dir.join("tenants/canisius.yaml"),
    )
    .unwrap();
    p.edit("tenants/canisius.yaml", "id: cwz", "id: canisius");
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    // lbwecanisiusfe01 is 16 characters: blamed on the field that sets the count width.
    r.expect_error(
        "canisius.yaml:9:23: spec.frontends.count:",
        "Windows computer names allow at most 15",
    );
}

#[test]
fn a_reserved_tenant_id_collides_with_shared_names() {
    let p = Project::example("collide");
    p.write(
        "tenants/shared.yaml",
        p.read("tenants/cwz.yaml")
            .replace("id: cwz", "id: shared")
            .replace("10.10.0.0/24", "10.30.0.0/24"),
    );
    p.run(&["validate"])
        .expect_error("shared.yaml:4:7: metadata.id:", "collides");
}

#[test]
fn capacity_and_users() {
    let p = Project::example("capacity");
    p.edit("tenants/rst.yaml", "count: 12", "count: 70");
    p.edit("tenants/cwz.yaml", "maxUsers: 20", "maxUsers: 25");
    p.edit("tenants/mst.yaml", "10.10.4.0/23", "10.10.4.1/23");
    let r = p.run(&["validate"]);
    r.expect_error("rst.yaml:9:23: spec.frontends.count:", "do not fit");
    r.expect_error(
        "cwz.yaml:17:15: spec.access.maxUsers:",
        "frontends.count is 20",
    );
    r.expect_error("mst.yaml:7:17: spec.addressSpace:", "host bits");
}

#[test]
fn hostile_yaml_fails_fast_and_cleanly() {
    let p = Project::example("hostile");
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    p.write("tenants/bomb.yaml", bomb);
    p.write("tenants/deep.yaml", format!("a: {}", "[".repeat(100_000)));
    p.write(
        "tenants/dup.yaml",
        "apiVersion: lifeboat/v1\napiVersion: lifeboat/v1\n",
    );
    p.write(
        "tenants/tabs.yaml",
        "apiVersion: lifeboat/v1\nkind:\n\tTenant\n",
    );
    p.write("tenants/empty.yaml", "");
    p.write("tenants/comments.yaml", "# only a comment\n\n");
    p.write(
        "tenants/binary.yaml",
        b"apiVersion: lifeboat/v1\nkind: \xff\xfe\n",
    );
    p.write("tenants/list.yaml", "- just\n- a list\n");
    let start = Instant::now();
    let r = p.run(&["validate"]);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(r.code, 1);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r.expect_error("bomb.yaml:", "invalid YAML");
    r.expect_error("deep.yaml:1:", "invalid YAML");
    r.expect_error("dup.yaml:2:1:", "duplicate mapping key");
    r.expect_error("tabs.yaml:3:", "tabs");
    r.expect_error("empty.yaml:1:1:", "file is empty");
    r.expect_error("comments.yaml:1:1:", "file is empty");
    r.expect_error("binary.yaml:2:7:", "not UTF-8");
    r.expect_error("list.yaml:1:1:", "expected a mapping");
}

#[test]
fn missing_platform_yaml_is_named() {
    let p = Project::example("noplatform");
    p.remove("platform.yaml");
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    r.expect_error("platform.yaml:1:1:", "file not found");
    let r = p.run(&["--output", "json", "validate"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(
        v["errors"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("platform.yaml")
    );
    assert_eq!(v["errors"][0]["line"], 1);
}

#[test]
fn nothing_is_planned_when_validation_fails() {
    let p = Project::example("noplan");
    p.edit("tenants/cwz.yaml", "dataDiskGb: 1024", "dataDiskGb: 1");
    let r = p.run(&["plan", "--out", "plan.json"]);
    assert_eq!(r.code, 1);
    assert!(!p.dir.join("plan.json").exists());
    assert!(!p.dir.join(".lifeboat").exists());
}

/// A hospital onboarded by copying another's manifest and forgetting its id:
/// every error points at the copy, none at the original.
#[test]
fn a_copied_manifest_with_the_old_id_is_blamed_alone() {
    let p = Project::example("copied-manifest");
    p.write("tenants/zzz.yaml", p.read("tenants/cwz.yaml"));
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains(".yaml:")).collect();
    assert!(!lines.is_empty(), "{}", r.stderr);
    for l in &lines {
        assert!(l.contains("tenants/zzz.yaml:"), "blames the original: {l}");
    }
    assert!(
        r.stderr
            .contains("duplicate tenant id `cwz` (also in ./tenants/cwz.yaml)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("overlaps 10.10.0.0/24 of tenant `cwz` (./tenants/cwz.yaml)"),
        "{}",
        r.stderr
    );
}

/// A fresh clone runs lifeboat through `cargo run` or its full path: the
/// commands hints suggest must work when pasted, so they name this program.
#[test]
fn hints_name_this_program_when_not_installed() {
    let p = Project::example("hint-program");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("-C")
        .arg(&p.dir)
        .arg("plan")
        .env("PATH", "/usr/bin:/bin")
        .env_remove("LIFEBOAT_CLOUD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let me = std::path::Path::new(env!("CARGO_BIN_EXE_lifeboat"))
        .canonicalize()
        .unwrap();
    assert!(
        stdout.contains(&format!("run `{} image build --tenant cwz`", me.display())),
        "{stdout}"
    );
    // Installed (on the PATH), it is plain `lifeboat`.
    let r = p.run(&["plan"]);
    assert!(
        r.stdout.contains("run `lifeboat image build --tenant cwz`"),
        "{}",
        r.stdout
    );
}
