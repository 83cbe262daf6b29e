//! `--state azblob://` against a real Azurite (installed by `ci/test` from npm into
//! `target/test-deps/azurite`, started here on a free loopback port): locks as
//! leases between processes, a killed holder's lease running out and another
//! agent resuming from the journal, concurrent audit appends from many
//! processes, and Azurite going away mid-run.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, Run, free_port, wait_for};
use lifeboat_engine::cloud::blob::{BlobAuth, BlobClient, ConnectionString};

const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// One Azurite blob service with its own data folder; stopped when dropped.
struct Azurite {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Azurite {
    fn start(name: &str) -> Azurite {
        let dir =
            std::env::temp_dir().join(format!("lifeboat-azurite-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut a = Azurite {
            child: None,
            port: free_port(),
            dir,
        };
        a.launch();
        a
    }

    fn binary() -> PathBuf {
        if let Ok(p) = std::env::var("AZURITE_BLOB") {
            return p.into();
        }
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-deps/azurite/node_modules/.bin/azurite-blob");
        assert!(
            p.exists(),
            "{} is missing: run ci/test, which installs Azurite from npm",
            p.display()
        );
        p
    }

    fn launch(&mut self) {
        let child = Command::new(Self::binary())
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.port.to_string())
            .arg("--location")
            .arg(&self.dir)
            .arg("--silent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "Azurite did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop gracefully (SIGTERM), as a service restart would.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
            self.port
        )
    }

    /// What the binary needs to use container `container` of this Azurite.
    fn env(&self, container: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_CONNECTION_STRING", self.connection_string()),
            (
                "LIFEBOAT_STATE",
                format!("azblob://devstoreaccount1/{container}"),
            ),
            ("LIFEBOAT_LOCK_LEASE_SECONDS", "15".into()),
        ]
    }

