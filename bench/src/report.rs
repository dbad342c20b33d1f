//! The results as JSON and as a plain-text table, and the targets.

use std::fmt::Write;

use serde_json::{json, Map, Value};

use crate::chain::Side;
use crate::etcd_ipam::{self, EtcdIpamData, Store};
use crate::floors::{FloorData, PerSide};
use crate::scenario::{OpData, ScenarioData};
use crate::sizes::{self, Size};
use crate::stats::{ratio, Samples, Summary};

pub struct Report {
    pub meta: Value,
    pub scenarios: Vec<ScenarioData>,
    pub floors: Option<FloorData>,
    pub sizes: Vec<Size>,
    /// The etcd-ipam scenario, when selected and runnable.
    pub etcd: Option<EtcdIpamData>,
    /// The overlay scenario, when selected and runnable.
    pub overlay: Option<crate::overlay::OverlayData>,
    /// Selected parts that could not run here, and why.
    pub skipped: Vec<(String, String)>,
}

/// One of the targets, evaluated on this run.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: &'static str,
    pub what: String,
    /// The measured value (mostly a ratio), when its inputs were measured.
    pub value: Option<f64>,
    pub limit: f64,
    /// Met when the value is at least the limit (a rate), instead of at most.
    pub at_least: bool,
}

impl Target {
    pub fn met(&self) -> Option<bool> {
        self.value.map(|v| {
            if self.at_least {
                v >= self.limit
            } else {
                v <= self.limit
            }
        })
    }
}

/// Components whose benchmarks the issue asks for once they exist.
const NOT_MEASURED: [(&str, &str); 0] = [];

fn op<'a>(s: &'a ScenarioData, side: Side, cmd: &str) -> &'a OpData {
    let d = s.side(side);
    if cmd == "ADD" {
        &d.add
    } else {
        &d.del
    }
}

fn sum_json(s: &Samples) -> Value {
    s.summary().json()
}

fn map_json(m: &std::collections::BTreeMap<&'static str, Samples>) -> Value {
    let mut out = Map::new();
    for (k, v) in m {
        out.insert((*k).to_string(), sum_json(v));
    }
    Value::Object(out)
}

