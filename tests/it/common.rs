//! Helpers for driving the real `lifeboat` binary against throw-away projects.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An apply of cwz and the shared layer slow enough (time scale 0.05) for a second
/// process to meet its lock.
pub const SLOW_APPLY_CWZ: &[&str] = &[
    "--time-scale",
    "0.05",
    "--no-progress",
    "apply",
    "--auto-approve",
    "--tenant",
    "cwz",
    "--shared",
];

/// An apply of rst and the shared layer.
pub const APPLY_RST: &[&str] = &[
    "--no-progress",
    "apply",
    "--auto-approve",
    "--tenant",
    "rst",
    "--shared",
];

pub struct Project {
    pub dir: PathBuf,
}

impl Project {
    /// A copy of the repository's example project in a fresh temporary directory.
    pub fn example(name: &str) -> Project {
        let dir = std::env::temp_dir().join(format!("lifeboat-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tenants")).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(root.join("platform.yaml"), dir.join("platform.yaml")).unwrap();
        std::fs::create_dir_all(dir.join("hr")).unwrap();
        for t in ["cwz", "mst", "rst"] {
            for f in [format!("tenants/{t}.yaml"), format!("hr/{t}.csv")] {
                std::fs::copy(root.join(&f), dir.join(&f)).unwrap();
            }
        }
        Project { dir }
    }

    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap()
    }

    /// Replace `from` with `to` in a file (the text must be present).
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let s = self.read(rel);
        assert!(s.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, s.replacen(from, to, 1));
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.join(rel)).unwrap();
    }

    /// Start the binary in the background, output discarded (for kill -9 and
    /// concurrency tests); killed when dropped, so a failing test leaves no process.
    pub fn spawn(&self, args: &[&str]) -> Background {
        self.spawn_env(args, &[])
    }

    /// `lifeboat emulator serve` on a free loopback port with `token`, running
    /// at `time_scale`, once it accepts connections: the process (killed when
    /// dropped) and its endpoint.
    pub fn serve_emulator(&self, token: &str, time_scale: &str) -> (Background, String) {
        let port = free_port();
        let emu = self.spawn_env(
            &[
                "emulator",
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--time-scale",
                time_scale,
            ],
            &[("LIFEBOAT_EMULATOR_TOKEN", token)],
        );
        wait_for("the emulator", std::time::Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        (emu, format!("http://127.0.0.1:{port}"))
    }

    /// [`Project::spawn`] with extra environment variables.
    pub fn spawn_env(&self, args: &[&str], env: &[(&str, &str)]) -> Background {
        Background(
            Command::new(env!("CARGO_BIN_EXE_lifeboat"))
                .arg("-C")
                .arg(&self.dir)
                .args(args)
                .env_remove("LIFEBOAT_CLOUD")
                .envs(env.iter().copied())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn lifeboat"),
        )
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Run with extra environment variables (e.g. `LIFEBOAT_NOW`). The binary
    /// is on the PATH, as an installed lifeboat is, so the commands its hints
    /// suggest read `lifeboat …` (see `hints_name_this_program_when_not_installed`).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env_remove("LIFEBOAT_CLOUD")
            .env_remove("LIFEBOAT_NOW")
            .env("PATH", path_with_lifeboat())
            .envs(env.iter().copied())
            .output()
            .expect("run lifeboat");
        Run::from(out)
    }
}

/// PATH with the directory of the binary under test first.
pub fn path_with_lifeboat() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_lifeboat"))
        .parent()
        .expect("the binary is in a directory")
        .to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&rest)))
        .expect("PATH entries join")
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts that a diagnostic line starting with `prefix` (file:line:col: field:)
    /// mentions `words`.
    pub fn expect_error(&self, prefix: &str, words: &str) {
        assert!(
            self.stderr
                .lines()
                .any(|l| l.contains(prefix) && l.contains(words)),
            "no error line containing {prefix:?} that mentions {words:?} in:\n{}",
            self.stderr
        );
    }
}

/// A child process that is killed (and reaped) when dropped.
pub struct Background(pub std::process::Child);

impl std::ops::Deref for Background {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Background {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on (for a process the test starts).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Poll `ok` every 100 ms until it holds; fail after `limit`.
pub fn wait_for(what: &str, limit: std::time::Duration, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An emulator in this process over a fresh store under the temp dir (removed
/// first), with `token`, the time `scale`, no graph lag and default quotas;
/// `adjust` changes the rest. Returns its base URL and the store's directory.
pub async fn emulator(
    name: &str,
    token: &str,
    scale: f64,
    adjust: impl FnOnce(&mut lifeboat_emulator::Config),
) -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("lifeboat-emu-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = lifeboat_emulator::Config {
        time_scale: scale,
        faults: Default::default(),
        token: token.into(),
        allow_remote: false,
        graph_lag: 0.0,
        vcpu_quota: Default::default(),
    };
    adjust(&mut cfg);
    let addr = lifeboat_emulator::start(
        &dir,
        "127.0.0.1:0",
        cfg,
        lifeboat_emulator::Warm::BeforeListening,
    )
    .await
    .unwrap();
    (format!("http://{addr}"), dir)
}

impl Run {
    /// A `plan --detailed-exitcode` that found nothing to change: exit 0, or
    /// exit 2 when the only pending work is resources that wait (front-ends
    /// whose HiX image is not built yet), which is not done but not a change.
    pub fn assert_nothing_to_change(&self) {
        match self.code {
            0 => {}
            2 => assert!(
                self.stdout.contains("Nothing to apply now, but not done:"),
                "changes pending:\n{}\n{}",
                self.stdout,
                self.stderr
            ),
            c => panic!("plan exited {c}:\n{}\n{}", self.stdout, self.stderr),
        }
    }
}
