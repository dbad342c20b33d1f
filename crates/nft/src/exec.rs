//! Running the `nft` binary: apply a JSON batch (`nft -j -f -`), check one
//! without applying it (`nft -c -j -f -`), list one of our tables; and `nft`
//! as a back end of `crate::plan` ([`Exec`]).
//!
//! We spawn `nft` ourselves rather than through `nftables::helper`, because
//! the helper lets nft's stderr go to ours and so loses the reason a batch
//! was refused; the batches themselves are built with the crate's types.
//! `nft` runs in the calling thread's network namespace.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::build::{family_name, Batch};
use crate::engine::Layout;
use crate::error::{Error, ErrorKind, Result};
use crate::listing::{ListedElem, Listing};
use crate::plan::{self, Applied, Chains, Removal};

/// Where `nft` usually lives when PATH is unset (plugins may be started with
/// an empty environment).
const FALLBACK_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The `nft` binary: the first `nft` in PATH; the usual sbin directories only
/// when PATH is unset or empty.
pub(crate) fn nft_binary() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").filter(|p| !p.is_empty());
    let dirs: Vec<PathBuf> = match &path {
        Some(p) => std::env::split_paths(p).collect(),
        None => FALLBACK_DIRS.iter().map(PathBuf::from).collect(),
    };
    dirs.iter()
        .map(|d| d.join("nft"))
        .find(|p| is_executable(p))
        .ok_or_else(|| Error::missing("find nft"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn spawn_error(program: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::missing(format!("run {}", program.display()))
    } else {
        Error::new(
            ErrorKind::Io,
            format!("run {}", program.display()),
            e.to_string(),
        )
    }
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
    let program = nft_binary()?;
    let mut cmd = Command::new(&program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(&program, e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // If nft dies early the write fails with EPIPE; its exit status and
        // stderr below say why, so the write error itself is not the story.
        let _ = pipe.write_all(input);
    }
    child.wait_with_output().map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("wait for {}", program.display()),
            e.to_string(),
        )
    })
}

fn stderr_text(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if text.is_empty() {
        format!("nft exited with {}", out.status)
    } else {
        text
    }
}

/// Applies a batch atomically: either every command in it takes effect or none.
pub(crate) fn apply(batch: &Value) -> Result<()> {
    apply_with(batch, &["-j", "-f", "-"], "apply nftables batch")
}

/// Lets the kernel validate a batch without committing it.
pub(crate) fn dry_run(batch: &Value) -> Result<()> {
    apply_with(batch, &["-c", "-j", "-f", "-"], "check nftables batch")
}

fn apply_with(batch: &Value, args: &[&str], what: &str) -> Result<()> {
    let payload = batch.to_string();
    let out = run(args, Some(payload.as_bytes()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::NftFailed, what, stderr_text(&out)))
    }
}

/// `nft -j list table <family> <name>`: `None` when the table does not exist.
pub(crate) fn list_table(family: &str, table: &str) -> Result<Option<Value>> {
    let context = format!("list table {family} {table}");
    let out = run(&["-j", "list", "table", family, table], None)?;
    if !out.status.success() {
        let err = stderr_text(&out);
        // nft 1.0.x: "Error: No such file or directory" (and a caret line).
        if err.contains("No such file or directory") {
            return Ok(None);
        }
        return Err(Error::new(ErrorKind::NftFailed, context, err));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|e| Error::new(ErrorKind::BadOutput, &context, e.to_string()))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::new(ErrorKind::BadOutput, context, format!("not JSON: {e}")))
}

/// The binary we would run, for messages.
pub fn nft_path() -> Result<OsString> {
    nft_binary().map(PathBuf::into_os_string)
}

/// `nft` as a [`plan::Backend`]: one `nft -j list table` per listing (its
/// elements kept for [`plan::Backend::elements`]), one JSON batch per removal.
#[derive(Debug, Default)]
pub(crate) struct Exec {
    listing: Option<Listing>,
}

