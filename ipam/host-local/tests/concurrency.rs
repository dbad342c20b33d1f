//! Many plugin processes at once on one range: the lock and O_EXCL keep
//! every address unique.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use serde_json::json;

const N: usize = 50;

#[test]
fn fifty_concurrent_adds_get_fifty_distinct_addresses_and_fifty_dels_free_them() {
    let f = Fixture::new("hl-conc");
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.130.0.0/24"}], [{"subnet": "fd13::/64"}]]}),
    );
    let results: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let (f, conf) = (&f, &conf);
                s.spawn(move || {
                    addresses(
                        &f.run(&ours(), "ADD", &format!("ctr{i}"), "eth0", conf)
                            .result(),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for family in 0..2 {
        let distinct: BTreeSet<&String> = results.iter().map(|r| &r[family]).collect();
        assert_eq!(distinct.len(), N, "family {family}: {results:?}");
    }
    // The set of addresses is exactly the first 50 of each range (no holes, no
    // double use) and each lease names its container.
    let v4: BTreeSet<String> = results.iter().map(|r| r[0].clone()).collect();
    let want: BTreeSet<String> = (2..2 + N).map(|n| format!("10.130.0.{n}/24")).collect();
    assert_eq!(v4, want);
    let l = leases(&f.net_dir("d"));
    assert_eq!(l.len(), 2 * N);
    for (i, r) in results.iter().enumerate() {
        let ip = r[0].split('/').next().unwrap();
        assert_eq!(l[ip], format!("ctr{i}\r\neth0"));
    }

    std::thread::scope(|s| {
        for i in 0..N {
            let (f, conf) = (&f, &conf);
            s.spawn(move || {
                let out = f.run(&ours(), "DEL", &format!("ctr{i}"), "eth0", conf);
                assert!(out.success(), "DEL ctr{i}: {out:?}");
            });
        }
    });
    assert!(leases(&f.net_dir("d")).is_empty(), "every lease released");
}

#[test]
fn concurrent_adds_racing_for_a_small_range_never_share_an_address() {
    let f = Fixture::new("hl-race");
    // 10 allocatable addresses for 30 racing containers.
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.131.0.0/24", "rangeStart": "10.131.0.10", "rangeEnd": "10.131.0.19"}]]}),
    );
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..30)
            .map(|i| {
                let (f, conf) = (&f, &conf);
                s.spawn(move || f.run(&ours(), "ADD", &format!("r{i}"), "eth0", conf))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let won: Vec<String> = outs
        .iter()
        .filter(|o| o.success())
        .map(|o| addresses(&o.json())[0].clone())
        .collect();
    assert_eq!(won.len(), 10, "exactly the capacity succeeded");
    assert_eq!(won.iter().collect::<BTreeSet<_>>().len(), 10);
    for o in outs.iter().filter(|o| !o.success()) {
        o.expect_error(101);
    }
    assert_eq!(leases(&f.net_dir("d")).len(), 10);
}

#[test]
fn ours_and_the_reference_share_the_lock() {
    let f = Fixture::new("hl-mixed");
    let reference: PathBuf = reference();
    let conf = f.conf(
        "d",
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.132.0.0/24"}]]}),
    );
    let results: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let (f, conf) = (&f, &conf);
                let bin = if i % 2 == 0 {
                    ours()
                } else {
                    reference.clone()
                };
                s.spawn(move || {
                    addresses(&f.run(&bin, "ADD", &format!("m{i}"), "eth0", conf).result())[0]
                        .clone()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        results.iter().collect::<BTreeSet<_>>().len(),
        N,
        "{results:?}"
    );
    let l = leases(&f.net_dir("d"));
    assert_eq!(l.len(), N);
    // Each side releases the other's half.
    std::thread::scope(|s| {
        for i in 0..N {
            let (f, conf) = (&f, &conf);
            let bin = if i % 2 == 1 {
                ours()
            } else {
                reference.clone()
            };
            s.spawn(move || assert!(f.run(&bin, "DEL", &format!("m{i}"), "eth0", conf).success()));
        }
    });
    assert!(leases(&f.net_dir("d")).is_empty());
}
