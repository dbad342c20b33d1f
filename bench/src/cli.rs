//! Command line, defaults, sanity checks of the plugin directories, clean-up
//! of namespaces a killed earlier run left, and the run's metadata.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::chain::Dirs;

/// Sequential iterations (and, divided by the concurrency, concurrent rounds)
/// of a full run: enough samples for a p99 and well under 5 minutes here.
pub const DEFAULT_ITERATIONS: usize = 200;
/// `--quick`: a smoke run (< 60 s).
pub const QUICK_ITERATIONS: usize = 10;

pub const USAGE: &str = "\
usage: cni-bench [options]

Runs our CNI plugins (a release build) and the reference Go plugins side by
side, alternating run by run, inside throwaway network namespaces, and prints
p50 / p99 latencies, ratios, floors, peak RSS and binary sizes.

Build first:  tools/build-release.sh   (static release build, linked to target/release-static)
Then (root):  target/release-static/cni-bench --plot bench/results/latest.svg --save bench/results/latest.json

options:
  --iterations N     sequential ADD+DEL runs per side and scenario (default 200;
                     concurrent scenarios run ceil(N / K) rounds of K containers,
                     the floors N iterations)
  --quick            smoke run: 10 iterations, one round per concurrent scenario
  --rounds N         rounds of each concurrent scenario (overrides the above)
  --concurrency L    comma list of containers at once (default 1,10,50; 1 = sequential)
  --only L           comma list of scenario ids or prefixes to run, e.g.
                     bridge/seq,masq-portmap,floors,etcd-ipam (default: all;
                     etcd-ipam/seq, /x10, /x50: etcd-ipam against a real etcd
                     of 1 and of 3 members on 127.0.0.1, beside host-local and
                     the floor of one etcd transaction; needs `etcd` on PATH;
                     overlay: overlayd at 10/20/50 nodes and iperf3 across the
                     overlay against a hand-built VXLAN; needs etcd, iperf3)
  --format F         table (default) or json, on stdout
  --plot FILE.svg    also write an SVG plot
  --save FILE.json   also write the JSON report
  --ours DIR         our plugin binaries (default: the release dir this binary is in)
  --reference DIR    the reference plugins (default /usr/lib/cni)
  --silent           no progress lines on stderr
  -h, --help         this text
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub iterations: usize,
    pub floor_iterations: usize,
    pub rounds: Option<usize>,
    pub concurrency: Vec<usize>,
    pub quick: bool,
    pub only: Option<Vec<String>>,
    pub format: Format,
    pub plot: Option<PathBuf>,
    pub save: Option<PathBuf>,
    pub ours: PathBuf,
    pub reference: PathBuf,
    pub silent: bool,
    pub argv: Vec<String>,
}

impl Options {
    /// Whether scenario / group `id` ("bridge/seq", "floors") is to be run.
    pub fn selected(&self, id: &str) -> bool {
        match &self.only {
            None => true,
            Some(list) => list.iter().any(|e| {
                id == e || id.starts_with(&format!("{e}/")) || e.starts_with(&format!("{id}/"))
            }),
        }
    }
}

pub enum Parsed {
    Run(Box<Options>),
    Help,
}

/// `target/release` of the target dir this binary was built into.
fn default_ours() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    match dir.parent() {
        Some(target) => target.join("release"),
        None => PathBuf::from("target/release"),
    }
}

fn number(flag: &str, v: Option<String>) -> Result<usize, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag}: expected a positive integer, got {v:?}")),
    }
}