impl plan::Listed for ListedElem {
    fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
}

impl plan::Backend for Exec {
    type Elem = ListedElem;
    type Error = Error;

    /// Every chain of the table; no `nft` at all counts as no table (nothing
    /// of ours can have been installed without it).
    fn chains(&mut self, layout: &Layout, _expected: &[String]) -> Result<Option<Chains>> {
        let family = family_name(layout.family);
        let doc = match list_table(family, layout.table) {
            Ok(Some(doc)) => doc,
            Ok(None) => return Ok(None),
            Err(e) if e.is_missing_binary() => return Ok(None),
            Err(e) => return Err(e),
        };
        let l = Listing::parse(&doc, family, layout.table)?;
        let chains = l
            .chains
            .keys()
            .map(|c| {
                (
                    c.clone(),
                    l.rules_of(c).map(|r| r.comment.clone()).collect(),
                )
            })
            .collect();
        self.listing = Some(l);
        Ok(Some(chains))
    }

    fn elements(&mut self, _layout: &Layout, map: &'static str) -> Result<Vec<ListedElem>> {
        Ok(self
            .listing
            .as_ref()
            .and_then(|l| l.maps.get(map))
            .map(|m| m.elems.clone())
            .unwrap_or_default())
    }

    /// Any refusal counts as a race: `nft` reports no errno to tell.
    fn apply(&mut self, layout: &Layout, removal: &Removal<ListedElem>) -> Result<Applied<Error>> {
        match apply(&removal_batch(layout, removal).to_json()) {
            Ok(()) => Ok(Applied::Done),
            Err(e) => Ok(Applied::Raced(e)),
        }
    }
}

/// The removal as one JSON batch: each element deleted behind its guard,
/// then the chains.
fn removal_batch(layout: &Layout, removal: &Removal<ListedElem>) -> Batch {
    let mut b = Batch::default();
    for (map, e) in &removal.elems {
        if let Some(target) = &e.target {
            b.guard_element(
                layout.family,
                layout.table,
                map,
                &e.key,
                target,
                e.comment.as_deref(),
            );
            b.delete_element(layout.family, layout.table, map, &e.key);
        }
    }
    for c in &removal.chains {
        b.delete_chain(layout.family, layout.table, c);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element is deleted only behind a guard that re-adds it exactly as
    /// listed, so a key taken over meanwhile fails the batch.
    #[test]
    fn removal_guards_every_element_delete() {
        let layout = crate::masq::layout();
        let elem = ListedElem {
            key: serde_json::json!("10.0.0.5"),
            comment: Some("n/c/eth0".into()),
            target: Some("masq-0123456789abcdef".into()),
        };
        let removal = Removal {
            elems: vec![("masq4", elem)],
            chains: ["masq-0123456789abcdef".to_string()].into(),
        };
        let cmds = removal_batch(&layout, &removal).commands().to_vec();
        let verbs: Vec<&str> = cmds
            .iter()
            .map(|c| {
                c.as_object()
                    .and_then(|o| o.keys().next())
                    .map_or("", |k| k.as_str())
            })
            .collect();
        assert_eq!(verbs, ["add", "delete", "delete"], "{cmds:?}");
        let guard = &cmds[0]["add"]["element"];
        assert_eq!(guard["name"], "masq4");
        assert_eq!(guard["elem"][0][0]["elem"]["val"], "10.0.0.5");
        assert_eq!(guard["elem"][0][0]["elem"]["comment"], "n/c/eth0");
        assert_eq!(
            guard["elem"][0][1]["jump"]["target"],
            "masq-0123456789abcdef"
        );
        assert_eq!(cmds[1]["delete"]["element"]["elem"][0], "10.0.0.5");
        assert_eq!(cmds[2]["delete"]["chain"]["name"], "masq-0123456789abcdef");
    }
}
