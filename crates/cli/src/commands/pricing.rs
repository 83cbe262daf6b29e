//! `pricing refresh`: reads the Azure Retail Prices API (pages followed through
//! `NextPageLink`) and rewrites the project's price table for its region. The
//! mapping of API items to table entries lives in `cost`; this owns only HTTP and
//! the file.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::args::{Cli, PricingCommand};
use crate::ui::Ui;

/// The API returns 100 items a page; a region's filtered meters are a few
/// thousand. More pages than this means a loop or a wrong filter.
const MAX_PAGES: usize = 500;

pub fn run(cli: &Cli, ui: &Ui, cmd: &PricingCommand) -> anyhow::Result<ExitCode> {
    let PricingCommand::Refresh { endpoint, currency } = cmd;
    let project = match super::load_project(cli, ui) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let region = project.platform.region.value.clone();
    let Some(mut table) = lifeboat_core::cost::PriceTable::for_project(&project)? else {
        bail!(
            "no price table for region {region}: copy pricing/westeurope.json to {} and set its region, then refresh",
            lifeboat_core::cost::PriceTable::path(&project).display()
        );
    };
    let currency = currency.clone().unwrap_or_else(|| table.currency.clone());
    let mut url = reqwest::Url::parse_with_params(
        endpoint,
        &[
            ("currencyCode", format!("'{currency}'")),
            ("$filter", lifeboat_core::cost::api_filter(&region)),
        ],
    )
    .with_context(|| format!("--endpoint {endpoint}: not a URL"))?;
    lifeboat_engine::cloud::install_crypto();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        if pages > MAX_PAGES {
            bail!("more than {MAX_PAGES} pages from {endpoint}: stopping (check the filter)");
        }
        let text = rt.block_on(async {
            let resp = http
                .get(url.clone())
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            let status = resp.status();
            let body = resp
                .text()
                .await
                .with_context(|| format!("reading {url}"))?;
            if !status.is_success() {
                bail!("GET {url}: HTTP {status}: {body}");
            }
            Ok(body)
        })?;
        let (page, next) = lifeboat_core::cost::parse_page(url.as_str(), &text)?;
        items.extend(page);
        match next {
            Some(n) => {
                url = reqwest::Url::parse(&n).with_context(|| format!("NextPageLink {n}"))?
            }
            None => break,
        }
    }
    table.currency = currency;
    let today = lifeboat_core::clock::today()?.to_string();
    let source = format!(
        "Azure Retail Prices API, {endpoint} ({pages} page(s), {} items)",
        items.len()
    );
    let r = table.refresh(&items, &today, &source);
    let path = lifeboat_core::cost::PriceTable::path(&project);
    std::fs::create_dir_all(path.parent().expect("pricing/ has a parent"))?;
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(&table)? + "\n";
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    if ui.json() {
        ui.print_json(&json!({"file": path, "pages": pages, "refresh": r}));
    } else {
        ui.print(&format!(
            "Updated {} price(s) from {} item(s) in {pages} page(s) into {} (dated {today}).{}",
            r.prices_updated,
            r.items_read,
            path.display(),
            if r.not_found.is_empty() {
                String::new()
            } else {
                format!(
                    " Not in the API's answer (kept): {}.",
                    r.not_found.join(", ")
                )
            }
        ));
    }
    Ok(ExitCode::SUCCESS)
}
