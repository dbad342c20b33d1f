//! Binary sizes of both sides, from the files (ours also stripped, since the
//! reference binaries ship stripped).

use std::path::Path;

use serde_json::{json, Value};

use crate::chain::Dirs;
use crate::floors::which;

pub const PLUGINS: [&str; 4] = ["bridge", "host-local", "portmap", "loopback"];

#[derive(Debug, Clone)]
pub struct Size {
    pub name: &'static str,
    pub ours: Option<u64>,
    pub ours_stripped: Option<u64>,
    pub reference: Option<u64>,
}

fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// `strip -o <tmp> <file>` and the result's size (None without binutils).
fn stripped_size(p: &Path) -> Option<u64> {
    let strip = which("strip")?;
    let tmp = std::env::temp_dir().join(format!(
        "cni-bench-strip-{}-{}",
        std::process::id(),
        p.file_name()?.to_string_lossy()
    ));
    let ok = std::process::Command::new(strip)
        .arg("-o")
        .arg(&tmp)
        .arg(p)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let size = if ok { file_size(&tmp) } else { None };
    let _ = std::fs::remove_file(&tmp);
    size
}

pub fn measure(dirs: &Dirs) -> Vec<Size> {
    PLUGINS
        .iter()
        .map(|name| {
            let ours = dirs.ours.join(name);
            Size {
                name,
                ours: file_size(&ours),
                ours_stripped: stripped_size(&ours),
                reference: file_size(&dirs.reference.join(name)),
            }
        })
        .collect()
}

pub fn json(sizes: &[Size]) -> Value {
    Value::Array(
        sizes
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "ours_bytes": s.ours,
                    "ours_stripped_bytes": s.ours_stripped,
                    "reference_bytes": s.reference,
                })
            })
            .collect(),
    )
}
