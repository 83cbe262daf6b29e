//! Rendering for the terminal: results to stdout, diagnostics and errors to stderr,
//! as plain text or JSON. The engine never prints; commands hand their values here.
//!
//! Output never stops an operation: a closed pipe (`| head`, a quit pager) or a
//! full disk makes a write fail, and the failure is ignored here (never a panic
//! halfway through an activation); the operation finishes and its exit code
//! says how it went.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use lifeboat_engine::apply::Event;

use crate::args::OutputKind;
use lifeboat_core::diag::Diagnostics;

/// Text for a terminal: control characters other than newline and tab (from
/// text lifeboat did not write: ARM error messages, tags, a reason) are shown
/// as `\u{1b}`, never interpreted (no erased lines, no hidden output).
pub fn for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// A line on stderr; a failed write is ignored (see the module docs).
pub fn stderr_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(for_terminal(text).as_bytes());
    let _ = err.write_all(b"\n");
}

/// Text on stderr without a newline (a prompt); a failed write is ignored.
pub fn stderr_text(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(for_terminal(text).as_bytes());
    let _ = err.flush();
}

fn short(id: &str) -> String {
    lifeboat_core::id::ResourceId::parse(id)
        .map(|r| r.display_name())
        .unwrap_or_else(|_| id.to_string())
}

/// How to run this lifeboat again: `lifeboat` when that name on the PATH is
/// this program, else its full path (a hint must work when pasted, and a fresh
/// clone run through `cargo run` puts nothing on the PATH).
fn program() -> &'static str {
    static PROGRAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| {
        let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
            return "lifeboat".into();
        };
        let on_path = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|d| {
                d.join("lifeboat")
                    .canonicalize()
                    .is_ok_and(|found| found == me)
            })
        });
        if on_path {
            "lifeboat".into()
        } else {
            me.display().to_string()
        }
    })
}

/// `text` with the commands it suggests (`` `lifeboat …` ``) spelled as this
/// program can be run.
pub fn with_program(text: &str) -> std::borrow::Cow<'_, str> {
    let p = program();
    if p == "lifeboat" || !text.contains("`lifeboat ") {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.replace("`lifeboat ", &format!("`{p} ")))
}

pub struct Ui {
    pub output: OutputKind,
    /// Progress bars only on an interactive terminal, never in CI logs.
    pub progress: bool,
    bars: Mutex<Option<Bars>>,
}

/// Live bars: one overall, one per running resource (the first few; the rest are
/// counted in the overall bar's message).
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: HashMap<String, ProgressBar>,
}

const MAX_RESOURCE_BARS: usize = 12;

impl Ui {
    pub fn new(output: OutputKind, no_progress: bool) -> Ui {
        Ui {
            output,
            progress: !no_progress
                && output == OutputKind::Human
                && std::io::stderr().is_terminal(),
            bars: Mutex::new(None),
        }
    }

    /// Render one engine event: a JSON line, a bar update, or a plain timestamped line.
    pub fn event(&self, e: &Event) {
        if self.json() {
            self.print(&serde_json::to_string(e).expect("event serializes"));
            return;
        }
        if self.progress {
            return self.bar_event(e);
        }
        let now = jiff::Timestamp::now().strftime("%H:%M:%S%.3fZ");
        let line = match e {
            Event::Started { id, action, .. } => {
                format!("{now} {} {:<7} {id}", action.symbol(), action.as_str())
            }
            Event::Finished {
                id,
                action,
                duration_ms,
            } => {
                format!(
                    "{now}   done    {id} ({} in {:.1} s)",
                    action.as_str(),
                    *duration_ms as f64 / 1000.0
                )
            }
            Event::Failed { id, error, .. } => format!("{now}   FAILED  {id}: {error}"),
            Event::Skipped { id, because, .. } => format!("{now}   skipped {id}: {because}"),
            Event::Progress { .. } => return,
        };
        stderr_line(&line);
    }

