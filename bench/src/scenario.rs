//! The chain scenarios: `k` containers at once (k = 1 is sequential), ours
//! and the reference alternating run by run, each side in its own sandbox.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::Instant;

use crate::chain::{ms, ChainKind, ChainRun, Ctr, Dirs, Mode, Net, Side};
use crate::signals;
use crate::stats::Samples;

/// Everything measured for one command (ADD or DEL) of one side.
#[derive(Debug, Clone, Default)]
pub struct OpData {
    /// Latency of the whole chain invocation, ms.
    pub chain: Samples,
    /// Latency of each plugin's own process, ms.
    pub plugins: BTreeMap<&'static str, Samples>,
    /// `ru_maxrss` of each plugin's process tree, KiB (from the RSS passes).
    pub rss: BTreeMap<&'static str, Samples>,
    /// Wall time of each batch of `k` concurrent invocations, ms.
    pub wall: Samples,
}

impl OpData {
    fn record(&mut self, run: &ChainRun) {
        self.chain.push(run.total_ms);
        for p in &run.plugins {
            self.plugins.entry(p.plugin).or_default().push(p.ms);
        }
    }

    fn record_rss(&mut self, run: &ChainRun) {
        for p in &run.plugins {
            self.rss
                .entry(p.plugin)
                .or_default()
                .push(p.maxrss_kb as f64);
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SideData {
    pub add: OpData,
    pub del: OpData,
}

/// One scenario's results.
#[derive(Debug, Clone)]
pub struct ScenarioData {
    pub kind: ChainKind,
    /// Containers at once.
    pub concurrency: usize,
    pub rounds: usize,
    pub ours: SideData,
    pub reference: SideData,
    pub seconds: f64,
}

impl ScenarioData {
    pub fn id(&self) -> String {
        scenario_id(self.kind, self.concurrency)
    }

    pub fn side(&self, side: Side) -> &SideData {
        match side {
            Side::Ours => &self.ours,
            Side::Reference => &self.reference,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut SideData {
        match side {
            Side::Ours => &mut self.ours,
            Side::Reference => &mut self.reference,
        }
    }
}

pub fn scenario_id(kind: ChainKind, concurrency: usize) -> String {
    if concurrency == 1 {
        format!("{}/seq", kind.id())
    } else {
        format!("{}/x{concurrency}", kind.id())
    }
}

/// Untimed ADD+DEL runs that create the bridge, the firewall tables and warm
/// the page cache before anything is recorded.
const WARMUP: usize = 2;

/// ADD+DEL cycles per side run through the RSS launcher (sequential
/// scenarios only; at most the iteration count).
pub const RSS_PASSES: usize = 10;

/// Runs `k` containers at once for `rounds` rounds (`k` = 1: sequential,
/// `rounds` iterations). Each round: `k` namespaces made (untimed), `k` chain
/// ADDs started together, then `k` chain DELs together, then the namespaces
/// removed (untimed); ours and the reference take turns, the first of the
/// pair alternating from round to round.
pub fn run(kind: ChainKind, k: usize, rounds: usize, dirs: &Dirs) -> Result<ScenarioData, String> {
    let started = Instant::now();
    let tag = |s: Side| {
        format!(
            "bench{}{}{}",
            if kind == ChainKind::Bridge { "b" } else { "f" },
            k,
            if s == Side::Ours { "o" } else { "r" }
        )
    };
    let mut nets = [
        Net::new(Side::Ours, kind, dirs, &tag(Side::Ours))?,
        Net::new(Side::Reference, kind, dirs, &tag(Side::Reference))?,
    ];
    for net in nets.iter_mut() {
        for _ in 0..WARMUP {
            signals::check()?;
            let c = net.new_container();
            let (_, result) = net.add(&c, Mode::Timed)?;
            net.del(&c, &result, Mode::Timed)?;
            net.remove_container(&c);
        }
        net.flush();
    }
    let mut data = ScenarioData {
        kind,
        concurrency: k,
        rounds,
        ours: SideData::default(),
        reference: SideData::default(),
        seconds: 0.0,
    };
    for round in 0..rounds {
        for side in Side::order(round) {
            signals::check()?;
            let net = &mut nets[side as usize];
            let ctrs: Vec<Ctr> = (0..k).map(|_| net.new_container()).collect();
            let outcome = if k == 1 {
                one(net, &ctrs[0], data.side_mut(side))
            } else {
                batch(net, &ctrs, data.side_mut(side))
            };
            for c in &ctrs {
                net.remove_container(c);
            }
            outcome?;
        }
    }
    if k == 1 {
        for pass in 0..RSS_PASSES.min(rounds) {
            for side in Side::order(pass) {
                signals::check()?;
                let net = &mut nets[side as usize];
                let c = net.new_container();
                let outcome = (|| {
                    let (add, result) = net.add(&c, Mode::Rss)?;
                    let del = net.del(&c, &result, Mode::Rss)?;
                    Ok::<_, String>((add, del))
                })();
                net.remove_container(&c);
                let (add, del) = outcome?;
                let d = data.side_mut(side);
                d.add.record_rss(&add);
                d.del.record_rss(&del);
            }
        }
    }
    data.seconds = started.elapsed().as_secs_f64();
    Ok(data)
}

fn one(net: &Net, c: &Ctr, d: &mut SideData) -> Result<(), String> {
    let (add, result) = net.add(c, Mode::Timed)?;
    let del = net.del(c, &result, Mode::Timed)?;
    d.add.record(&add);
    d.add.wall.push(add.total_ms);
    d.del.record(&del);
    d.del.wall.push(del.total_ms);
    Ok(())
}

type Timed<T> = (Instant, Instant, Result<T, String>);

/// Runs `f` for every container on its own thread, all released together;
/// returns the per-container outcomes and the batch's wall time in ms.
fn together<T: Send>(
    ctrs: &[Ctr],
    f: impl Fn(usize, &Ctr) -> Result<T, String> + Sync,
) -> (Vec<Result<T, String>>, f64) {
    let barrier = Barrier::new(ctrs.len());
    let timed: Vec<Timed<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    let t0 = Instant::now();
                    let r = f(i, c);
                    (t0, Instant::now(), r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(t) => t,
                Err(_) => {
                    let now = Instant::now();
                    (now, now, Err("benchmark thread panicked".to_string()))
                }
            })
            .collect()
    });
    let first = timed.iter().map(|t| t.0).min();
    let last = timed.iter().map(|t| t.1).max();
    let wall = match (first, last) {
        (Some(a), Some(b)) => ms(b.duration_since(a)),
        _ => 0.0,
    };
    (timed.into_iter().map(|t| t.2).collect(), wall)
}

fn batch(net: &Net, ctrs: &[Ctr], d: &mut SideData) -> Result<(), String> {
    let (adds, wall) = together(ctrs, |_, c| net.add(c, Mode::Timed));
    let mut results = Vec::with_capacity(ctrs.len());
    let mut first_err = None;
    for r in adds {
        match r {
            Ok((run, result)) => {
                d.add.record(&run);
                results.push(Some(result));
            }
            Err(e) => {
                first_err.get_or_insert(e);
                results.push(None);
            }
        }
    }
    d.add.wall.push(wall);
    // DEL every container, also after a failed ADD (a runtime would).
    let null = serde_json::Value::Null;
    let (dels, wall) = together(ctrs, |i, c| {
        net.del(c, results[i].as_ref().unwrap_or(&null), Mode::Timed)
    });
    for r in dels {
        match r {
            Ok(run) => d.del.record(&run),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    d.del.wall.push(wall);
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
