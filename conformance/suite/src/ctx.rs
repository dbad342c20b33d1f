//! What a running check gets: the plugin directory and what the plugins said
//! to VERSION, the spec version chosen for this check, and helpers to make its
//! own sandbox, temp dirs and plugin calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cni_harness::Sandbox;

use crate::check::Plugin;
use crate::exec::Call;

/// What VERSION told us about one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No such file in the directory.
    Absent,
    /// The file is there but VERSION did not answer properly.
    Broken(String),
    /// `supportedVersions`.
    Versions(Vec<String>),
}

/// The suite's environment, shared by every check.
#[derive(Debug, Clone)]
pub struct Env {
    pub plugin_dir: PathBuf,
    pub probes: BTreeMap<Plugin, Probe>,
    /// Our cnitool binary, if found.
    pub cnitool: Option<PathBuf>,
    /// Time limit for one plugin run.
    pub timeout: Duration,
}

/// One running check.
pub struct Ctx<'a> {
    pub env: &'a Env,
    pub id: &'static str,
    /// The spec version the check runs at (every needed plugin supports it).
    pub version: String,
}

static NEXT_TMP: AtomicU32 = AtomicU32::new(0);

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir, String> {
        let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let path = std::env::temp_dir().join(format!("cnc-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside, as a string (for configs).
    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Ctx<'_> {
    /// The plugin's binary in the plugin directory.
    pub fn bin(&self, p: Plugin) -> PathBuf {
        self.env.plugin_dir.join(p.name())
    }

    pub fn plugin_dir(&self) -> &Path {
        &self.env.plugin_dir
    }

    /// The plugin's `supportedVersions`, when it answered VERSION.
    pub fn versions(&self, p: Plugin) -> Option<&[String]> {
        match self.env.probes.get(&p) {
            Some(Probe::Versions(v)) => Some(v),
            _ => None,
        }
    }

    pub fn supports(&self, p: Plugin, version: &str) -> bool {
        self.versions(p)
            .is_some_and(|v| v.iter().any(|x| x == version))
    }

    /// The plugins that are in the directory (answering VERSION or not).
    pub fn present(&self) -> Vec<Plugin> {
        Plugin::ALL
            .into_iter()
            .filter(|p| !matches!(self.env.probes.get(p), Some(Probe::Absent) | None))
            .collect()
    }

    /// A fresh throwaway host namespace for this check.
    pub fn sandbox(&self) -> Sandbox {
        Sandbox::new(self.id)
    }

    pub fn tempdir(&self) -> Result<TempDir, String> {
        TempDir::new(self.id)
    }

    /// A call of `p` with CNI_COMMAND and CNI_PATH (the plugin directory).
    pub fn call(&self, p: Plugin, command: &str) -> Call {
        Call::new(
            &self.bin(p),
            command,
            &self.env.plugin_dir,
            self.env.timeout,
        )
    }

    /// Our cnitool binary.
    pub fn cnitool(&self) -> Result<&Path, String> {
        self.env.cnitool.as_deref().ok_or_else(|| {
            "cnitool not found: build it (cargo build -p cnitool) or pass --cnitool PATH"
                .to_string()
        })
    }
}