    /// Render an image-build event: on a terminal one bar per running build
    /// (elapsed against Image Builder's typical 40 minutes); otherwise a line
    /// per start and end and one every 5 minutes (Azure time) while it runs; or
    /// JSON lines.
    pub fn image_event(&self, e: &lifeboat_engine::ops::image::ImageEvent) {
        use lifeboat_engine::ops::image::ImageEvent;
        if self.json() {
            self.print(&serde_json::to_string(e).expect("event serializes"));
            return;
        }
        if self.progress && self.image_bar(e) {
            return;
        }
        let now = jiff::Timestamp::now().strftime("%H:%M:%S%.3fZ");
        let line = match e {
            ImageEvent::Building { tenant, version } => {
                format!("{now} building  {tenant} HiX image {version}")
            }
            ImageEvent::Progress {
                tenant,
                version,
                elapsed_s,
                typical_s,
            } => {
                if elapsed_s / 60 % 5 != 0 {
                    return;
                }
                format!(
                    "{now} building  {tenant} HiX image {version}: {} min of a typical {} min",
                    elapsed_s / 60,
                    typical_s / 60
                )
            }
            ImageEvent::Built {
                tenant,
                version,
                duration_ms,
            } => {
                format!(
                    "{now} built     {tenant} HiX image {version} in {:.1} s",
                    *duration_ms as f64 / 1000.0
                )
            }
            ImageEvent::Exists { tenant, version } => {
                format!("{now} exists    {tenant} HiX image {version} (not rebuilt)")
            }
            ImageEvent::Failed {
                tenant,
                version,
                error,
            } => format!("{now} FAILED    {tenant} HiX image {version}: {error}"),
        };
        stderr_line(&line);
    }

    /// The terminal side of [`Ui::image_event`]; false when a line is wanted
    /// instead (the end of a build is printed as a line too).
    fn image_bar(&self, e: &lifeboat_engine::ops::image::ImageEvent) -> bool {
        use lifeboat_engine::ops::image::ImageEvent;
        let mut bars = self.bars.lock().expect("bars");
        let b = bars.get_or_insert_with(|| {
            let multi = MultiProgress::new();
            let overall = multi.add(ProgressBar::hidden());
            Bars {
                multi,
                overall,
                running: HashMap::new(),
            }
        });
        match e {
            ImageEvent::Building { tenant, version } => {
                let bar = b.multi.add(ProgressBar::new(2400));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>24} [{bar:30}] {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(format!("{tenant} {version}"));
                bar.set_message("Image Builder running");
                b.running.insert(format!("{tenant}/{version}"), bar);
                true
            }
            ImageEvent::Progress {
                tenant,
                version,
                elapsed_s,
                typical_s,
            } => {
                if let Some(bar) = b.running.get(&format!("{tenant}/{version}")) {
                    bar.set_length(*typical_s.max(elapsed_s));
                    bar.set_position(*elapsed_s);
                    bar.set_message(format!("{} of ~{} min", elapsed_s / 60, typical_s / 60));
                }
                true
            }
            ImageEvent::Built {
                tenant, version, ..
            }
            | ImageEvent::Exists { tenant, version }
            | ImageEvent::Failed {
                tenant, version, ..
            } => {
                if let Some(bar) = b.running.remove(&format!("{tenant}/{version}")) {
                    bar.finish_and_clear();
                }
                false
            }
        }
    }

    /// A Disaster Activation Plan step, as it starts and ends (stderr; JSON lines
    /// on stdout with `--output json`).
    pub fn dap_event(&self, e: &lifeboat_engine::ops::dap::DapEvent) {
        use lifeboat_engine::ops::dap::DapEvent;
        if self.json() {
            self.print(&serde_json::to_string(e).expect("event serializes"));
            return;
        }
        let now = jiff::Timestamp::now().strftime("%H:%M:%S%.3fZ");
        match e {
            DapEvent::Started { tenant, step } => {
                stderr_line(&format!("{now} {tenant} {step} ..."))
            }
            DapEvent::Finished { tenant, step } => stderr_line(&format!(
                "{now} {tenant} {} {} in {:.2} s: {}",
                step.name,
                step.outcome.to_uppercase(),
                step.duration_ms as f64 / 1000.0,
                step.detail
            )),
        }
    }

