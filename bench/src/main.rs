//! `cni-bench`: our plugins against the reference Go plugins, side by side.
//!
//! Build first, in release mode (the bench runs ours from the release dir it
//! was built into):
//!
//! ```sh
//! tools/build-release.sh
//! target/release-static/cni-bench --plot bench/results/latest.svg --save bench/results/latest.json
//! ```
//!
//! Every scenario runs in throwaway namespaces: one sandbox per scenario and
//! implementation (a "host" netns in which the plugins run, container netns
//! inside), deleted on exit, on panic and on Ctrl-C.

mod chain;
mod cli;
mod etcd_ipam;
mod exec;
mod floors;
mod overlay;
mod plot;
mod report;
mod scenario;
mod shim;
mod signals;
mod sizes;
mod stats;

use std::process::ExitCode;
use std::time::Instant;

use chain::{ChainKind, Dirs};
use cli::{Format, Options};
use report::Report;

fn main() -> ExitCode {
    // The RSS launcher first, before anything grows this process.
    let mut raw = std::env::args_os().skip(1);
    if raw.next().is_some_and(|a| a == "__spawn") {
        let code = shim::main(raw.collect());
        return ExitCode::from(u8::try_from(code).unwrap_or(127));
    }
    let opts = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Parsed::Run(o)) => o,
        Ok(cli::Parsed::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cni-bench: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    signals::install();
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cni-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(opts: &Options, msg: &str) {
    if !opts.silent {
        eprintln!("cni-bench: {msg}");
    }
}

fn run(opts: &Options) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root: every scenario creates network namespaces".into());
    }
    let dirs = Dirs {
        ours: opts.ours.clone(),
        reference: opts.reference.clone(),
        launcher: std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?,
    };
    cli::check_dirs(&dirs, opts)?;
    cli::cleanup_stale(|m| progress(opts, m));
    let started = Instant::now();
    let mut scenarios = Vec::new();
    for kind in [ChainKind::Bridge, ChainKind::Full] {
        for &k in &opts.concurrency {
            let id = scenario::scenario_id(kind, k);
            if !opts.selected(&id) {
                continue;
            }
            let rounds = if k == 1 {
                opts.iterations
            } else {
                opts.rounds
                    .unwrap_or_else(|| opts.iterations.div_ceil(k))
                    .max(1)
            };
            progress(
                opts,
                &format!("{id}: {rounds} rounds of {k} container(s) per side"),
            );
            let data = scenario::run(kind, k, rounds, &dirs)?;
            progress(opts, &format!("{id}: done in {:.1} s", data.seconds));
            scenarios.push(data);
        }
    }
    let floors = if opts.selected("floors") {
        progress(
            opts,
            &format!("floors: {} iterations", opts.floor_iterations),
        );
        let f = floors::run(opts.floor_iterations, &dirs)?;
        progress(opts, &format!("floors: done in {:.1} s", f.seconds));
        Some(f)
    } else {
        None
    };
    let mut skipped = Vec::new();
    let etcd_levels: Vec<usize> = opts
        .concurrency
        .iter()
        .copied()
        .filter(|&k| opts.selected(&etcd_ipam::level_id(k)))
        .collect();
    let etcd = match (etcd_levels.is_empty(), etcd_ipam::missing(&dirs)) {
        (true, _) => None,
        // Asked for by name: an error. Part of a full run: skipped, reported.
        (false, Some(why)) if opts.only.is_some() => return Err(format!("etcd-ipam: {why}")),
        (false, Some(why)) => {
            progress(opts, &format!("WARNING: etcd-ipam skipped: {why}"));
            skipped.push(("etcd-ipam allocations per second".to_string(), why));
            None
        }
        (false, None) => {
            let d = etcd_ipam::run(
                &etcd_levels,
                opts.iterations,
                opts.rounds,
                opts.quick,
                &dirs,
                &|m| progress(opts, m),
            )?;
            progress(opts, &format!("etcd-ipam: done in {:.1} s", d.seconds));
            Some(d)
        }
    };
    let overlay = match (opts.selected("overlay"), overlay::missing(&dirs)) {
        (false, _) => None,
        (true, Some(why)) if opts.only.is_some() => return Err(format!("overlay: {why}")),
        (true, Some(why)) => {
            progress(opts, &format!("WARNING: overlay skipped: {why}"));
            skipped.push(("overlay convergence and throughput".to_string(), why));
            None
        }
        (true, None) => {
            let d = overlay::run(opts.quick, &dirs, &|m| progress(opts, m))?;
            progress(opts, &format!("overlay: done in {:.1} s", d.seconds));
            Some(d)
        }
    };
    let sizes = sizes::measure(&dirs);
    let meta = cli::meta(opts, started.elapsed().as_secs_f64());
    let report = Report {
        meta,
        scenarios,
        floors,
        sizes,
        etcd,
        overlay,
        skipped,
    };
    let json = report.json();
    if let Some(path) = &opts.save {
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))?;
        progress(opts, &format!("wrote {}", path.display()));
    }
    if let Some(path) = &opts.plot {
        std::fs::write(path, plot::svg(&report))
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        progress(opts, &format!("wrote {}", path.display()));
    }
    match opts.format {
        Format::Table => print!("{}", report.table()),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?
        ),
    }
    Ok(())
}