fn per_side_json(p: &PerSide) -> Value {
    let (o, r) = (p.ours.summary(), p.reference.summary());
    json!({
        "ours": o.json(),
        "reference": r.json(),
        "ratio_p50": ratio(o.p50, r.p50).map(round3),
        "ratio_p99": ratio(o.p99, r.p99).map(round3),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Report {
    pub fn scenario(&self, id: &str) -> Option<&ScenarioData> {
        self.scenarios.iter().find(|s| s.id() == id)
    }

    fn chain_ratio(&self, id: &str, cmd: &str, p99: bool) -> Option<f64> {
        let s = self.scenario(id)?;
        let o = op(s, Side::Ours, cmd).chain.summary();
        let r = op(s, Side::Reference, cmd).chain.summary();
        if p99 {
            ratio(o.p99, r.p99)
        } else {
            ratio(o.p50, r.p50)
        }
    }

    fn rss_ratio(&self, id: &str, plugin: &str) -> Option<f64> {
        let s = self.scenario(id)?;
        let o = s.ours.add.rss.get(plugin)?.summary();
        let r = s.reference.add.rss.get(plugin)?.summary();
        ratio(o.p50, r.p50)
    }

    pub fn targets(&self) -> Vec<Target> {
        let del_vs_floor = (|| {
            let s = self.scenario("bridge/seq")?;
            let f = self.floors.as_ref()?;
            ratio(s.ours.del.chain.summary().p50, f.veth_del_ip.summary().p50)
        })();
        let ipam_rss = self.floors.as_ref().and_then(|f| {
            ratio(
                f.ipam_rss.ours.summary().p50,
                f.ipam_rss.reference.summary().p50,
            )
        });
        vec![
            Target {
                id: "bridge-add-p50",
                what: "bridge + host-local ADD p50, ours / reference".into(),
                value: self.chain_ratio("bridge/seq", "ADD", false),
                limit: 0.3,
                at_least: false,
            },
            Target {
                id: "bridge-add-p99",
                what: "bridge + host-local ADD p99, ours / reference".into(),
                value: self.chain_ratio("bridge/seq", "ADD", true),
                limit: 0.5,
                at_least: false,
            },
            Target {
                id: "full-add-p50",
                what: "bridge + host-local + portmap with ipMasq, ADD p50, ours / reference".into(),
                value: self.chain_ratio("masq-portmap/seq", "ADD", false),
                limit: 0.2,
                at_least: false,
            },
            Target {
                id: "full-del-p50",
                what: "bridge + host-local + portmap with ipMasq, DEL p50, ours / reference".into(),
                value: self.chain_ratio("masq-portmap/seq", "DEL", false),
                limit: 0.2,
                at_least: false,
            },
            Target {
                id: "del-vs-floor",
                what: "bridge + host-local DEL p50, ours / `ip link del` floor p50".into(),
                value: del_vs_floor,
                limit: 1.3,
                at_least: false,
            },
            Target {
                id: "rss-bridge",
                what: "peak RSS of a bridge ADD (with host-local), ours / reference".into(),
                value: self.rss_ratio("bridge/seq", "bridge"),
                limit: 0.5,
                at_least: false,
            },
            Target {
                id: "rss-bridge-masq",
                what: "peak RSS of a bridge ADD with ipMasq (with host-local, nft / iptables), ours / reference".into(),
                value: self.rss_ratio("masq-portmap/seq", "bridge"),
                limit: 0.5,
                at_least: false,
            },
            Target {
                id: "rss-portmap",
                what: "peak RSS of a portmap ADD (with nft / iptables), ours / reference".into(),
                value: self.rss_ratio("masq-portmap/seq", "portmap"),
                limit: 0.5,
                at_least: false,
            },
            Target {
                id: "rss-host-local",
                what: "peak RSS of a host-local ADD alone, ours / reference".into(),
                value: ipam_rss,
                limit: 0.5,
                at_least: false,
            },
            Target {
                id: "etcd-rate-10-nodes",
                what: "etcd-ipam allocations/s, 10 nodes at once (one client each), 1 member".into(),
                value: self.etcd.as_ref().and_then(|e| e.rate(10, Store::Single)),
                limit: 500.0,
                at_least: true,
            },
            Target {
                id: "etcd-rate-10-nodes-cluster",
                what: "etcd-ipam allocations/s, 10 nodes at once (one client each), 3 members".into(),
                value: self.etcd.as_ref().and_then(|e| e.rate(10, Store::Cluster)),
                limit: 500.0,
                at_least: true,
            },
            Target {
                id: "etcd-seq-vs-floor",
                what: "etcd-ipam sequential ADD p50 / (process start + connect + one txn), 1 member".into(),
                value: self.etcd.as_ref().and_then(|e| e.seq_vs_floor(Store::Single)),
                limit: 2.0,
                at_least: false,
            },
            Target {
                id: "etcd-seq-vs-floor-cluster",
                what: "etcd-ipam sequential ADD p50 / (process start + connect + one txn), 3 members".into(),
                value: self.etcd.as_ref().and_then(|e| e.seq_vs_floor(Store::Cluster)),
                limit: 2.0,
                at_least: false,
            },
            Target {
                id: "overlay-p99",
                what: format!(
                    "overlayd event-to-programmed p99, ms, {} nodes (goal at 50)",
                    self.overlay.as_ref().and_then(|o| o.largest()).map_or(0, |s| s.nodes)
                ),
                value: self.overlay.as_ref().and_then(|o| o.largest()).map(|s| s.all.p99),
                limit: 100.0,
                at_least: false,
            },
            Target {
                id: "overlay-throughput",
                what: "TCP pod to pod across the overlay / hand-built kernel VXLAN, same MTU".into(),
                value: self.overlay.as_ref().and_then(|o| o.throughput.as_ref()?.ratio()),
                limit: 0.9,
                at_least: true,
            },
        ]
    }

    pub fn json(&self) -> Value {
        let scenarios: Vec<Value> = self
            .scenarios
            .iter()
            .map(|s| {
                let mut obj = json!({
                    "id": s.id(),
                    "chain": s.kind.label(),
                    "plugins": s.kind.plugins(),
                    "concurrency": s.concurrency,
                    "rounds": s.rounds,
                    "seconds": round3(s.seconds),
                });
                for cmd in ["ADD", "DEL"] {
                    let mut sides = Map::new();
                    for side in Side::BOTH {
                        let d = op(s, side, cmd);
                        sides.insert(
                            side.key().into(),
                            json!({
                                "chain_ms": sum_json(&d.chain),
                                "plugins_ms": map_json(&d.plugins),
                                "rss_kb": map_json(&d.rss),
                                "wall_ms": sum_json(&d.wall),
                            }),
                        );
                    }
                    let (o, r) = (
                        op(s, Side::Ours, cmd).chain.summary(),
                        op(s, Side::Reference, cmd).chain.summary(),
                    );
                    let (ow, rw) = (
                        op(s, Side::Ours, cmd).wall.summary(),
                        op(s, Side::Reference, cmd).wall.summary(),
                    );
                    sides.insert(
                        "ratio".into(),
                        json!({
                            "p50": ratio(o.p50, r.p50).map(round3),
                            "p99": ratio(o.p99, r.p99).map(round3),
                            "wall_p50": ratio(ow.p50, rw.p50).map(round3),
                        }),
                    );
                    obj[cmd] = Value::Object(sides);
                }
                obj
            })
            .collect();
        let floors = self.floors.as_ref().map(|f| {
            json!({
                "seconds": round3(f.seconds),
                "exec_true_ms": sum_json(&f.exec_true),
                "exec_true_rss_kb": sum_json(&f.exec_true_rss),
                "veth_del_ip_ms": sum_json(&f.veth_del_ip),
                "veth_del_netlink_ms": sum_json(&f.veth_del_netlink),
                "version_ms": per_side_json(&f.version),
                "version_rss_kb": per_side_json(&f.version_rss),
                "ipam_add_ms": per_side_json(&f.ipam_add),
                "ipam_del_ms": per_side_json(&f.ipam_del),
                "ipam_rss_kb": per_side_json(&f.ipam_rss),
            })
        });
        let targets: Vec<Value> = self
            .targets()
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "what": t.what,
                    "value": t.value.map(round3),
                    "limit": t.limit,
                    "at_least": t.at_least,
                    "met": t.met(),
                })
            })
            .collect();
        let not_measured: Vec<Value> = NOT_MEASURED
            .iter()
            .map(|(what, why)| (what.to_string(), why.to_string()))
            .chain(self.skipped.iter().cloned())
            .map(|(what, why)| json!({"what": what, "why": why}))
            .collect();
        json!({
            "schema": 1,
            "meta": self.meta,
            "scenarios": scenarios,
            "floors": floors,
            "binaries": sizes::json(&self.sizes),
            "etcd_ipam": self.etcd.as_ref().map(etcd_ipam::json),
            "overlay": self.overlay.as_ref().map(crate::overlay::json),
            "targets": targets,
            "not_measured": not_measured,
        })
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let m = &self.meta;
        let _ = writeln!(
            t,
            "cni-bench  ours: {}  reference: {} ({})",
            m["ours_dir"].as_str().unwrap_or("?"),
            m["reference_dir"].as_str().unwrap_or("?"),
            m["reference_version"].as_str().unwrap_or("?")
        );
        let _ = writeln!(
            t,
            "kernel {}, {} CPUs, {}, iterations {}, total {:.0} s",
            m["kernel"].as_str().unwrap_or("?"),
            m["cpus"],
            m["date"].as_str().unwrap_or("?"),
            m["iterations"],
            m["seconds"].as_f64().unwrap_or(0.0)
        );
        let _ = writeln!(t, "command: {}", m["command"].as_str().unwrap_or("?"));
        // Headers only over something (`--only etcd-ipam` has no chains).
        if !self.scenarios.is_empty() {
            let _ = writeln!(t);
            let _ = writeln!(
                t,
                "Latency in ms; ratio = ours / reference (same run, alternating)"
            );
            let _ = writeln!(
                t,
                "{:<34} {:>4} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6}",
                "scenario / what",
                "n",
                "ours p50",
                "ours p99",
                "ref p50",
                "ref p99",
                "p50 ×",
                "p99 ×"
            );
        }
        for s in &self.scenarios {
            for cmd in ["ADD", "DEL"] {
                let (o, r) = (op(s, Side::Ours, cmd), op(s, Side::Reference, cmd));
                let head = if s.concurrency == 1 {
                    format!("{} {cmd}", s.id())
                } else {
                    format!("{} {cmd} (each)", s.id())
                };
                row(&mut t, &head, &o.chain.summary(), &r.chain.summary());
                if s.kind.plugins().len() > 1 {
                    for p in s.kind.plugins() {
                        if let (Some(a), Some(b)) = (o.plugins.get(p), r.plugins.get(p)) {
                            row(&mut t, &format!("  {p}"), &a.summary(), &b.summary());
                        }
                    }
                }
                if s.concurrency > 1 {
                    row(
                        &mut t,
                        &format!("  wall, {} at once", s.concurrency),
                        &o.wall.summary(),
                        &r.wall.summary(),
                    );
                }
            }
        }
        if let Some(f) = &self.floors {
            let _ = writeln!(t);
            let _ = writeln!(t, "Floors and parts (ms)");
            let _ = writeln!(t, "{:<34} {:>4} {:>9} {:>9}", "", "n", "p50", "p99");
            for (name, s) in [
                ("exec /bin/true like a plugin", &f.exec_true),
                ("`ip link del` attached veth", &f.veth_del_ip),
                ("veth RTM_DELLINK in-process", &f.veth_del_netlink),
            ] {
                let m = s.summary();
                let _ = writeln!(
                    t,
                    "{:<34} {:>4} {:>9} {:>9}",
                    name,
                    m.n,
                    num(m.p50),
                    num(m.p99)
                );
            }
            row(
                &mut t,
                "bridge VERSION (process start)",
                &f.version.ours.summary(),
                &f.version.reference.summary(),
            );
            row(
                &mut t,
                "host-local ADD alone",
                &f.ipam_add.ours.summary(),
                &f.ipam_add.reference.summary(),
            );
            row(
                &mut t,
                "host-local DEL alone",
                &f.ipam_del.ours.summary(),
                &f.ipam_del.reference.summary(),
            );
        }
        if self.scenarios.iter().any(|s| s.concurrency == 1) || self.floors.is_some() {
            let _ = writeln!(t);
            let _ = writeln!(
                t,
                "Peak RSS, KiB (ru_maxrss of the plugin and the children it waited for; p50)"
            );
            let _ = writeln!(t, "{:<34} {:>9} {:>9} {:>6}", "", "ours", "ref", "×");
        }
        for s in self.scenarios.iter().filter(|s| s.concurrency == 1) {
            for p in s.kind.plugins() {
                if let (Some(a), Some(b)) = (s.ours.add.rss.get(p), s.reference.add.rss.get(p)) {
                    rss_row(&mut t, &format!("{} ADD: {p}", s.kind.id()), a, b);
                }
            }
        }
        if let Some(f) = &self.floors {
            rss_row(
                &mut t,
                "host-local ADD alone",
                &f.ipam_rss.ours,
                &f.ipam_rss.reference,
            );
            rss_row(
                &mut t,
                "bridge VERSION",
                &f.version_rss.ours,
                &f.version_rss.reference,
            );
            let m = f.exec_true_rss.summary();
            let _ = writeln!(t, "{:<34} {:>9.0}", "/bin/true", m.p50);
        }
        if let Some(e) = &self.etcd {
            let _ = writeln!(t);
            etcd_ipam::table(e, &mut t, num);
        }
        if let Some(o) = &self.overlay {
            let _ = writeln!(t);
            crate::overlay::table(o, &mut t, num);
        }
        let _ = writeln!(t);
        let _ = writeln!(t, "Binary sizes, bytes");
        let _ = writeln!(
            t,
            "{:<12} {:>10} {:>15} {:>10}",
            "", "ours", "ours stripped", "ref"
        );
        for s in &self.sizes {
            let f = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                t,
                "{:<12} {:>10} {:>15} {:>10}",
                s.name,
                f(s.ours),
                f(s.ours_stripped),
                f(s.reference)
            );
        }
        let _ = writeln!(t);
        let _ = writeln!(t, "Targets");
        for target in self.targets() {
            let shown = |v: f64| {
                if target.at_least && target.limit >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            };
            let (v, verdict) = match (target.value, target.met()) {
                (Some(v), Some(true)) => (shown(v), "met"),
                (Some(v), _) => (shown(v), "MISSED"),
                (None, _) => ("-".into(), "not measured"),
            };
            let op = if target.at_least { "≥" } else { "≤" };
            let _ = writeln!(
                t,
                "  {:<6} {:>5} {op} {:<4} {}",
                verdict, v, target.limit, target.what
            );
        }
        for (what, why) in NOT_MEASURED {
            let _ = writeln!(t, "  not measured: {what}: {why}");
        }
        for (what, why) in &self.skipped {
            let _ = writeln!(t, "  not measured: {what}: {why}");
        }
        t
    }
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn row(t: &mut String, name: &str, o: &Summary, r: &Summary) {
    let ra = |a: f64, b: f64| ratio(a, b).map(|x| format!("{x:.2}")).unwrap_or("-".into());
    let _ = writeln!(
        t,
        "{:<34} {:>4} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6}",
        name,
        o.n,
        num(o.p50),
        num(o.p99),
        num(r.p50),
        num(r.p99),
        ra(o.p50, r.p50),
        ra(o.p99, r.p99)
    );
}

fn rss_row(t: &mut String, name: &str, o: &Samples, r: &Samples) {
    let (a, b) = (o.summary().p50, r.summary().p50);
    let x = ratio(a, b).map(|x| format!("{x:.2}")).unwrap_or("-".into());
    let _ = writeln!(t, "{:<34} {:>9.0} {:>9.0} {:>6}", name, a, b, x);
}
