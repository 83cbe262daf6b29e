//! Rendering for the terminal: results to stdout, diagnostics and errors to stderr,
//! as plain text or JSON. The engine never prints; commands hand their values here.

use std::io::{IsTerminal, Write};

use serde_json::json;

use crate::cli::OutputKind;
use crate::manifest::diag::Diagnostics;

pub struct Ui {
    pub output: OutputKind,
    /// Progress bars only on an interactive terminal, never in CI logs.
    pub progress: bool,
}

impl Ui {
    pub fn new(output: OutputKind, no_progress: bool) -> Ui {
        Ui {
            output,
            progress: !no_progress
                && output == OutputKind::Human
                && std::io::stderr().is_terminal(),
        }
    }

    pub fn json(&self) -> bool {
        self.output == OutputKind::Json
    }

    /// A result document on stdout.
    pub fn print(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }

    pub fn print_json(&self, v: &serde_json::Value) {
        self.print(&serde_json::to_string_pretty(v).expect("JSON serializes"));
    }

    /// A note for people, on stderr (kept off stdout so JSON stays parseable).
    pub fn note(&self, text: &str) {
        if !self.json() {
            eprintln!("{text}");
        }
    }

    pub fn diagnostics(&self, d: &Diagnostics) {
        if self.json() {
            self.print_json(&json!({"valid": false, "errors": d.0}));
        } else {
            eprintln!("{d}");
        }
    }

    /// The error and its causes, once.
    pub fn error(&self, e: &anyhow::Error) {
        if self.json() {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            self.print_json(&json!({"error": e.to_string(), "causes": chain[1..]}));
        } else {
            eprintln!("error: {e:#}");
        }
    }
}