    fn bar_event(&self, e: &Event) {
        let mut guard = self.bars.lock().expect("bars");
        let bars = guard.get_or_insert_with(|| {
            let multi = MultiProgress::new();
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {msg}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            Bars {
                multi,
                overall,
                running: HashMap::new(),
            }
        });
        match e {
            Event::Started { id, action, .. } => {
                if bars.running.len() < MAX_RESOURCE_BARS {
                    let pb = bars.multi.add(ProgressBar::new_spinner());
                    pb.set_style(
                        ProgressStyle::with_template("  {spinner} {elapsed:>4} {msg}")
                            .expect("template"),
                    );
                    pb.set_message(format!("{} {}", action.symbol(), short(id)));
                    pb.enable_steady_tick(std::time::Duration::from_millis(120));
                    bars.running.insert(id.clone(), pb);
                }
            }
            Event::Finished { id, .. } | Event::Skipped { id, .. } => {
                if let Some(pb) = bars.running.remove(id) {
                    pb.finish_and_clear();
                }
            }
            Event::Failed { id, error, .. } => {
                if let Some(pb) = bars.running.remove(id) {
                    pb.finish_and_clear();
                }
                let _ = bars
                    .multi
                    .println(for_terminal(&format!("FAILED {id}: {error}")));
            }
            Event::Progress { done, total } => {
                bars.overall.set_length(*total as u64);
                bars.overall.set_position(*done as u64);
                if done == total {
                    bars.overall.finish_and_clear();
                }
            }
        }
    }

    pub fn json(&self) -> bool {
        self.output == OutputKind::Json
    }

    /// A result document on stdout.
    pub fn print(&self, text: &str) {
        // JSON escapes control characters itself.
        let text = if self.json() {
            std::borrow::Cow::Borrowed(text)
        } else {
            std::borrow::Cow::Owned(for_terminal(&with_program(text)).into_owned())
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }

    /// A JSON result document on stdout, written as it is serialized: a
    /// fleet's plan is ~4 MB, and no copy of it is built first.
    pub fn print_serialized(&self, doc: &impl serde::Serialize) {
        if !self.json() {
            return self.print(&serde_json::to_string(doc).expect("JSON serializes"));
        }
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        // A closed pipe ends the output quietly, as `print` does.
        if let Err(e) = serde_json::to_writer(&mut out, doc) {
            assert!(e.is_io(), "JSON serializes: {e}");
            return;
        }
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }

    pub fn print_json(&self, v: &serde_json::Value) {
        self.print(&serde_json::to_string_pretty(v).expect("JSON serializes"));
    }

    /// A note for people, on stderr (kept off stdout so JSON stays parseable).
    pub fn note(&self, text: &str) {
        if !self.json() {
            stderr_line(&with_program(text));
        }
    }

    pub fn diagnostics(&self, d: &Diagnostics) {
        if self.json() {
            self.print_json(&json!({"valid": false, "errors": d.0}));
        } else {
            stderr_line(&d.to_string());
        }
    }

    /// The error and its causes, once.
    pub fn error(&self, e: &anyhow::Error) {
        if self.json() {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            self.print_json(&json!({"error": e.to_string(), "causes": chain[1..]}));
        } else {
            stderr_line(&with_program(&format!("error: {e:#}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::for_terminal;

    #[test]
    fn terminal_text_shows_control_characters_instead_of_obeying_them() {
        assert_eq!(for_terminal("plain\tline\n"), "plain\tline\n");
        assert_eq!(
            for_terminal("ok\x1b[2K\rerased"),
            "ok\\u{1b}[2K\\u{d}erased"
        );
    }
}
