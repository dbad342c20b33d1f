//! The etcd fixture against a real `etcd` (Debian `etcd-server`), driven through the
//! etcd-client crate exactly as the IPAM plugin and overlayd will drive it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cni_harness::{EtcdCluster, EtcdServer};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};

/// How long a test keeps retrying a request that fails while the cluster re-elects
/// or a member catches up.
const RETRY_FOR: Duration = Duration::from_secs(20);

/// Client with a per-request timeout of 5 s: plenty for a healthy etcd on loopback.
async fn connect(endpoints: &[String]) -> Client {
    connect_with_timeout(endpoints, Duration::from_secs(5)).await
}

/// Client for fault tests: a request caught in a leader change can hang until
/// etcd's own request timeout (~6 s), so give up after 1 s and let [`retry`] resend.
async fn connect_impatient(endpoints: &[String]) -> Client {
    connect_with_timeout(endpoints, Duration::from_secs(1)).await
}

async fn connect_with_timeout(endpoints: &[String], timeout: Duration) -> Client {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(timeout);
    Client::connect(endpoints, Some(options))
        .await
        .unwrap_or_else(|e| panic!("connect to {endpoints:?}: {e}"))
}

/// Retries `op` while it returns `Err` (leader election, catching up) for at most
/// [`RETRY_FOR`]; panics with the last error after that. A successful answer is
/// returned at once, so callers assert on it: a wrong value never gets retried away.
async fn retry<T>(what: &str, mut op: impl AsyncFnMut() -> Result<T, etcd_client::Error>) -> T {
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{what}: {e} (retrying)");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what}: still failing after {RETRY_FOR:?}: {e}"),
        }
    }
}

