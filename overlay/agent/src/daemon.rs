//! The daemon: start-up, then one loop over etcd events, reconcile ticks,
//! lease loss and signals.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use cni::Cidr;
use etcd_client::{Client, EventType, WatchOptions, WatchStream};
use netlink::format_mac;
use overlay_core::{subnet_id, vtep_address, Keys, NodeRecord, OverlayConfig, SubnetFile};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::cli::Args;
use crate::kernel::{self, Device, DeviceSpec, Underlay};
use crate::metrics::Metrics;
use crate::peers::{desired, Me};
use crate::store::{self, Registration};
use crate::worker::KernelWorker;

/// What the loop works with once started.
struct Node {
    args: Args,
    keys: Keys,
    cfg: OverlayConfig,
    client: Client,
    kernel: KernelWorker,
    metrics: Metrics,
    underlay: Underlay,
    spec: DeviceSpec,
    device: Device,
    reg: Registration,
    records: BTreeMap<Cidr, NodeRecord>,
}

async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let mut pause = Duration::from_millis(200);
    loop {
        match f().await {
            Ok(Some(v)) => return v,
            Ok(None) => tracing::info!("waiting for {what}"),
            Err(e) => tracing::warn!("{what}: {e}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

fn vtep_v4(subnet: &Cidr) -> Ipv4Addr {
    match vtep_address(subnet) {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

fn previous_subnet(args: &Args, cfg: &OverlayConfig) -> Option<Cidr> {
    SubnetFile::read(&args.subnet_file)
        .ok()
        .filter(|f| f.network == cfg.network)
        .map(|f| f.subnet)
}

fn subnet_file(node: &Node) -> SubnetFile {
    let gw = u32::from(vtep_v4(&node.reg.subnet)) + 1;
    SubnetFile {
        network: node.cfg.network,
        subnet: node.reg.subnet,
        gateway: IpAddr::V4(Ipv4Addr::from(gw)),
        mtu: node.spec.mtu,
        device: node.spec.name.clone(),
    }
}

impl Node {
    async fn start(args: Args, metrics: Metrics) -> Result<Node, String> {
        let keys = Keys::new(&args.prefix);
        let kernel = KernelWorker::start()?;
        let mut client = retry("etcd", || async { store::connect(&args).await.map(Some) }).await;
        let cfg = retry("the overlay config (overlayctl config set)", || {
            let mut c = client.clone();
            let k = keys.clone();
            async move { store::read_config(&mut c, &k).await }
        })
        .await;
        tracing::debug!(network = %cfg.network, vni = cfg.vni, "config read");
        let (public_ip, iface) = (args.public_ip, args.iface.clone());
        let underlay = kernel
            .run(move |nl| kernel::find_underlay(nl, public_ip, iface.as_deref()))
            .await?;
        let spec = DeviceSpec {
            name: format!("vxlan.{}", cfg.vni),
            vni: cfg.vni,
            port: cfg.port,
            local: underlay.addr.ip(),
            underlay: underlay.index,
            mtu: kernel::device_mtu(cfg.mtu, &underlay),
        };
        // The device first (its MAC goes into the record), its address once
        // the subnet is known.
        let s = spec.clone();
        let device = kernel
            .run(move |nl| kernel::ensure_device(nl, &s, None))
            .await?;
        tracing::debug!(device = spec.name, "device ready");
        let reg = store::register(
            &mut client,
            &keys,
            &cfg,
            &args.node_name,
            underlay.addr.ip(),
            &format_mac(&device.mac),
            args.lease_ttl,
            previous_subnet(&args, &cfg),
        )
        .await?;
        tracing::info!(subnet = %reg.subnet, device = %spec.name, mtu = spec.mtu, underlay = %underlay.name, "leased");
        let mut node = Node {
            args,
            keys,
            cfg,
            client,
            kernel,
            metrics,
            underlay,
            spec,
            device,
            reg,
            records: BTreeMap::new(),
        };
        node.ensure_device().await?;
        node.write_subnet_file()?;
        Ok(node)
    }

    fn write_subnet_file(&self) -> Result<(), String> {
        subnet_file(self)
            .write(&self.args.subnet_file)
            .map_err(|e| format!("cannot write {}: {e}", self.args.subnet_file.display()))
    }

    /// The device as configured, with its VTEP address; a new MAC (the device
    /// was recreated) is published.
    async fn ensure_device(&mut self) -> Result<(), String> {
        let (spec, addr) = (self.spec.clone(), vtep_v4(&self.reg.subnet));
        let device = self
            .kernel
            .run(move |nl| kernel::ensure_device(nl, &spec, Some(addr)))
            .await?;
        if device.mac != self.device.mac || format_mac(&device.mac) != self.reg.record.vtep_mac {
            tracing::info!(mac = %format_mac(&device.mac), "VTEP MAC changed: publishing it");
            self.reg.record.vtep_mac = format_mac(&device.mac);
            store::republish(&mut self.client, &self.reg).await?;
        }
        self.device = device;
        Ok(())
    }

    /// One programming pass towards the records known now.
    async fn program(&mut self, since: Instant) {
        let me = Me {
            node: self.args.node_name.clone(),
            underlay: self.underlay.addr,
            direct_routing: self.cfg.direct_routing,
        };
        let (peers, bad) = desired(&me, &self.records);
        for b in bad {
            tracing::warn!("not programming {b}");
        }
        self.metrics.nodes_known.set(peers.len() as i64);
        let (dev, underlay, cluster) = (self.device.index, self.underlay.index, self.cfg.network);
        match self
            .kernel
            .run(move |nl| kernel::program(nl, dev, underlay, &cluster, &peers))
            .await
        {
            Ok(ch) => {
                self.metrics
                    .event_to_programmed
                    .observe(since.elapsed().as_secs_f64());
                self.metrics
                    .kernel_changes
                    .inc_by((ch.added + ch.removed) as u64);
                self.metrics
                    .healthy
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if ch.added + ch.removed > 0 {
                    tracing::info!(
                        added = ch.added,
                        removed = ch.removed,
                        peers = self.records.len().saturating_sub(1),
                        "programmed"
                    );
                }
            }
            Err(e) => {
                self.metrics.programming_errors.inc();
                self.metrics
                    .healthy
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                tracing::error!("programming failed: {e}");
            }
        }
    }

    /// Lists every record and watches from there.
    async fn relist(&mut self) -> Result<WatchStream, String> {
        let (rev, listed) = store::list(&mut self.client, &self.keys).await?;
        self.records = listed.into_iter().map(|(s, l)| (s, l.record)).collect();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(rev + 1);
        let stream = self
            .client
            .watch(self.keys.subnets(), Some(opts))
            .await
            .map_err(|e| e.to_string())?;
        Ok(stream)
    }

    /// [`Node::relist`] until it works (etcd may be away for a while).
    async fn relist_until_ok(&mut self) -> WatchStream {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.relist().await {
                Ok(w) => return w,
                Err(e) => tracing::warn!("listing node records: {e}"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Applies one watch response; false when the watch must be re-listed.
    fn apply(&mut self, resp: &etcd_client::WatchResponse) -> bool {
        if resp.canceled() || resp.compact_revision() > 0 {
            return false;
        }
        for ev in resp.events() {
            self.metrics.watch_events.inc();
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key());
            let Some(subnet) = self.keys.parse_subnet_key(&key) else {
                continue;
            };
            match ev.event_type() {
                EventType::Put => match NodeRecord::parse(kv.value()) {
                    Ok(r) => {
                        self.records.insert(subnet, r);
                    }
                    Err(e) => tracing::warn!(%key, "ignoring a record: {}", e.msg),
                },
                EventType::Delete => {
                    self.records.remove(&subnet);
                }
            }
        }
        true
    }

    /// A lost lease (etcd forgot it): lease the subnet again.
    async fn reregister(&mut self) -> Result<(), String> {
        let reg = store::register(
            &mut self.client,
            &self.keys,
            &self.cfg,
            &self.args.node_name,
            self.underlay.addr.ip(),
            &format_mac(&self.device.mac),
            self.args.lease_ttl,
            Some(self.reg.subnet),
        )
        .await?;
        if reg.subnet != self.reg.subnet {
            tracing::warn!(old = %self.reg.subnet, new = %reg.subnet, "lost the subnet while the lease was gone");
        }
        self.reg = reg;
        self.ensure_device().await?;
        self.write_subnet_file()
    }
}

/// Keeps the lease alive; says on `lost` when etcd no longer knows it.
async fn keep_alive(
    mut client: Client,
    lease: i64,
    ttl: i64,
    metrics: Metrics,
    lost: mpsc::Sender<i64>,
) {
    let period = Duration::from_secs((ttl / 3).max(1) as u64);
    loop {
        if let Ok((mut keeper, mut stream)) = client.lease_keep_alive(lease).await {
            loop {
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match stream.message().await {
                    Ok(Some(r)) if r.ttl() > 0 => {
                        metrics.lease_renewals.inc();
                    }
                    Ok(Some(_)) => {
                        let _ = lost.send(lease).await;
                        return;
                    }
                    _ => break,
                }
                tokio::time::sleep(period).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn run(args: Args) -> Result<(), String> {
    let metrics = Metrics::new();
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
        tokio::spawn(crate::metrics::serve(listener, metrics.clone()));
    }
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut node = tokio::select! {
        n = Node::start(args, metrics.clone()) => n?,
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
    };
    let (lost_tx, mut lost_rx) = mpsc::channel(1);
    let mut keeper = tokio::spawn(keep_alive(
        node.client.clone(),
        node.reg.lease,
        node.args.lease_ttl,
        metrics.clone(),
        lost_tx.clone(),
    ));
    let mut watch = node.relist_until_ok().await;
    node.program(Instant::now()).await;
    let mut tick = tokio::time::interval(Duration::from_secs(node.args.reconcile_interval));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            msg = watch.message() => {
                let since = Instant::now();
                let ok = matches!(&msg, Ok(Some(resp)) if node.apply(resp));
                if !ok {
                    tracing::info!("watch ended or compacted: listing again");
                    watch = node.relist_until_ok().await;
                }
                node.program(since).await;
            }
            _ = tick.tick() => {
                let since = Instant::now();
                if let Err(e) = node.ensure_device().await {
                    tracing::error!("device: {e}");
                }
                node.program(since).await;
            }
            Some(lease) = lost_rx.recv() => {
                if lease == node.reg.lease {
                    tracing::warn!("etcd dropped this node's lease: leasing again");
                    if let Err(e) = node.reregister().await {
                        tracing::error!("re-leasing: {e}");
                    }
                    keeper.abort();
                    keeper = tokio::spawn(keep_alive(node.client.clone(), node.reg.lease, node.args.lease_ttl, metrics.clone(), lost_tx.clone()));
                }
            }
        }
    }
    keeper.abort();
    if node.args.release_on_exit {
        tracing::info!(subnet = %node.reg.subnet, "releasing the lease");
        let _ = node.client.lease_revoke(node.reg.lease).await;
        let _ = std::fs::remove_file(&node.args.subnet_file);
    } else {
        tracing::info!(subnet = %subnet_id(&node.reg.subnet), "stopping; the lease stays until its TTL (a restart keeps the subnet)");
    }
    Ok(())
}
