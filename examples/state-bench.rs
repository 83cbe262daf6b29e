//! Benchmark of the Blob Storage state backend (run by `ci/bench-state`, which
//! starts Azurite and sets `AZURE_STORAGE_CONNECTION_STRING`):
//!  1. lock acquire + release round trip (a lease on `locks/<scope>.lock`), median
//!     and p90 of RUNS;
//!  2. one audit append (tail read + conditional Append Block), median and p90 of
//!     RUNS, on one writer;
//!  3. PROCS processes appending EACH records at once: the records in the log,
//!     whether the chain is valid, wall time and appends per second.
//!
//! `state-bench CONTAINER [RUNS PROCS EACH]`; `state-bench --child CONTAINER N`
//! is one appending process of part 3.

use std::time::{Duration, Instant};

use lifeboat_engine::state::{Location, StateStore, audit::Entry};

fn store(rt: &tokio::runtime::Runtime, container: &str) -> StateStore {
    let location = Location::Blob {
        account: "devstoreaccount1".into(),
        container: container.into(),
    };
    rt.block_on(StateStore::open(
        &location,
        std::path::Path::new("."),
        lifeboat_engine::cloud::auth::AuthMode::Auto,
    ))
    .expect("open the blob state store (is AZURE_STORAGE_CONNECTION_STRING set?)")
}

fn entry(command: String) -> Entry {
    Entry {
        command,
        tenants: vec!["cwz".into()],
        outcome: "succeeded".into(),
        ..Default::default()
    }
}

fn stats(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() * 9 / 10])
}

fn main() {
    lifeboat_engine::cloud::install_crypto();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if args.first().map(String::as_str) == Some("--child") {
        let s = store(&rt, &args[1]);
        let n: usize = args[2].parse().unwrap();
        let me = std::process::id();
        for i in 0..n {
            rt.block_on(s.audit_append(entry(format!("p{me}-{i}"))))
                .expect("append");
        }
        return;
    }
    let container = &args[0];
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (runs, procs, each) = (num(1, 100), num(2, 20), num(3, 50));
    let s = store(&rt, container);

    let mut lock_ms = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let g = rt
            .block_on(s.lock("bench", "bench", Duration::from_secs(60), Duration::ZERO))
            .expect("lock");
        rt.block_on(g.release()).expect("release");
        lock_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (m, p90) = stats(lock_ms);
    println!("lock acquire + release round trip: median {m:.2} ms, p90 {p90:.2} ms ({runs} runs)");

    let mut append_ms = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        rt.block_on(s.audit_append(entry(format!("single-{i}"))))
            .expect("append");
        append_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (m, p90) = stats(append_ms);
    println!("audit append (one writer): median {m:.2} ms, p90 {p90:.2} ms ({runs} runs)");

    let before = rt.block_on(s.audit_verify()).expect("verify").len();
    let exe = std::env::current_exe().unwrap();
    let t = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--child", container, &each.to_string()])
                .spawn()
                .unwrap()
        })
        .collect();
    let ok = children
        .into_iter()
        .map(|mut c| c.wait().unwrap().success())
        .filter(|&ok| ok)
        .count();
    let wall = t.elapsed().as_secs_f64();
    let (valid, records) = match rt.block_on(s.audit_verify()) {
        Ok(r) => ("valid".to_string(), r.len() - before),
        Err(e) => (format!("BROKEN: {e}"), 0),
    };
    println!(
        "{procs} processes x {each} audit appends at once: {ok}/{procs} processes succeeded, {records} records added (expected {}), chain {valid}; {wall:.1} s wall, {:.0} appends/s",
        procs * each,
        records as f64 / wall
    );
    if records != procs * each || valid != "valid" {
        std::process::exit(1);
    }
}
