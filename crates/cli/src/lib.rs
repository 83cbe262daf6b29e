//! lifeboat: provisions and operates per-hospital HiX emergency environments in
//! Azure. This crate is the command line; the work is done by the layers below it.
//!
//! Codemap of the workspace, bottom first (a crate only uses crates above it):
//!
//! - `lifeboat-core` (`crates/core`): pure stages. `manifest` reads and validates
//!   the files -> `model` -> `graph` renders templates into resources and edges ->
//!   `plan` compares with the prior state; `policy`, `cost`, `export`; base types
//!   (`id`, `diag`, `clock`, `api`, `quota`, `location`, `observed`).
//! - `lifeboat-engine` (`crates/engine`): `cloud` (ARM/Blob clients), `state`
//!   (locks, journal, audit, saved plans), `apply`, `review` (the plan pipeline,
//!   guards, lock-held execution), `ops` (images, DAP, status, catalog). Emits
//!   events, never prints.
//! - `lifeboat-emulator` (`crates/emulator`): the embedded local cloud.
//! - this crate: [`args`] (clap), [`commands`] (arguments -> engine options -> one
//!   engine call -> a view), [`report`] (the views: plan as text/JSON/Markdown,
//!   SARIF, drill reports, status), [`ui`] (events as bars, lines or JSON).

pub mod args;
pub mod commands;
pub mod exit;
pub mod report;
pub mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use args::Cli;
use ui::Ui;

/// The whole command: parse, enter the project directory, run, print the error.
pub fn main() -> ExitCode {
    let mut cli = match Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(args::NotRun::Help(text)) => {
            // A closed pipe must not turn help into a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            return exit::SUCCESS;
        }
        Err(args::NotRun::Clap(e)) => return usage(e),
    };
    let ui = Ui::new(cli.output, cli.no_progress);
    // Like `git -C` and `terraform -chdir`: every relative path is inside DIR.
    if let Err(e) = std::env::set_current_dir(&cli.dir) {
        ui.error(&anyhow::anyhow!(
            "cannot enter project directory {}: {e}",
            cli.dir.display()
        ));
        return exit::FAILURE;
    }
    cli.dir = PathBuf::from(".");
    match commands::run(&cli, &ui) {
        Ok(code) => code,
        Err(e) => {
            ui.error(&e);
            exit::FAILURE
        }
    }
}

/// `--help` and `--version` succeed; every other argument error is a usage
/// error and exits 1 (clap's own 2 would read as "changes present" to a
/// pipeline using `--detailed-exitcode`).
fn usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    // A closed pipe must not turn help into a panic.
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit::SUCCESS,
        _ => exit::FAILURE,
    }
}