pub fn parse(args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let argv: Vec<String> = args.collect();
    let mut it = argv.clone().into_iter();
    let mut iterations = None;
    let mut rounds = None;
    let mut concurrency = vec![1, 10, 50];
    let mut quick = false;
    let mut only = None;
    let mut format = Format::Table;
    let mut plot = None;
    let mut save = None;
    let mut ours = None;
    let mut reference = PathBuf::from("/usr/lib/cni");
    let mut silent = false;
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next());
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--iterations" | "-n" => iterations = Some(number(&flag, value())?),
            "--rounds" => rounds = Some(number(&flag, value())?),
            "--quick" => quick = true,
            "--silent" => silent = true,
            "--concurrency" => {
                let v = value().ok_or("--concurrency needs a value")?;
                concurrency = v
                    .split(',')
                    .map(|s| number("--concurrency", Some(s.trim().to_string())))
                    .collect::<Result<_, _>>()?;
                concurrency.sort_unstable();
                concurrency.dedup();
            }
            "--only" => {
                let v = value().ok_or("--only needs a value")?;
                only = Some(
                    v.split(',')
                        .map(|s| s.trim().trim_end_matches('/').to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
            "--format" => {
                format = match value().as_deref() {
                    Some("table") => Format::Table,
                    Some("json") => Format::Json,
                    other => return Err(format!("--format: table or json, got {other:?}")),
                }
            }
            "--plot" => plot = Some(PathBuf::from(value().ok_or("--plot needs a file")?)),
            "--save" => save = Some(PathBuf::from(value().ok_or("--save needs a file")?)),
            "--ours" => ours = Some(PathBuf::from(value().ok_or("--ours needs a directory")?)),
            "--reference" => {
                reference = PathBuf::from(value().ok_or("--reference needs a directory")?)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let iterations = iterations.unwrap_or(if quick {
        QUICK_ITERATIONS
    } else {
        DEFAULT_ITERATIONS
    });
    if quick && rounds.is_none() {
        rounds = Some(1);
    }
    Ok(Parsed::Run(Box::new(Options {
        iterations,
        floor_iterations: iterations,
        rounds,
        concurrency,
        quick,
        only,
        format,
        plot,
        save,
        ours: ours.unwrap_or_else(default_ours),
        reference,
        silent,
        argv,
    })))
}

const NEEDED: [&str; 3] = ["bridge", "host-local", "portmap"];

/// Both directories hold the plugins; ours is a release build and not older
/// than the sources (a warning only: the numbers would be of other code).
pub fn check_dirs(dirs: &Dirs, opts: &Options) -> Result<(), String> {
    for (what, dir) in [("ours", &dirs.ours), ("reference", &dirs.reference)] {
        for p in NEEDED {
            if !dir.join(p).is_file() {
                let hint = if what == "ours" {
                    "build them first: cargo build --release --workspace --bins"
                } else {
                    "install the Debian package containernetworking-plugins"
                };
                return Err(format!(
                    "{what}: {} is missing ({hint})",
                    dir.join(p).display()
                ));
            }
        }
    }
    let warn = |m: String| {
        if !opts.silent {
            eprintln!("cni-bench: WARNING: {m}");
        }
    };
    if !dirs.ours.ends_with("release") {
        warn(format!(
            "{} is not a release build directory: benchmark numbers are only meaningful for `cargo build --release`",
            dirs.ours.display()
        ));
    }
    let built = std::fs::metadata(dirs.ours.join("bridge")).and_then(|m| m.modified());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let (Ok(built), Some(newest)) = (built, newest_source(&workspace)) {
        if newest.0 > built {
            warn(format!(
                "{} is newer than {}: rebuild with cargo build --release --workspace --bins",
                newest.1.display(),
                dirs.ours.join("bridge").display()
            ));
        }
    }
    Ok(())
}

fn newest_source(workspace: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = ["crates", "plugins", "ipam"]
        .iter()
        .map(|d| workspace.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !p.ends_with("tests") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                || p.file_name().is_some_and(|n| n == "Cargo.toml")
            {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    if best.as_ref().is_none_or(|b| t > b.0) {
                        best = Some((t, p));
                    }
                }
            }
        }
    }
    best
}

/// The pid in a harness name `cnit-<tag>-<pid>-<n>...`.
fn owner_pid(name: &str) -> Option<u32> {
    name.split('-').nth(2)?.parse().ok()
}

/// Whether `pid` is a live (not zombie) cni-bench or test process; a pid reused
/// by another program counts as gone.
fn bench_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "<pid> (<comm>) <state> ...": comm may hold spaces and parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].trim_start().chars().next();
    state != Some('Z') && (comm.starts_with("cni-bench") || comm.starts_with("quick"))
}

