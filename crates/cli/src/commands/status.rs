//! `status`: the plan's bulk state read (Resource Graph) and one Log Analytics
//! query for the SQL secondaries, turned into one row per tenant.

use std::process::ExitCode;

use crate::args::{Cli, StatusArgs, StatusFormat};
use crate::report;
use crate::ui::Ui;
use lifeboat_core::id::ResourceId;
use lifeboat_core::model::naming::PlatformNames;
use lifeboat_engine::cloud::inventory::Refresh;
use lifeboat_engine::ops::status;
use lifeboat_engine::review::PlanRequest;

pub fn run(cli: &Cli, ui: &Ui, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let ws = match super::session::open(cli, ui)? {
        Ok(ws) => ws,
        Err(code) => return Ok(code),
    };
    let tenants: Vec<String> = if args.tenants.is_empty() {
        ws.project
            .tenants
            .iter()
            .map(|t| t.id.value.clone())
            .collect()
    } else {
        args.tenants.clone()
    };
    let p = &ws.project.platform;
    let names = PlatformNames::derive(p);
    let workspace = ResourceId::parse(&format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
        p.subscription_id, names.rg, names.log_analytics
    ))
    .expect("derived id parses");
    let s = &ws.session;
    // The two bulk reads are independent: the Log Analytics query runs while the
    // plan renders the graph and reads Resource Graph.
    let (planned, rows) = std::thread::scope(|scope| {
        let la = scope.spawn(|| {
            s.rt.block_on(s.client.log_query(&workspace, status::SHIPPING_QUERY))
        });
        let planned = ws.plan_with_prior(PlanRequest {
            tenants: &tenants,
            shared: false,
            refresh: Refresh::Graph,
            allow_data_loss: &[],
            review: false,
        });
        (planned, la.join().expect("the query thread does not panic"))
    });
    let (plan, prior) = planned?;
    // Without the monitor rows the rest of the status still matters (at 3 a.m.
    // more than ever): the SQL columns stay empty and the reason is said.
    let rows = rows.unwrap_or_else(|e| {
        ui.note(&format!(
            "warning: SQL state unavailable: reading the log-shipping monitor rows from Log Analytics: {e}"
        ));
        Vec::new()
    });
    let ts = status::build(&ws.project, &tenants, &plan, &prior, &rows);
    match (args.format, ui.json()) {
        (StatusFormat::Json, _) | (StatusFormat::Human, true) => {
            let mut v = report::status::json(&ts);
            v["requests"] =
                serde_json::to_value(s.client.stats.snapshot()).expect("stats serialize");
            ui.print_json(&v)
        }
        (StatusFormat::Human, false) => ui.print(&report::status::human(&ts)),
        (StatusFormat::Prometheus, _) => ui.print(&report::status::prometheus(&ts)),
        (StatusFormat::Html, _) => ui.print(&report::status::html(
            &ts,
            &lifeboat_core::clock::now()?.to_string(),
        )),
    }
    super::leave_to_exit((plan, prior));
    Ok(ExitCode::SUCCESS)
}
