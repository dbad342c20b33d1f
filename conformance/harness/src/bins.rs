//! Where the workspace's binaries are, for tests of one crate that run another's.

use std::path::PathBuf;

/// The cargo target profile directory (`target/debug`) the running test lives in.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test>-<hash>
    let deps = exe.parent().expect("test binary has a parent dir");
    let dir = if deps.ends_with("deps") {
        deps.parent().expect("deps has a parent")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// The path of a workspace binary; panics with how to build it when absent.
pub fn bin(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first (the README's test command does)",
        path.display()
    );
    path
}

/// The directory holding our plugin binaries, to put in CNI_PATH.
pub fn plugin_dir() -> PathBuf {
    target_dir()
}
