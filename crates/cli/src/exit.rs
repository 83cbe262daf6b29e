//! The exit codes of the CLI contract (DESIGN.md "CLI contract"), by name.

use std::process::ExitCode;

/// Success; with `--detailed-exitcode`, also "no changes".
pub const SUCCESS: ExitCode = ExitCode::SUCCESS;
/// Any error: invalid input, a refused plan, a failed operation.
pub const FAILURE: ExitCode = ExitCode::FAILURE;

/// Changes or drift present (`--detailed-exitcode`).
pub fn changes() -> ExitCode {
    ExitCode::from(2)
}

/// Unwaived policy errors (`check`).
pub fn policy_violations() -> ExitCode {
    ExitCode::from(3)
}
