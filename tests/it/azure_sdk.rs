//! Peers nobody here wrote judge the embedded cloud: Microsoft's Azure SDK for
//! Python drives it through the calls a user's script and lifeboat make
//! (`tests/azure-sdk/drive.py`), and a plan from a fresh checkout converges
//! against its Resource Graph after an apply.

use crate::common::{Project, free_port, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SUB: &str = "3f2a9c1e-7b4d-4e8a-9c6f-2d1b0a8e5f71";

/// The SDK packages `ci/test` installs (tests/azure-sdk/requirements.txt).
fn sdk_path() -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/azure-sdk-python");
    assert!(
        p.join("azure/mgmt/network").is_dir(),
        "{} is missing: run ci/test, which installs Microsoft's Azure SDK for Python",
        p.display()
    );
    p
}

#[test]
fn microsofts_python_sdk_judges_the_embedded_cloud() {
    let p = Project::example("azure-sdk");
    let (_emu, endpoint) = p.serve_emulator("sdk-judge", "0.01");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/azure-sdk/drive.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&endpoint)
        .arg("sdk-judge")
        .arg(SUB)
        .env("PYTHONPATH", sdk_path())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(" checks passed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn a_fresh_checkout_plans_no_changes_after_an_apply() {
    // One cloud (a standalone emulator, as Azure is), two agents: the first
    // applies, the second has nothing but the manifests.
    let first = Project::example("fresh-first");
    let second = Project::example("fresh-second");
    let port = free_port();
    let data = first.dir.join("cloud");
    let _emu = first.spawn_env(
        &[
            "emulator",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
            data.to_str().unwrap(),
        ],
        &[("LIFEBOAT_EMULATOR_TOKEN", "fresh")],
    );
    wait_for("the emulator", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [("LIFEBOAT_ACCESS_TOKEN", "fresh")];
    let cloud = ["--arm-endpoint", endpoint.as_str(), "--no-progress"];
    let with = |args: &[&'static str]| -> Vec<&str> {
        cloud.iter().copied().chain(args.iter().copied()).collect()
    };
    let r = first.run_env(&with(&["apply", "--auto-approve"]), &env);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // Resource Graph indexes the last writes within its lag (10 Azure-seconds,
    // 0.1 s here).
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !second.dir.join(".lifeboat").exists(),
        "the second agent starts empty"
    );
    let r = second.run_env(
        &with(&["--output", "json", "plan", "--detailed-exitcode"]),
        &env,
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
    // Nothing to change; the 62 front-ends still wait for their images, which
    // is pending work (exit 2), not a change.
    assert_eq!(
        v["summary"],
        serde_json::json!({"create": 0, "update": 0, "replace": 0, "delete": 0, "no_op": 193}),
        "{}",
        r.stderr
    );
    assert_eq!(v["deferred"].as_array().map(Vec::len), Some(62));
    assert_eq!(r.code, 2, "{}", r.stderr);
    // Two Resource Graph queries, then one list per parent of a child type
    // Resource Graph does not index (keys, blob services, containers,
    // diagnostic settings): nothing read one by one.
    let reads = v["requests"]["read"].as_u64().unwrap();
    assert!(reads > 2 && reads < 60, "{reads} reads");
}
