//! The HiX image lifecycle through the binary on the embedded cloud (time scale
//! 0.001: a 40-minute build takes 2.4 s): build, idempotence, failures, roll-out,
//! activation hold, list and prune.

use crate::common;

use common::{Project, Run};
use serde_json::Value;

const FAST: &[&str] = &["--time-scale", "0.001", "--no-progress"];

fn run(p: &Project, args: &[&str]) -> Run {
    let mut a: Vec<&str> = FAST.to_vec();
    a.extend_from_slice(args);
    p.run(&a)
}

fn json(r: &Run) -> Value {
    let line = r
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in:\n{}\n{}", r.stdout, r.stderr));
    serde_json::from_str(line).unwrap()
}

/// One tenant (rst) with its shared layer, applied, its image built and its
/// front-ends created on it.
fn rst_on_its_image(name: &str) -> Project {
    let p = Project::example(name);
    p.remove("tenants/cwz.yaml");
    p.remove("tenants/mst.yaml");
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    let r = run(&p, &["image", "build", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    p
}

fn plan_text(p: &Project) -> String {
    let r = run(p, &["plan", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn build_is_idempotent_and_list_reports_versions() {
    let p = rst_on_its_image("img-list");
    let r = run(
        &p,
        &["--output", "json", "image", "build", "--tenant", "rst"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["builds"][0]["outcome"], "exists", "{v}");
    assert_eq!(v["built"], 0);

    let r = run(&p, &["--output", "json", "image", "list"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["format_version"], "1");
    let t = &v["tenants"][0];
    assert_eq!(t["tenant"], "rst");
    assert_eq!(t["declared"], "6.2.117");
    assert_eq!(t["newest"], "6.2.117");
    assert_eq!(t["in_use"]["6.2.117"], 12, "{t}");
    let newest = &t["versions"][0];
    assert!(
        newest["end_of_life"]
            .as_str()
            .is_some_and(|d| d.starts_with("20")),
        "{newest}"
    );
    let regions: Vec<&str> = newest["replication"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["westeurope", "northeurope"]);
    let human = run(&p, &["image", "list"]).stdout;
    assert!(
        human.contains("rst") && human.contains("6.2.117 x12"),
        "{human}"
    );
}

#[test]
fn a_new_hotfix_rolls_out_only_once_built_and_never_while_activated() {
    let p = rst_on_its_image("img-roll");
    p.edit("tenants/rst.yaml", "hotfix: 117", "hotfix: 118");
    // Not built yet: the front-ends stay where they are, and the plan says why.
    let text = plan_text(&p);
    assert!(!text.contains("virtualMachines  lb-rst-fe"), "{text}");
    assert!(
        text.contains(
            "stays on image 6.2.117 until 6.2.118 is built: run `lifeboat image build --tenant rst`"
        ),
        "{text}"
    );
    // A failed build names Image Builder's error; nothing moves. (`apply` has
    // created the new hotfix's Image Builder template.)
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    let r = run(
        &p,
        &[
            "--faults",
            "lro-fail=1",
            "image",
            "build",
            "--tenant",
            "rst",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("ImageTemplateRunFailed") && all.contains("1603"),
        "{all}"
    );
    assert!(plan_text(&p).contains("stays on image 6.2.117"));

    let r = run(&p, &["image", "build", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = plan_text(&p);
    assert_eq!(
        text.matches("moves to HiX image 6.2.118").count(),
        12,
        "{text}"
    );

    // An emergency in progress: the tenant's resource group carries the activation tag.
    activate(&p, "lb-rst-rg");
    let text = plan_text(&p);
    assert!(!text.contains("moves to HiX image"), "{text}");
    assert!(
        text.contains(
            "tenant rst is activated (an emergency is in progress): stays on image 6.2.117"
        ),
        "{text}"
    );
    // An update of the resource group during the emergency keeps the activation mark.
    p.edit(
        "tenants/rst.yaml",
        "costCenter: RST-ZORG-7781",
        "costCenter: RST-NOOD-2",
    );
    let r = run(&p, &["apply", "--auto-approve", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("~   Microsoft.Resources/resourceGroups  lb-rst-rg"),
        "{}",
        r.stdout
    );
    assert!(plan_text(&p).contains("tenant rst is activated"));
    // Disruptive changes are refused while activated, window or not.
    p.edit(
        "tenants/rst.yaml",
        "size: Standard_E8ds_v5",
        "size: Standard_E16ds_v5",
    );
    let r = run(
        &p,
        &[
            "apply",
            "--auto-approve",
            "--tenant",
            "rst",
            "--outside-window",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("tenant rst is activated (an emergency is in progress): 1 disruptive change(s) refused (e.g. lb-rst-sql resized (the VM restarts))"),
        "{}",
        r.stderr
    );
}

/// What `activate` will do to the resource group (tag it), written into the
/// emulator's store.
fn activate(p: &Project, rg: &str) {
    let dir = p.dir.join(".lifeboat/cloud/resources");
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if v["id"]
            .as_str()
            .is_some_and(|id| id.ends_with(&format!("/resourceGroups/{rg}")))
        {
            v["body"]["tags"]["lifeboat-activation"] = "active".into();
            std::fs::write(&path, v.to_string()).unwrap();
            return;
        }
    }
    panic!("{rg} not in the store");
}

#[test]
fn prune_keeps_the_newest_and_what_is_in_use() {
    let p = rst_on_its_image("img-prune");
    for hotfix in ["118", "119"] {
        let prev = (hotfix.parse::<u32>().unwrap() - 1).to_string();
        p.edit(
            "tenants/rst.yaml",
            &format!("hotfix: {prev}"),
            &format!("hotfix: {hotfix}"),
        );
        assert_eq!(run(&p, &["image", "build", "--tenant", "rst"]).code, 0);
    }
    // The front-ends move to 6.2.119 (re-created: disruptive, so the flag).
    assert_eq!(
        run(&p, &["apply", "--auto-approve", "--outside-window"]).code,
        0
    );
    // Versions 119 (declared, in use), 118, 117.
    let r = run(
        &p,
        &[
            "--output",
            "json",
            "image",
            "prune",
            "--keep",
            "2",
            "--auto-approve",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let steps: Vec<(String, String)> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["version"].as_str().unwrap().into(),
                a["step"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("6.2.118".to_string(), "exclude_from_latest".to_string()),
            ("6.2.117".to_string(), "delete".to_string())
        ]
    );
    let list: Value =
        serde_json::from_str(&run(&p, &["--output", "json", "image", "list"]).stdout).unwrap();
    let versions: Vec<(String, bool)> = list["tenants"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().into(),
                v["exclude_from_latest"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("6.2.119".to_string(), false),
            ("6.2.118".to_string(), true)
        ]
    );
}

/// An image version Image Builder made a moment ago has no Resource Graph row
/// yet: the plan reads it directly instead of deferring the front-ends as if it
/// were missing (found by `ci/bench-graph`: 83 front-ends of a 200-hospital
/// fleet waited one apply too long).
#[test]
fn a_just_built_image_is_read_directly_while_resource_graph_lags() {
    let p = Project::example("image-graph-lag");
    p.remove("tenants/cwz.yaml");
    p.remove("tenants/mst.yaml");
    // 250 Azure-seconds of lag (within the few minutes Microsoft documents, so
    // within what lifeboat re-reads from its journal): 0.5 s at this scale.
    let lag = |args: &[&str]| {
        let mut a = vec![
            "--time-scale",
            "0.002",
            "--no-progress",
            "--graph-lag",
            "250",
        ];
        a.extend_from_slice(args);
        p.run(&a)
    };
    assert_eq!(lag(&["apply", "--auto-approve"]).code, 0);
    let r = lag(&["image", "build", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = lag(&["--output", "json", "plan"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["deferred"].as_array().unwrap().len(),
        0,
        "{}",
        v["deferred"]
    );
    assert_eq!(
        v["summary"]["create"], 12,
        "rst's front-ends: {}",
        v["summary"]
    );
}

/// A build reports while it runs (a minute of Azure time apart as JSON
/// lines; every 5 minutes as a plain line in a CI log), not only at its end.
#[test]
fn an_image_build_reports_progress_while_it_runs() {
    let p = Project::example("image-progress");
    p.remove("tenants/cwz.yaml");
    p.remove("tenants/mst.yaml");
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    let r = run(
        &p,
        &["--output", "json", "image", "build", "--tenant", "rst"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let progress: Vec<Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "progress")
        .collect();
    assert!(
        progress.len() >= 20,
        "{} progress events in:\n{}",
        progress.len(),
        r.stdout
    );
    let elapsed = |v: &Value| v["elapsed_s"].as_u64().unwrap();
    assert_eq!(progress[0]["typical_s"], 2400);
    assert!(progress.windows(2).all(|w| elapsed(&w[0]) < elapsed(&w[1])));

    p.edit("tenants/rst.yaml", "hotfix: 117", "hotfix: 118");
    let r = run(&p, &["image", "build", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("min of a typical 40 min"))
        .collect();
    assert!(lines.len() >= 4, "{}", r.stderr);
    assert!(
        lines[0].contains("building  rst HiX image 6.2.118: 5 min"),
        "{}",
        r.stderr
    );
}
