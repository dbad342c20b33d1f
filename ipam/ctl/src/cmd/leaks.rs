//! `ipamctl leaks`: a node's handles whose container is gone; listed (dry
//! run) or released.

use admin_cli::Table;
use cni::Error;
use etcd_ipam::admin::{self, Alive};
use etcd_ipam::keys::Keys;
use etcd_ipam::model::HandleRecord;
use etcd_ipam::plan::Entry;
use serde_json::{json, Value};

use super::handles::{addresses, cells};
use super::Report;
use crate::alive;
use crate::cli::{AliveSource, LeaksArgs};
use crate::connect::Target;

/// What became of one leaked handle.
enum Fate {
    /// Dry run: left as it is.
    Listed,
    Released,
    /// Released meanwhile by someone else (its container's DEL).
    Gone,
    Failed(Error),
}

impl Fate {
    fn word(&self) -> &'static str {
        match self {
            Fate::Listed => "leaked",
            Fate::Released => "released",
            Fate::Gone => "gone",
            Fate::Failed(_) => "failed",
        }
    }

    fn text(&self) -> String {
        match self {
            Fate::Failed(e) => format!("failed: {}", e.msg),
            other => other.word().to_string(),
        }
    }
}

fn read_alive(source: &AliveSource, network: &str) -> Result<Alive, Error> {
    match (&source.containers, &source.cache_dir) {
        (Some(list), _) => alive::from_container_list(list),
        (None, Some(dir)) => alive::from_cache_dir(dir, network),
        // clap requires exactly one of them.
        (None, None) => Err(Error::invalid_config(
            "leaks needs --containers or --cache-dir",
        )),
    }
}

fn leak_json(h: &HandleRecord, fate: &Fate) -> Value {
    let mut v = json!({
        "containerID": h.container_id,
        "ifname": h.ifname,
        "addresses": addresses(h),
        "status": fate.word(),
    });
    if let Fate::Failed(e) = fate {
        v["error"] = json!(e.msg);
    }
    v
}

fn summary(args: &LeaksArgs, fates: &[Fate]) -> String {
    let what = format!(
        "{} leaked handle(s) of node {} in network {}",
        fates.len(),
        args.node,
        args.network
    );
    if !args.release {
        return format!("{what}; dry run: nothing released (--release releases them)\n");
    }
    let released = fates
        .iter()
        .filter(|f| matches!(f, Fate::Released | Fate::Gone))
        .count();
    format!("{what}; released {released}\n")
}

fn report(args: &LeaksArgs, leaked: &[&Entry<HandleRecord>], fates: Vec<Fate>) -> Report {
    let mut table = Table::new(&["NODE", "CONTAINER", "IFNAME", "ADDRESSES", "STATUS"]);
    for (h, fate) in leaked.iter().zip(&fates) {
        table.row([cells(&h.value), vec![fate.text()]].concat());
    }
    let json = json!({
        "network": args.network,
        "node": args.node,
        "dryRun": !args.release,
        "leaks": leaked.iter().zip(&fates).map(|(h, f)| leak_json(&h.value, f)).collect::<Vec<_>>(),
    });
    let failed = fates
        .iter()
        .filter(|f| matches!(f, Fate::Failed(_)))
        .count();
    let text = format!("{}\n{}", table.render(), summary(args, &fates));
    let mut r = Report::new(text, json);
    if failed > 0 {
        r.failure = Some(Error::plugin(format!(
            "{failed} of {} leaked handle(s) could not be released",
            fates.len()
        )));
    }
    r
}

pub async fn run(target: &Target, args: &LeaksArgs) -> Result<Report, Error> {
    let alive = read_alive(&args.alive, args.network.as_str())?;
    let mut etcd = target.connect().await?;
    let keys = Keys::new(&target.cfg.prefix, args.network.as_str());
    let handles = admin::read_node_handles(&mut etcd, &keys, &args.node).await?;
    let leaked = admin::leaks(&handles, &alive);
    let fates = if args.release {
        admin::release_handles(&mut etcd, &keys, &leaked)
            .await
            .into_iter()
            .map(|outcome| match outcome {
                Ok(true) => Fate::Released,
                Ok(false) => Fate::Gone,
                Err(e) => Fate::Failed(e),
            })
            .collect()
    } else {
        leaked.iter().map(|_| Fate::Listed).collect()
    };
    Ok(report(args, &leaked, fates))
}