    /// A client for looking at the container directly.
    fn client(&self, container: &str) -> BlobClient {
        let cs = ConnectionString::parse(&self.connection_string()).unwrap();
        BlobClient::new(
            &cs.blob_endpoint,
            &cs.account,
            container,
            BlobAuth::SharedKey {
                account: cs.account.clone(),
                key: cs.key,
            },
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rt() -> tokio::runtime::Runtime {
    lifeboat_engine::cloud::install_crypto();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn envs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn lease_state(c: &BlobClient, name: &str) -> String {
    rt().block_on(c.properties(name))
        .unwrap()
        .map(|p| p.lease_state)
        .unwrap_or_default()
}

/// Bytes in the journal blobs (all runs).
fn journal_bytes(c: &BlobClient) -> u64 {
    rt().block_on(c.list("journal/"))
        .map(|l| l.iter().map(|(_, n)| n).sum())
        .unwrap_or(0)
}

fn audit_verify(p: &Project, env: &[(&'static str, String)]) -> Run {
    p.run_env(&["audit", "verify"], &envs(env))
}

#[test]
fn two_applies_on_one_tenant_one_fails_naming_the_holder_one_waits_for_it() {
    let az = Azurite::start("locks");
    let env = az.env("locks");
    let c = az.client("locks");
    let p = Project::example("blob-locks");
    let mut first_env = envs(&env);
    first_env.push(("BUILD_BUILDID", "run-4711"));
    let mut first = p.spawn_env(common::SLOW_APPLY_CWZ, &first_env);
    wait_for("the first apply's lease", Duration::from_secs(30), || {
        lease_state(&c, "locks/tenant-cwz.lock") == "leased"
    });
    let refused = p.run_env(
        &[
            "apply",
            "--auto-approve",
            "--tenant",
            "cwz",
            "--lock-timeout",
            "0.5",
        ],
        &envs(&env),
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    for want in [
        "tenant-cwz".to_string(),
        format!("pid {}", first.id()),
        "pipeline run run-4711".into(),
        "running `apply`".into(),
    ] {
        assert!(
            refused.stderr.contains(&want),
            "no {want:?} in:\n{}",
            refused.stderr
        );
    }
    // A third run waits for the lock and goes ahead once it is released.
    let dir = p.dir.clone();
    let env3 = env.clone();
    let waiter = std::thread::spawn(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .arg("-C")
            .arg(dir)
            .args([
                "--no-progress",
                "apply",
                "--auto-approve",
                "--tenant",
                "cwz",
                "--lock-timeout",
                "120",
            ])
            .envs(env3.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        (Run::from(out), Instant::now())
    });
    assert!(first.wait().unwrap().success(), "the first apply failed");
    let first_done = Instant::now();
    let (third, third_done) = waiter.join().unwrap();
    assert_eq!(third.code, 0, "{}\n{}", third.stdout, third.stderr);
    assert!(third_done >= first_done);
    assert_eq!(
        lease_state(&c, "locks/tenant-cwz.lock"),
        "available",
        "lock not released"
    );
    // The queued apply planned only once it held the locks (#15): by then the
    // first had applied everything, so it had nothing to do and recorded nothing.
    assert!(
        third.stderr.contains("Nothing to apply."),
        "{}",
        third.stderr
    );
    let audit = audit_verify(&p, &env);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    assert!(audit.stdout.contains("1 record(s)"), "{}", audit.stdout);
    let plan = p.run_env(
        &["plan", "--detailed-exitcode", "--tenant", "cwz", "--shared"],
        &envs(&env),
    );
    plan.assert_nothing_to_change();
}

#[test]
fn a_killed_holders_lease_runs_out_and_another_agent_resumes_its_saved_plan() {
    let az = Azurite::start("resume");
    let mut env = az.env("resume");
    // The agents reach the shared emulator with its token.
    env.push(("LIFEBOAT_ACCESS_TOKEN", "shared-cloud-token".into()));
    let c = az.client("resume");
    // Two agents: separate checkouts of the same project, one cloud between them.
    let a = Project::example("agent-a");
    let b = Project::example("agent-b");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let _cloud = a.spawn_env(
        &[
            "emulator",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
            a.dir.join("cloud").to_str().unwrap(),
            "--time-scale",
            "0.03",
        ],
        &[("LIFEBOAT_EMULATOR_TOKEN", "shared-cloud-token")],
    );
    wait_for("the emulator", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let cloud = [
        "--arm-endpoint",
        endpoint.as_str(),
        "--time-scale",
        "0.03",
        "--no-progress",
    ];
    let with = |args: &[&str]| -> Vec<String> {
        cloud.iter().chain(args).map(|s| s.to_string()).collect()
    };
    let planned = a.run_env(
        &with(&["plan", "--out", "plan.json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &envs(&env),
    );
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let hash = planned
        .stderr
        .split("lifeboat apply ")
        .nth(2)
        .and_then(|s| s.get(..32))
        .expect("the plan names its hash")
        .to_string();
    let changes: usize = planned
        .stdout
        .split("Plan: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("plan summary");

    let args = with(&["apply", "plan.json"]);
    let mut holder = a.spawn_env(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &envs(&env),
    );
    wait_for("journal entries", Duration::from_secs(60), || {
        journal_bytes(&c) > 20_000
    });
    holder.kill().unwrap(); // SIGKILL: no release, no audit record
    holder.wait().unwrap();
    assert_eq!(
        lease_state(&c, "locks/shared.lock"),
        "leased",
        "the dead holder's lease is still on"
    );

    // Agent B has no plan file and no local state: plan and journal come from the store.
    assert!(!b.dir.join(".lifeboat").exists());
    let started = Instant::now();
    let args = with(&["--output", "json", "apply", &hash, "--lock-timeout", "90"]);
    let resumed = b.run_env(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &envs(&env),
    );
    let waited = started.elapsed();
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(60),
        "took over after {waited:?}: it must wait for the 15 s lease to run out"
    );
    let report: serde_json::Value =
        serde_json::from_str(resumed.stdout.lines().last().unwrap()).unwrap();
    let done = report["summary"]["succeeded"].as_u64().unwrap() as usize;
    assert!(
        done > 0 && done < changes,
        "resumed {done} of {changes} changes: the finished ones must be left out"
    );
    eprintln!(
        "agent B took over after {:.1} s and applied the remaining {done} of {changes} changes",
        waited.as_secs_f64()
    );
    let args = with(&["plan", "--detailed-exitcode"]);
    let clean = b.run_env(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &envs(&env),
    );
    clean.assert_nothing_to_change();
    let audit = audit_verify(&b, &env);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
}

/// Not a test on its own: the body of one appending process for
/// `concurrent_audit_appends_from_many_processes_keep_one_chain` (the test binary
/// runs itself with `LIFEBOAT_TEST_AUDIT_CHILD` set).
#[test]
fn audit_append_child_process() {
    let Ok(spec) = std::env::var("LIFEBOAT_TEST_AUDIT_CHILD") else {
        return;
    };
    let (name, n) = spec.split_once(':').unwrap();
    let n: usize = n.parse().unwrap();
    let container = std::env::var("LIFEBOAT_TEST_CONTAINER").unwrap();
    let rt = rt();
    let store = rt
        .block_on(lifeboat_engine::state::StateStore::open(
            &lifeboat_engine::state::Location::Blob {
                account: "devstoreaccount1".into(),
                container,
            },
            std::path::Path::new("."),
            lifeboat_engine::cloud::auth::AuthMode::Auto,
        ))
        .unwrap();
    for i in 0..n {
        rt.block_on(store.audit_append(lifeboat_engine::state::audit::Entry {
            command: format!("{name}-{i}"),
            outcome: "succeeded".into(),
            ..Default::default()
        }))
        .unwrap();
    }
}

#[test]
fn concurrent_audit_appends_from_many_processes_keep_one_chain() {
    let az = Azurite::start("audit");
    let (procs, each) = (10, 30);
    let children: Vec<Child> = (0..procs)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "state_blob::audit_append_child_process",
                    "--quiet",
                ])
                .env("LIFEBOAT_TEST_AUDIT_CHILD", format!("p{i}:{each}"))
                .env("LIFEBOAT_TEST_CONTAINER", "audit")
                .env("AZURE_STORAGE_CONNECTION_STRING", az.connection_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "an appending process failed");
    }
    let p = Project::example("blob-audit");
    let env = az.env("audit");
    let r = audit_verify(&p, &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("{} record(s)", procs * each)),
        "{}",
        r.stdout
    );
    // Every process's records are there, each once, in its own order.
    let (bytes, _) = rt()
        .block_on(az.client("audit").get("audit.jsonl"))
        .unwrap()
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for i in 0..procs {
        let mine: Vec<usize> = text
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let cmd = v["command"].as_str()?.strip_prefix(&format!("p{i}-"))?;
                cmd.parse().ok()
            })
            .collect();
        assert_eq!(mine, (0..each).collect::<Vec<_>>(), "process p{i}");
    }
    // An edit in the blob is found, as in the local file.
    let edited = text.replacen("\"p3-7\"", "\"p3-8\"", 1);
    let e =
        lifeboat_engine::state::audit::verify_text(std::path::Path::new("audit.jsonl"), &edited)
            .unwrap_err()
            .to_string();
    assert!(e.contains("edited"), "{e}");
}

#[test]
fn azurite_stopping_mid_apply_is_a_clear_error_and_corrupts_nothing() {
    let mut az = Azurite::start("restart");
    let env = az.env("restart");
    let c = az.client("restart");
    let p = Project::example("blob-restart");
    let apply = [
        "--time-scale",
        "0.05",
        "--no-progress",
        "apply",
        "--auto-approve",
    ];
    let dir = p.dir.clone();
    let env1 = env.clone();
    let run = std::thread::spawn(move || {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_lifeboat"))
                .arg("-C")
                .arg(dir)
                .args(apply)
                .envs(env1.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .unwrap(),
        )
    });
    wait_for("journal entries", Duration::from_secs(60), || {
        journal_bytes(&c) > 10_000
    });
    az.stop();
    let failed = run.join().unwrap();
    az.launch();
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    assert!(!failed.stderr.contains("panicked"), "{}", failed.stderr);
    let port = format!("127.0.0.1:{}", az.port);
    assert!(
        failed.stderr.contains("cannot reach Blob Storage") && failed.stderr.contains(&port),
        "the error must name the unreachable store:\n{}",
        failed.stderr
    );
    // Back up: the audit chain is intact, the journal readable, and a re-run
    // (after the stopped run's lease runs out) converges.
    let audit = audit_verify(&p, &env);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    let again = p.run_env(
        &[
            "--no-progress",
            "apply",
            "--auto-approve",
            "--lock-timeout",
            "60",
        ],
        &envs(&env),
    );
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let plan = p.run_env(&["plan", "--detailed-exitcode"], &envs(&env));
    plan.assert_nothing_to_change();
    let audit = audit_verify(&p, &env);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
}

/// #15 item 5: with blob state, an apply whose change fails (here a tenant
/// applied before the shared layer: `ParentResourceNotFound`) used to stop
/// making progress and renew its lease forever, blocking every later apply and
/// activation. It ends now, exit 1, and leaves the lock free.
#[test]
fn a_failing_apply_with_blob_state_ends_and_frees_its_lock() {
    let az = Azurite::start("fail");
    let env = az.env("fail");
    let c = az.client("fail");
    let p = Project::example("blob-fail");
    let t0 = Instant::now();
    let mut child = p.spawn_env(
        &[
            "--no-progress",
            "apply",
            "--auto-approve",
            "--tenant",
            "cwz",
        ],
        &envs(&env),
    );
    let code = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the failing apply still runs after 90 s (deadlocked)"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(1));
    eprintln!(
        "the failing apply ended in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_ne!(lease_state(&c, "locks/tenant-cwz.lock"), "leased");
    // The lock is really free: another apply takes it at once.
    let r = p.run_env(
        &["apply", "--auto-approve", "--shared", "--lock-timeout", "0"],
        &envs(&env),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}
