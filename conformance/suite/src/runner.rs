//! Probing the plugin directory, deciding which checks apply, running them a
//! few at a time with panics caught, and collecting the outcomes.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use cni_harness::Sandbox;
use serde_json::Value;

use crate::check::{Check, Outcome, Plugin, Problem, Status, VersionReq};
use crate::ctx::{Ctx, Env, Probe};
use crate::exec::Call;
use crate::version;

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct Options {
    pub plugin_dir: PathBuf,
    /// Check IDs or group prefixes (`DEL`, `DEL-`); empty runs everything.
    pub only: Vec<String>,
    /// Checks run at once (each in its own namespaces).
    pub threads: usize,
    /// Our cnitool binary; `None` looks next to this executable, then in PATH.
    pub cnitool: Option<PathBuf>,
    /// Time limit for one plugin run.
    pub timeout: Duration,
}

impl Options {
    pub fn new(plugin_dir: impl Into<PathBuf>) -> Options {
        Options {
            plugin_dir: plugin_dir.into(),
            only: Vec::new(),
            threads: 3,
            cnitool: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Every outcome, in the suite's order, plus what the probe found.
#[derive(Debug, Clone)]
pub struct Report {
    pub plugin_dir: PathBuf,
    pub probes: BTreeMap<Plugin, Probe>,
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
}

impl Report {
    pub fn count(&self, s: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == s).count()
    }

    /// IDs with this status.
    pub fn ids(&self, s: Status) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| o.status == s)
            .map(|o| o.id)
            .collect()
    }
}

/// The checks `only` selects (all when empty); unknown selectors are an error.
pub fn select(only: &[String]) -> Result<Vec<&'static Check>, String> {
    let all = crate::checks::all();
    if only.is_empty() {
        return Ok(all);
    }
    let mut picked = Vec::new();
    for sel in only {
        let s = sel.trim().to_ascii_uppercase();
        let prefix = s.trim_end_matches('-');
        let found: Vec<&'static Check> = all
            .iter()
            .copied()
            .filter(|c| c.id == s || c.id.split('-').next() == Some(prefix))
            .collect();
        if found.is_empty() {
            return Err(format!("no check or group {sel:?} (see --list)"));
        }
        for c in found {
            if !picked.iter().any(|p: &&Check| p.id == c.id) {
                picked.push(c);
            }
        }
    }
    picked.sort_by_key(|c| crate::checks::position(c.id));
    Ok(picked)
}

/// VERSION of one plugin, as libcni asks it (run inside `sandbox`'s host
/// namespace like everything else).
pub fn probe(sandbox: &Sandbox, dir: &Path, p: Plugin, timeout: Duration) -> Probe {
    let bin = dir.join(p.name());
    if !bin.is_file() {
        return Probe::Absent;
    }
    let out = Call::new(&bin, "VERSION", dir, timeout)
        .stdin(r#"{"cniVersion":"1.1.0"}"#)
        .run(sandbox.host());
    if out.code != Some(0) {
        return Probe::Broken(format!(
            "VERSION failed: exit {:?}: {}",
            out.code,
            crate::exec::excerpt(&format!("{} {}", out.stdout, out.stderr))
        ));
    }
    match serde_json::from_str::<Value>(&out.stdout) {
        Ok(v) => match v["supportedVersions"].as_array() {
            Some(list) => Probe::Versions(
                list.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
            ),
            None => Probe::Broken(format!(
                "VERSION reply has no supportedVersions list: {}",
                crate::exec::excerpt(&out.stdout)
            )),
        },
        Err(e) => Probe::Broken(format!(
            "VERSION reply is not JSON ({e}): {}",
            crate::exec::excerpt(&out.stdout)
        )),
    }
}

/// Our cnitool: explicit path, else next to this executable (the cargo
/// target dir for tests and for `target/debug/cni-conformance`), else PATH.
pub fn find_cnitool(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    let near = cni_harness::bins::target_dir().join("cnitool");
    if near.is_file() {
        return Some(near);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("cnitool"))
            .find(|p| p.is_file())
    })
}

