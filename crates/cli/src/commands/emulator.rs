//! `emulator serve`: the embedded cloud, standalone on a chosen address.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::session::runtime;
use crate::args::Cli;
use crate::ui::Ui;
use lifeboat_emulator::Faults;

pub fn serve(
    cli: &Cli,
    ui: &Ui,
    listen: &str,
    data: &Path,
    allow_remote: bool,
) -> anyhow::Result<ExitCode> {
    let scale = cli
        .time_scale
        .unwrap_or(lifeboat_emulator::DEFAULT_TIME_SCALE);
    anyhow::ensure!(
        scale > 0.0 && scale <= 1.0,
        "--time-scale {scale}: must be greater than 0 and at most 1"
    );
    let faults = match &cli.faults {
        Some(spec) => Faults::parse(spec)?,
        None => Faults::default(),
    };
    let (token, generated) = match std::env::var("LIFEBOAT_EMULATOR_TOKEN") {
        Ok(t) if !t.is_empty() => (t, false),
        _ => (lifeboat_engine::cloud::auth::random_token(), true),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let cfg = lifeboat_emulator::Config {
            time_scale: scale,
            faults: faults.clone(),
            token: token.clone(),
            allow_remote,
            graph_lag: super::session::graph_lag(cli)?,
            vcpu_quota: super::session::vcpu_quota(cli)?,
        };
        let addr = lifeboat_emulator::start(data, listen, cfg, lifeboat_emulator::Warm::BeforeListening)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        ui.note(&format!(
            "lifeboat emulator listening on http://{addr} (data {}, time scale {scale}, faults {faults}); Ctrl-C stops it",
            data.display()
        ));
        if generated {
            ui.note(&format!(
                "token (pass it to clients as LIFEBOAT_ACCESS_TOKEN): {token}"
            ));
        }
        if ui.json() {
            let mut v = serde_json::json!({"listening": format!("http://{addr}")});
            if generated {
                v["token"] = token.clone().into();
            }
            ui.print(&v.to_string());
        }
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