/// Removes namespaces and lease directories of earlier bench runs whose
/// process is gone (killed with SIGKILL, say). Only names the bench makes
/// (`cnit-bench...`) are touched.
pub fn cleanup_stale(report: impl Fn(&str)) {
    let dead = |name: &str| {
        name.starts_with("cnit-bench") && owner_pid(name).is_some_and(|pid| !bench_alive(pid))
    };
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name) {
                report(&format!("removing stale namespace {name}"));
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name) {
                report(&format!("removing stale {}", e.path().display()));
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn command_out(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `YYYY-MM-DD HH:MM UTC` without a date crate.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    utc_date(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
fn utc_date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

pub fn meta(opts: &Options, seconds: f64) -> Value {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ws = workspace.to_string_lossy().into_owned();
    let commit = command_out("git", &["-C", &ws, "rev-parse", "--short", "HEAD"]);
    let dirty = command_out(
        "git",
        &["-C", &ws, "status", "--porcelain", "--untracked-files=no"],
    )
    .map(|s| !s.is_empty());
    json!({
        "date": utc_now(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).ok(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "command": format!("cni-bench {}", opts.argv.join(" ")).trim().to_string(),
        "iterations": opts.iterations,
        "floor_iterations": opts.floor_iterations,
        "rounds": opts.rounds,
        "concurrency": opts.concurrency,
        "quick": opts.quick,
        "ours_dir": opts.ours.display().to_string(),
        "ours_release_build": opts.ours.ends_with("release"),
        "reference_dir": opts.reference.display().to_string(),
        "reference_version": command_out("dpkg-query", &["-W", "-f=${Version}", "containernetworking-plugins"]),
        "git_commit": commit,
        "git_dirty": dirty,
        "seconds": (seconds * 10.0).round() / 10.0,
        "cni_version": "1.0.0",
        "notes": [
            "latency: spawn (posix_spawn from a thread inside the sandbox's host netns) to reap of each plugin process; chain = the whole list as libcni runs it",
            "rss_kb: ru_maxrss from wait4() through a small launcher (cni-bench __spawn), the largest of the plugin and the children it waited for",
            "veth_del_ip: `ip link del <host end>` exec'd in the host netns like a plugin; veth_del_netlink: RTM_DELLINK on an open socket (netlink crate)"
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        match parse(args.iter().map(|s| s.to_string())).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults_quick_and_only() {
        let o = opts(&[]);
        assert_eq!(o.iterations, DEFAULT_ITERATIONS);
        assert_eq!(o.concurrency, vec![1, 10, 50]);
        let o = opts(&["--quick", "--iterations", "3", "--format=json"]);
        assert_eq!(
            (o.iterations, o.rounds, o.format),
            (3, Some(1), Format::Json)
        );
        let o = opts(&["--only", "bridge,floors"]);
        assert!(o.selected("bridge/seq") && o.selected("bridge/x10") && o.selected("floors"));
        assert!(!o.selected("masq-portmap/seq"));
        assert!(!o.selected("etcd-ipam/seq"));
        let o = opts(&["--only", "etcd-ipam"]);
        assert!(o.selected("etcd-ipam/seq") && o.selected("etcd-ipam/x50"));
        assert!(!o.selected("bridge/seq") && !o.selected("floors"));
        assert!(!o.selected("overlay"));
        let o = opts(&["--only", "overlay"]);
        assert!(o.selected("overlay") && !o.selected("etcd-ipam/seq"));
        assert!(parse(["--iterations", "0"].iter().map(|s| s.to_string())).is_err());
        assert!(parse(["--bogus"].iter().map(|s| s.to_string())).is_err());
    }

    #[test]
    fn stale_names() {
        assert_eq!(owner_pid("cnit-benchb1o-1234-0-host"), Some(1234));
        assert_eq!(owner_pid("cnit-benchfloor-77-3-c5"), Some(77));
        assert_eq!(owner_pid("weird"), None);
    }

    #[test]
    fn date_format() {
        let d = utc_now();
        assert_eq!(d.len(), "2024-01-01 00:00 UTC".len(), "{d}");
        // Known instants (checked with `date -u -d @SECS`): the epoch, leap
        // days of a century leap year and of an ordinary one, the day after
        // a non-leap February, the last minute of a year, before the epoch.
        for (secs, want) in [
            (0, "1970-01-01 00:00 UTC"),
            (951_782_400, "2000-02-29 00:00 UTC"),
            (1_709_251_199, "2024-02-29 23:59 UTC"),
            (1_677_628_800, "2023-03-01 00:00 UTC"),
            (1_735_689_599, "2024-12-31 23:59 UTC"),
            (1_700_000_000, "2023-11-14 22:13 UTC"),
            (-1, "1969-12-31 23:59 UTC"),
        ] {
            assert_eq!(utc_date(secs), want, "{secs}");
        }
    }
}