/// The version a check runs at, or why it does not apply.
pub fn choose_version(check: &Check, env: &Env) -> Result<String, Problem> {
    let mut min: Option<&str> = None;
    for c in check.needs.commands {
        if min.is_none_or(|m| version::cmp(c.since(), m).is_gt()) {
            min = Some(c.since());
        }
    }
    let mut candidates: Vec<&str> = version::KNOWN.to_vec();
    if let Some(m) = min {
        candidates.retain(|v| version::at_least(v, m));
    }
    match check.needs.version {
        VersionReq::Newest => {}
        VersionReq::AtLeast(m) => candidates.retain(|v| version::at_least(v, m)),
        VersionReq::Exactly(x) => candidates.retain(|v| *v == x),
        VersionReq::Below(x) => candidates.retain(|v| version::cmp(v, x).is_lt()),
    }
    for p in check.needs.plugins {
        match env.probes.get(p) {
            None | Some(Probe::Absent) => {
                return Err(Problem::NotApplicable(format!(
                    "no {} plugin in {}",
                    p.name(),
                    env.plugin_dir.display()
                )))
            }
            Some(Probe::Broken(why)) => return Err(Problem::Fail(format!("{}: {why}", p.name()))),
            Some(Probe::Versions(vs)) => candidates.retain(|v| vs.iter().any(|x| x == v)),
        }
    }
    if check.needs.cnitool && env.cnitool.is_none() {
        return Err(Problem::Fail(
            "cnitool not found: build it (cargo build -p cnitool) or pass --cnitool PATH".into(),
        ));
    }
    match candidates.last() {
        Some(v) => Ok(v.to_string()),
        None => {
            let mut want = Vec::new();
            if let Some(m) = min {
                let cmds: Vec<&str> = check.needs.commands.iter().map(|c| c.name()).collect();
                want.push(format!("{} needs spec >= {m}", cmds.join("/")));
            }
            match check.needs.version {
                VersionReq::Newest => {}
                VersionReq::AtLeast(m) => want.push(format!("needs spec >= {m}")),
                VersionReq::Exactly(x) => want.push(format!("needs spec {x}")),
                VersionReq::Below(x) => want.push(format!("needs a spec version below {x}")),
            }
            let have: Vec<String> = check
                .needs
                .plugins
                .iter()
                .map(|p| match env.probes.get(p) {
                    Some(Probe::Versions(vs)) => format!("{} supports {}", p.name(), vs.join(", ")),
                    _ => p.name().to_string(),
                })
                .collect();
            Err(Problem::NotApplicable(format!(
                "{}; {}",
                want.join(", "),
                have.join("; ")
            )))
        }
    }
}

const WORKER: &str = "cnc-worker";

/// Panics inside checks become failures with the message; the default hook
/// would also print them, so it is silenced for our worker threads only.
fn quiet_panics_in_workers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(WORKER));
            if !ours {
                previous(info);
            }
        }));
    });
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Spawns a thread whose panics are reported by its joiner, not printed.
pub fn spawn_quiet<'s, 'e, T: Send + 's>(
    scope: &'s std::thread::Scope<'s, 'e>,
    f: impl FnOnce() -> T + Send + 's,
) -> std::thread::ScopedJoinHandle<'s, T> {
    std::thread::Builder::new()
        .name(format!("{WORKER}-sub"))
        .spawn_scoped(scope, f)
        .expect("spawn a thread")
}

fn run_one(check: &'static Check, env: &Env) -> Outcome {
    let start = Instant::now();
    let (status, detail) = match choose_version(check, env) {
        Err(Problem::NotApplicable(why)) => (Status::NotApplicable, why),
        Err(Problem::Fail(why)) => (Status::Fail, why),
        Ok(v) => {
            let ctx = Ctx {
                env,
                id: check.id,
                version: v,
            };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (check.run)(&ctx))) {
                Ok(Ok(())) => (Status::Pass, String::new()),
                Ok(Err(Problem::Fail(why))) => (Status::Fail, why),
                Ok(Err(Problem::NotApplicable(why))) => (Status::NotApplicable, why),
                Err(p) => (
                    Status::Fail,
                    format!("the check panicked: {}", panic_message(&*p)),
                ),
            }
        }
    };
    Outcome {
        id: check.id,
        group: check.group,
        rule: check.rule,
        status,
        detail,
        duration: start.elapsed(),
    }
}

