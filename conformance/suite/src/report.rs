//! Printing a report: an aligned table (default), JSON, or a Markdown table
//! (for documentation).

use serde_json::json;

use crate::check::Status;
use crate::ctx::Probe;
use crate::runner::Report;

/// One line about each probed plugin.
pub fn plugins_line(r: &Report) -> String {
    r.probes
        .iter()
        .map(|(p, probe)| match probe {
            Probe::Absent => format!("{} absent", p.name()),
            Probe::Broken(_) => format!("{} broken", p.name()),
            Probe::Versions(v) => format!("{} {}", p.name(), v.join(",")),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn summary(r: &Report) -> String {
    format!(
        "{} checks: {} pass, {} fail, {} n/a ({:.1} s)",
        r.outcomes.len(),
        r.count(Status::Pass),
        r.count(Status::Fail),
        r.count(Status::NotApplicable),
        r.elapsed.as_secs_f64()
    )
}

/// `{"checks": [{"id", "rule", "status", "detail"}]}`.
pub fn json(r: &Report) -> serde_json::Value {
    json!({
        "checks": r.outcomes.iter().map(|o| json!({
            "id": o.id,
            "rule": o.rule,
            "status": o.status.as_str(),
            "detail": o.detail,
        })).collect::<Vec<_>>()
    })
}

/// The aligned table: ID, status, rule; the detail indented below a fail or n/a.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!("cni-conformance: {}\n", r.plugin_dir.display()));
    s.push_str(&format!("plugins: {}\n\n", plugins_line(r)));
    let width = r
        .outcomes
        .iter()
        .map(|o| o.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    s.push_str(&format!("{:<width$}  {:<6}  RULE\n", "ID", "STATUS"));
    let mut group = None;
    for o in &r.outcomes {
        if group != Some(o.group) {
            group = Some(o.group);
            s.push_str(&format!("-- {}\n", o.group.title()));
        }
        let status = match o.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::NotApplicable => "n/a",
        };
        s.push_str(&format!("{:<width$}  {:<6}  {}\n", o.id, status, o.rule));
        if !o.detail.is_empty() {
            s.push_str(&format!("{:<width$}          -> {}\n", "", o.detail));
        }
    }
    s.push('\n');
    s.push_str(&summary(r));
    s.push('\n');
    s
}

fn md_cell(t: &str) -> String {
    t.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown table: | ID | rule | status | detail |.
pub fn markdown(r: &Report) -> String {
    let mut s = String::from("| ID | rule | status | detail |\n|---|---|---|---|\n");
    for o in &r.outcomes {
        let status = match o.status {
            Status::Fail => "**fail**",
            other => other.as_str(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            o.id,
            md_cell(o.rule),
            status,
            md_cell(&o.detail)
        ));
    }
    s
}