/// Linearizable (the default) GET of one key; `None` when absent.
async fn get_value(client: &mut Client, key: &str) -> Result<Option<String>, etcd_client::Error> {
    let resp = client.get(key, None).await?;
    assert!(resp.kvs().len() <= 1, "one key, several values: {resp:?}");
    Ok(resp
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
}

fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn assert_gone(pids: &[u32], dir: &Path) {
    for &pid in pids {
        assert!(!pid_exists(pid), "etcd pid {pid} still exists after drop");
    }
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[tokio::test]
async fn single_member_put_get_txn_and_lease() {
    let etcd = EtcdServer::start();
    let endpoints = etcd.endpoints();
    assert_eq!(endpoints.len(), 1);
    assert!(
        endpoints[0].starts_with("http://127.0.0.1:"),
        "{endpoints:?}"
    );
    let mut client = connect(&endpoints).await;

    // put / get round trip, and a missing key really is missing.
    client.put("/t/key", "value-1", None).await.unwrap();
    assert_eq!(
        get_value(&mut client, "/t/key").await.unwrap().as_deref(),
        Some("value-1")
    );
    assert_eq!(get_value(&mut client, "/t/missing").await.unwrap(), None);
    client.put("/t/key", "value-2", None).await.unwrap();
    assert_eq!(
        get_value(&mut client, "/t/key").await.unwrap().as_deref(),
        Some("value-2")
    );

    // create-if-absent: compare create_revision == 0 holds once.
    let create = |value: &str| {
        Txn::new()
            .when([Compare::create_revision("/t/block", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("/t/block", value, None)])
            .or_else([TxnOp::get("/t/block", None)])
    };
    let first = client.txn(create("node-a")).await.unwrap();
    assert!(
        first.succeeded(),
        "first create-if-absent failed: {first:?}"
    );
    let second = client.txn(create("node-b")).await.unwrap();
    assert!(
        !second.succeeded(),
        "second create-if-absent won: {second:?}"
    );
    // The losing branch ran: it read the winner's value.
    match second.op_responses().as_slice() {
        [TxnOpResponse::Get(get)] => {
            assert_eq!(get.kvs().len(), 1);
            assert_eq!(get.kvs()[0].value(), b"node-a");
        }
        other => panic!("expected the or_else GET, got {other:?}"),
    }
    assert_eq!(
        get_value(&mut client, "/t/block").await.unwrap().as_deref(),
        Some("node-a")
    );

    // A key under a lease is there until the lease is revoked, then gone.
    let lease = client.lease_grant(60, None).await.unwrap();
    assert!(lease.id() != 0 && lease.ttl() > 0, "{lease:?}");
    client
        .put(
            "/t/leased",
            "alive",
            Some(PutOptions::new().with_lease(lease.id())),
        )
        .await
        .unwrap();
    let got = client.get("/t/leased", None).await.unwrap();
    assert_eq!(got.kvs().len(), 1, "leased key missing: {got:?}");
    assert_eq!(got.kvs()[0].lease(), lease.id());
    client.lease_revoke(lease.id()).await.unwrap();
    assert_eq!(get_value(&mut client, "/t/leased").await.unwrap(), None);
    // The unleased keys are untouched by the revoke.
    assert_eq!(
        get_value(&mut client, "/t/key").await.unwrap().as_deref(),
        Some("value-2")
    );
}

/// Which member index leads, asked of each member alone.
async fn leader_index(cluster: &EtcdCluster) -> usize {
    let mut ids = Vec::new();
    let mut leader = None;
    for i in 0..cluster.len() {
        let mut client = connect_impatient(&cluster.member_endpoints(i)).await;
        let status = retry(&format!("status of member {i}"), async || {
            client.status().await
        })
        .await;
        let header = status.header().expect("status has a header");
        ids.push(header.member_id());
        if status.leader() != 0 {
            leader = Some(status.leader());
        }
    }
    let leader = leader.expect("some member knows the leader");
    ids.iter()
        .position(|&id| id == leader)
        .unwrap_or_else(|| panic!("leader {leader:x} is none of the members {ids:x?}"))
}

#[tokio::test]
async fn cluster_survives_losing_its_leader_and_a_restarted_member_catches_up() {
    let mut cluster = EtcdCluster::start(3);
    assert_eq!(cluster.len(), 3);
    let all = cluster.endpoints();
    assert_eq!(all.len(), 3);
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "endpoints not distinct: {all:?}");

    let mut client = connect_impatient(&all).await;
    let members = retry("member list", async || client.member_list().await).await;
    assert_eq!(members.members().len(), 3, "{members:?}");
    retry("put before", async || {
        client.put("/c/before", "1", None).await
    })
    .await;

    // Kill the leader: the hardest single failure (forces an election).
    let down = leader_index(&cluster).await;
    let down_pid = cluster.member_pid(down).unwrap();
    cluster.stop_member(down);
    assert_eq!(cluster.member_pid(down), None);
    assert!(
        !pid_exists(down_pid),
        "stopped member {down} pid {down_pid} still exists"
    );
    assert!(
        cluster.member_dir(down).join("data/member").is_dir(),
        "stopped member's data must be kept"
    );

    // The stopped member really is unreachable.
    let mut dead = connect_impatient(&cluster.member_endpoints(down)).await;
    assert!(
        dead.get("/c/before", None).await.is_err(),
        "member {down} answered after stop_member"
    );

    // The other two still make a quorum: writes and linearizable reads work.
    let survivors: Vec<usize> = (0..3).filter(|&i| i != down).collect();
    let survivor_endpoints: Vec<String> = survivors
        .iter()
        .flat_map(|&i| cluster.member_endpoints(i))
        .collect();
    let mut client = connect_impatient(&survivor_endpoints).await;
    retry("put while a member is down", async || {
        client.put("/c/during", "2", None).await
    })
    .await;
    for &i in &survivors {
        let mut alone = connect_impatient(&cluster.member_endpoints(i)).await;
        let during = retry(&format!("read /c/during from member {i}"), async || {
            get_value(&mut alone, "/c/during").await
        })
        .await;
        assert_eq!(during.as_deref(), Some("2"), "member {i}");
        let before = get_value(&mut alone, "/c/before").await.unwrap();
        assert_eq!(before.as_deref(), Some("1"), "member {i}");
    }

    // Restart: same ports, same data; it rejoins and serves what it missed.
    cluster.restart_member(down);
    let new_pid = cluster.member_pid(down).expect("restarted member runs");
    assert_ne!(new_pid, down_pid);
    assert_eq!(cluster.member_endpoints(down), vec![all[down].clone()]);
    let mut alone = connect_impatient(&cluster.member_endpoints(down)).await;
    let during = retry("read /c/during from the restarted member", async || {
        get_value(&mut alone, "/c/during").await
    })
    .await;
    assert_eq!(during.as_deref(), Some("2"));
    let members = retry("member list via the restarted member", async || {
        alone.member_list().await
    })
    .await;
    assert_eq!(members.members().len(), 3, "{members:?}");
    // It takes writes too (forwarded to the leader, committed by the quorum).
    retry("put through the restarted member", async || {
        alone.put("/c/after", "3", None).await
    })
    .await;
    let mut other = connect_impatient(&cluster.member_endpoints(survivors[0])).await;
    let after = retry("read /c/after", async || {
        get_value(&mut other, "/c/after").await
    })
    .await;
    assert_eq!(after.as_deref(), Some("3"));

    // Drop stops all three and removes the directory.
    let pids: Vec<u32> = (0..3).map(|i| cluster.member_pid(i).unwrap()).collect();
    let dir = cluster.dir().to_path_buf();
    assert!(pids.iter().all(|&p| pid_exists(p)));
    assert!(dir.is_dir());
    drop(cluster);
    assert_gone(&pids, &dir);
}

#[test]
fn drop_kills_the_process_and_removes_the_data_dir() {
    let etcd = EtcdServer::start();
    let pid = etcd.pid();
    let dir = etcd.dir().to_path_buf();
    assert!(pid_exists(pid), "etcd pid {pid} not running");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe.file_name().unwrap(), "etcd", "pid {pid} is {exe:?}");
    assert!(dir.starts_with(std::env::temp_dir()), "{dir:?}");
    assert!(
        dir.join("member-0/data/member").is_dir(),
        "no data dir in {dir:?}"
    );
    assert!(dir.join("member-0/etcd.log").is_file(), "no log in {dir:?}");
    // Listens on loopback only.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        !cmdline.contains("0.0.0.0") && !cmdline.contains("localhost"),
        "{cmdline}"
    );
    drop(etcd);
    assert_gone(&[pid], &dir);
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let (tx, rx) = std::sync::mpsc::channel::<(u32, PathBuf)>();
    let result = std::panic::catch_unwind(move || {
        let etcd = EtcdServer::start();
        tx.send((etcd.pid(), etcd.dir().to_path_buf())).unwrap();
        panic!("test failure while the fixture is alive");
    });
    assert!(result.is_err());
    let (pid, dir) = rx.recv().expect("the fixture started");
    assert_gone(&[pid], &dir);
}

/// Without `etcd` on PATH the fixture fails (never skips) and names the package.
/// Runs this very test again in a child process with an empty PATH.
#[test]
fn missing_etcd_fails_naming_the_debian_package() {
    const CHILD: &str = "CNI_HARNESS_ETCD_TEST_NO_PATH";
    if std::env::var_os(CHILD).is_some() {
        let _etcd = EtcdServer::start();
        return; // unreachable when etcd is missing: the parent checks the panic
    }
    let empty = std::env::temp_dir().join(format!("cni-harness-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "missing_etcd_fails_naming_the_debian_package",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("PATH", &empty)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&empty);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("running 1 test"),
        "filter matched nothing:\n{text}"
    );
    assert!(
        !out.status.success(),
        "started without etcd on PATH?\n{text}"
    );
    assert!(text.contains("etcd-server"), "package not named:\n{text}");
}