/// Runs the selected checks against `opts.plugin_dir`.
pub fn run(opts: &Options) -> Result<Report, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("cni-conformance needs root: every check creates network namespaces".into());
    }
    if !opts.plugin_dir.is_dir() {
        return Err(format!("{} is not a directory", opts.plugin_dir.display()));
    }
    let checks = select(&opts.only)?;
    let start = Instant::now();
    let probes: BTreeMap<Plugin, Probe> = {
        let sandbox = Sandbox::new("probe");
        Plugin::ALL
            .into_iter()
            .map(|p| (p, probe(&sandbox, &opts.plugin_dir, p, opts.timeout)))
            .collect()
    };
    let env = Env {
        plugin_dir: opts.plugin_dir.clone(),
        probes: probes.clone(),
        cnitool: find_cnitool(opts.cnitool.as_deref()),
        timeout: opts.timeout,
    };
    quiet_panics_in_workers();
    let queue: Arc<Mutex<VecDeque<(usize, &'static Check)>>> =
        Arc::new(Mutex::new(checks.iter().copied().enumerate().collect()));
    let results: Arc<Mutex<Vec<(usize, Outcome)>>> = Arc::new(Mutex::new(Vec::new()));
    let threads = opts.threads.max(1);
    std::thread::scope(|s| {
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let results = Arc::clone(&results);
            let env = &env;
            std::thread::Builder::new()
                .name(format!("{WORKER}-{n}"))
                .spawn_scoped(s, move || loop {
                    let next = queue.lock().map(|mut q| q.pop_front()).ok().flatten();
                    let Some((i, check)) = next else { break };
                    let outcome = run_one(check, env);
                    if let Ok(mut r) = results.lock() {
                        r.push((i, outcome));
                    }
                })
                .expect("spawn a worker thread");
        }
    });
    let mut outcomes = match Arc::try_unwrap(results) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(arc) => arc.lock().map(|r| r.clone()).unwrap_or_default(),
    };
    outcomes.sort_by_key(|(i, _)| *i);
    Ok(Report {
        plugin_dir: opts.plugin_dir.clone(),
        probes,
        outcomes: outcomes.into_iter().map(|(_, o)| o).collect(),
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Cmd, Group, Needs};

    fn env(versions: &[&str]) -> Env {
        let v: Vec<String> = versions.iter().map(|s| s.to_string()).collect();
        Env {
            plugin_dir: PathBuf::from("/nonexistent"),
            probes: Plugin::ALL
                .into_iter()
                .map(|p| match p {
                    Plugin::Portmap => (p, Probe::Absent),
                    _ => (p, Probe::Versions(v.clone())),
                })
                .collect(),
            cnitool: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn check(needs: Needs, run: fn(&Ctx) -> crate::Res) -> Check {
        Check {
            id: "ENV-999",
            group: Group::Env,
            rule: "test",
            needs,
            run,
        }
    }

    #[test]
    fn versions_are_chosen_from_what_every_plugin_supports() {
        let reference = env(&["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]);
        let ours = env(&crate::version::KNOWN);
        let br = Needs::on(&[Plugin::Bridge, Plugin::HostLocal]);
        let c = check(br, |_| Ok(()));
        assert_eq!(choose_version(&c, &reference).unwrap(), "1.0.0");
        assert_eq!(choose_version(&c, &ours).unwrap(), "1.1.0");
        let c = check(br.cmds(&[Cmd::Gc]), |_| Ok(()));
        assert!(matches!(
            choose_version(&c, &reference),
            Err(Problem::NotApplicable(_))
        ));
        let c = check(br.at(VersionReq::Below("0.4.0")), |_| Ok(()));
        assert_eq!(choose_version(&c, &ours).unwrap(), "0.3.1");
        let c = check(br.at(VersionReq::Exactly("0.3.0")), |_| Ok(()));
        assert_eq!(choose_version(&c, &reference).unwrap(), "0.3.0");
        let c = check(Needs::on(&[Plugin::Portmap]), |_| Ok(()));
        assert!(matches!(
            choose_version(&c, &ours),
            Err(Problem::NotApplicable(_))
        ));
        let c = check(Needs::on(&[]).cnitool(), |_| Ok(()));
        assert!(matches!(choose_version(&c, &ours), Err(Problem::Fail(_))));
    }

    #[test]
    fn a_panicking_check_fails_with_its_message() {
        static PANICS: std::sync::OnceLock<Check> = std::sync::OnceLock::new();
        let c = PANICS.get_or_init(|| check(Needs::on(&[]), |_| panic!("boom {}", 42)));
        quiet_panics_in_workers();
        let e = env(&crate::version::KNOWN);
        let outcome = std::thread::Builder::new()
            .name(format!("{WORKER}-test"))
            .spawn(move || run_one(c, &e))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(outcome.status, Status::Fail);
        assert!(outcome.detail.contains("boom 42"), "{}", outcome.detail);
    }

    #[test]
    fn only_selects_ids_and_groups() {
        let picked = select(&["del-003".into(), "CLASH".into()]).unwrap();
        assert!(picked.iter().any(|c| c.id == "DEL-003"));
        assert!(picked.iter().any(|c| c.id == "CLASH-001"));
        assert!(picked
            .iter()
            .all(|c| c.id == "DEL-003" || c.id.starts_with("CLASH-")));
        assert!(select(&["NOPE-001".into()]).is_err());
    }
}
