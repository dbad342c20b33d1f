//! The build marker on real files: only our own `host-local` of this
//! version is recognised as `host-local` (what lets the bridge run it
//! in-process); anything else answers "not ours" without a panic.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cni::marker::binary_is;
use cni_harness::bins;

const REFERENCE_HOST_LOCAL: &str = "/usr/lib/cni/host-local";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("cni-marker-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_host_local(p: &Path) -> bool {
    binary_is(p, "host-local")
}

#[test]
fn our_host_local_is_recognised() {
    let ours = bins::bin("host-local");
    assert!(is_host_local(&ours), "{}", ours.display());
    assert!(!binary_is(&ours, "bridge"));
    assert_eq!(
        cni::marker::read_marker(&ours).unwrap(),
        cni::marker::expected("host-local")
    );
}

#[test]
fn a_symlink_to_ours_is_ours() {
    let dir = TempDir::new("symlink");
    let link = dir.0.join("host-local");
    std::os::unix::fs::symlink(bins::bin("host-local"), &link).unwrap();
    assert!(is_host_local(&link));
    // A dangling one is nobody's.
    let dangling = dir.0.join("dangling");
    std::os::unix::fs::symlink(dir.0.join("nothing-here"), &dangling).unwrap();
    assert!(!is_host_local(&dangling));
}

#[test]
fn the_reference_host_local_is_not_ours() {
    let reference = Path::new(REFERENCE_HOST_LOCAL);
    assert!(
        reference.is_file(),
        "{REFERENCE_HOST_LOCAL} missing: install the Debian package containernetworking-plugins"
    );
    assert!(!is_host_local(reference));
    assert_eq!(cni::marker::read_marker(reference), None);
}

#[test]
fn our_other_plugins_are_ours_but_not_host_local() {
    let bridge = bins::bin("bridge");
    assert!(!is_host_local(&bridge));
    assert!(binary_is(&bridge, "bridge"));
}

#[test]
fn scripts_empty_truncated_and_garbage_files_are_not_ours() {
    let dir = TempDir::new("files");
    let ours = std::fs::read(bins::bin("host-local")).unwrap();
    let mut cases = vec![
        (
            "script",
            format!(
                "#!/bin/sh\nexec {} \"$@\"\n",
                bins::bin("host-local").display()
            )
            .into_bytes(),
        ),
        ("empty", Vec::new()),
        ("trunc100", ours[..100].to_vec()),
        ("trunc4096", ours[..4096].to_vec()),
        ("all-but-last-byte", ours[..ours.len() - 1].to_vec()),
        (
            "garbage",
            (0..65536u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ];
    // Our binary with its ELF class or byte order flipped.
    let mut class32 = ours.clone();
    class32[4] = 1;
    cases.push(("elf32", class32));
    let mut big_endian = ours.clone();
    big_endian[5] = 2;
    cases.push(("big-endian", big_endian));
    for (name, content) in cases {
        let p = dir.file(name, &content);
        assert!(!is_host_local(&p), "{name} taken for ours");
    }
    // An intact copy is ours (same bytes), so the cases above fail for
    // what was done to them, not for being copies.
    assert!(is_host_local(&dir.file("copy", &ours)));
    // A directory, a missing path.
    assert!(!is_host_local(&dir.0));
    assert!(!is_host_local(&dir.0.join("missing")));
}

#[test]
fn another_version_of_ours_is_not_ours() {
    let dir = TempDir::new("version");
    let mut bytes = std::fs::read(bins::bin("host-local")).unwrap();
    let marker = cni::marker::expected("host-local");
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker.as_slice())
        .expect("the marker is in the binary");
    // "cni-rs plugin id v1\0" then the version: bump its first digit.
    let v = at + cni::marker::MAGIC.len() + 1;
    bytes[v] = if bytes[v] == b'9' { b'8' } else { bytes[v] + 1 };
    assert!(!is_host_local(&dir.file("host-local", &bytes)));
}
