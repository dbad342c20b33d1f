//! A hand-written SVG: per scenario and command, ours and the reference as
//! horizontal bars at p50 with a whisker to p99, on a log time axis, with the
//! floors (exec of /bin/true, `ip link del` of a veth) as vertical lines.

use std::fmt::Write;

use crate::chain::Side;
use crate::report::Report;

const OURS: &str = "#1b9e77";
const REF: &str = "#d95f02";
const LEFT: f64 = 230.0;
const WIDTH: f64 = 660.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 70.0;
const BAR: f64 = 9.0;
const GROUP: f64 = 2.0 * BAR + 10.0;

/// `.../target/release` shown as `target/release`.
fn short(dir: &str) -> &str {
    dir.find("/target/").map(|i| &dir[i + 1..]).unwrap_or(dir)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Row {
    label: String,
    ours: (f64, f64),
    reference: (f64, f64),
}

pub fn svg(report: &Report) -> String {
    let mut rows = Vec::new();
    for s in &report.scenarios {
        for cmd in ["ADD", "DEL"] {
            let get = |side: Side| {
                let d = s.side(side);
                let m = if cmd == "ADD" { &d.add } else { &d.del }.chain.summary();
                (m.p50, m.p99)
            };
            let label = if s.concurrency == 1 {
                format!("{} {cmd}", s.id())
            } else {
                format!("{} {cmd} (each)", s.id())
            };
            rows.push(Row {
                label,
                ours: get(Side::Ours),
                reference: get(Side::Reference),
            });
        }
    }
    let mut floors: Vec<(String, f64)> = Vec::new();
    if let Some(f) = &report.floors {
        floors.push(("exec /bin/true".into(), f.exec_true.summary().p50));
        floors.push(("ip link del veth".into(), f.veth_del_ip.summary().p50));
    }
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.ours.0, r.ours.1, r.reference.0, r.reference.1])
        .chain(floors.iter().map(|f| f.1))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() {
        (1.0, 10.0)
    } else {
        (lo, hi)
    };
    // Axis ends on 1-2-5 steps just outside the data.
    let step_below = |v: f64| {
        let k = v.log10().floor();
        [5.0, 2.0, 1.0]
            .iter()
            .map(|m| m * 10f64.powf(k))
            .find(|c| *c <= v)
            .unwrap_or(10f64.powf(k))
    };
    let step_above = |v: f64| {
        let k = v.log10().floor();
        [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * 10f64.powf(k))
            .find(|c| *c >= v)
            .unwrap_or(10f64.powf(k + 1.0))
    };
    let dmin = step_below(lo * 0.9).log10();
    let dmax = step_above(hi * 1.05).log10().max(dmin + 1.0);
    let x = |v: f64| LEFT + (v.max(10f64.powf(dmin)).log10() - dmin) / (dmax - dmin) * WIDTH;
    let height = TOP + rows.len() as f64 * GROUP + 60.0;
    let total_w = LEFT + WIDTH + RIGHT;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" viewBox="0 0 {total_w} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "CNI chain latency, ours vs reference: bar = p50, whisker = p99 (ms, log scale) - {}",
        report.meta["date"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="20" font-size="13" font-weight="bold">{}</text>"#,
        10,
        esc(&title)
    );
    // Legend.
    let _ = writeln!(
        o,
        r#"<rect x="{LEFT}" y="32" width="12" height="10" fill="{OURS}"/><text x="{}" y="41">ours ({})</text>"#,
        LEFT + 16.0,
        esc(short(report.meta["ours_dir"].as_str().unwrap_or("")))
    );
    let _ = writeln!(
        o,
        r#"<rect x="{}" y="32" width="12" height="10" fill="{REF}"/><text x="{}" y="41">reference ({})</text>"#,
        LEFT + 330.0,
        LEFT + 346.0,
        esc(short(report.meta["reference_dir"].as_str().unwrap_or("")))
    );
    // Grid and axis.
    let bottom = TOP + rows.len() as f64 * GROUP;
    let mut d = dmin.floor() as i32;
    while d <= dmax.ceil() as i32 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(d);
            if v < 10f64.powf(dmin) * 0.999 || v > 10f64.powf(dmax) * 1.001 {
                continue;
            }
            let xv = x(v);
            let stroke = if m == 1.0 { "#bbb" } else { "#e4e4e4" };
            let _ = writeln!(
                o,
                r##"<line x1="{xv:.1}" y1="{}" x2="{xv:.1}" y2="{bottom}" stroke="{stroke}"/>"##,
                TOP - 6.0
            );
            let label = if v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            };
            let _ = writeln!(
                o,
                r##"<text x="{xv:.1}" y="{}" text-anchor="middle" fill="#555">{label}</text>"##,
                bottom + 14.0
            );
        }
        d += 1;
    }
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">milliseconds</text>"#,
        LEFT + WIDTH / 2.0,
        bottom + 30.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y0 = TOP + i as f64 * GROUP;
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y0 + BAR + 3.0,
            esc(&r.label)
        );
        for (k, (p50, p99), color) in [(0.0, r.ours, OURS), (1.0, r.reference, REF)] {
            let y = y0 + k * BAR;
            let w = (x(p50) - LEFT).max(1.0);
            let _ = writeln!(
                o,
                r#"<rect x="{LEFT}" y="{y:.1}" width="{w:.1}" height="{}" fill="{color}"><title>p50 {p50:.2} ms, p99 {p99:.2} ms</title></rect>"#,
                BAR - 1.0
            );
            let ym = y + (BAR - 1.0) / 2.0;
            let _ = writeln!(
                o,
                r##"<line x1="{:.1}" y1="{ym:.1}" x2="{:.1}" y2="{ym:.1}" stroke="#333"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
                x(p50),
                x(p99),
                x(p99),
                y + 1.0,
                x(p99),
                y + BAR - 2.0
            );
            let _ = writeln!(
                o,
                r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#333">{}</text>"##,
                x(p99) + 4.0,
                y + BAR - 1.0,
                fmt(p50)
            );
        }
    }
    for (i, (name, v)) in floors.iter().enumerate() {
        let xv = x(*v);
        let _ = writeln!(
            o,
            r##"<line x1="{xv:.1}" y1="{}" x2="{xv:.1}" y2="{bottom}" stroke="#1f4e9c" stroke-dasharray="4,3"/>"##,
            TOP - 6.0
        );
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{}" fill="#1f4e9c" font-size="10">{} {}</text>"##,
            xv + 3.0,
            TOP - 8.0 - 11.0 * i as f64,
            esc(name),
            fmt(*v)
        );
    }
    let _ = writeln!(o, "</svg>");
    o
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
