//! The build marker: every plugin binary of this suite carries, in an ELF
//! section of its own ([`SECTION`]), the bytes
//! `"cni-rs plugin id v1\0" <suite version> "\0" <binary name> "\0"`.
//! [`plugin_main!`](crate::plugin_main) puts it there; [`binary_is`] reads it
//! back from a file with a few small reads (ELF header, section header table,
//! section name table, the section), so a delegating plugin can tell a binary
//! of its own build from anything else that bears the same name on CNI_PATH.
//!
//! Anything unexpected (not ELF, 32-bit or big-endian, truncated, no or an
//! odd section, another version or name) answers "not ours"; nothing here
//! panics on a file's content.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Name of the ELF section holding the marker.
pub const SECTION: &str = ".cni_rs_id";
/// First field of the marker.
pub const MAGIC: &str = "cni-rs plugin id v1";
/// The suite (workspace) version every crate of it shares.
pub const SUITE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Length of the marker of the binary named `name`.
pub const fn len(name: &str) -> usize {
    MAGIC.len() + 1 + SUITE_VERSION.len() + 1 + name.len() + 1
}

/// The marker of the binary named `name`, as a fixed-size array (for a
/// `static`; `N` must be [`len`]`(name)`, checked at compile time when used
/// in a `static` initializer).
pub const fn bytes<const N: usize>(name: &str) -> [u8; N] {
    assert!(N == len(name), "marker length mismatch");
    let mut out = [0u8; N];
    let mut at = 0;
    at = put(&mut out, at, MAGIC.as_bytes());
    at = put(&mut out, at, SUITE_VERSION.as_bytes());
    let _ = put(&mut out, at, name.as_bytes());
    out
}

/// Copies `s` and a NUL to `out[at..]`; returns the next position.
const fn put<const N: usize>(out: &mut [u8; N], mut at: usize, s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() {
        out[at] = s[i];
        at += 1;
        i += 1;
    }
    out[at] = 0;
    at + 1
}

/// The marker of the binary named `name`, at run time.
pub fn expected(name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(len(name));
    for part in [MAGIC, SUITE_VERSION, name] {
        v.extend_from_slice(part.as_bytes());
        v.push(0);
    }
    v
}

/// Whether `path` (symlinks followed) is the binary `name` of this suite,
/// built at this version: a 64-bit little-endian ELF whose [`SECTION`]
/// holds exactly [`expected`]`(name)`.
pub fn binary_is(path: &Path, name: &str) -> bool {
    read_marker(path).is_some_and(|m| m == expected(name))
}

/// Upper bounds that keep the reads small whatever the file claims.
const MAX_SECTIONS: usize = 1024;
const MAX_SHSTRTAB: u64 = 64 * 1024;
const MAX_MARKER: u64 = 4096;

const SHDR_SIZE: usize = 64;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;

/// The content of the marker section of `path`, `None` when the file is not
/// a readable 64-bit little-endian ELF with exactly one such section.
pub fn read_marker(path: &Path) -> Option<Vec<u8>> {
    let file = File::open(path).ok()?;
    // ELF header (Elf64_Ehdr, 64 bytes).
    let mut eh = [0u8; 64];
    file.read_exact_at(&mut eh, 0).ok()?;
    if eh[..4] != *b"\x7fELF" || eh[4] != 2 /* 64-bit */ || eh[5] != 1
    /* little-endian */
    {
        return None;
    }
    let shoff = u64_at(&eh, 0x28)?;
    let shentsize = usize::from(u16_at(&eh, 0x3a)?);
    let shnum = usize::from(u16_at(&eh, 0x3c)?);
    let shstrndx = usize::from(u16_at(&eh, 0x3e)?);
    // shnum 0 / shstrndx SHN_XINDEX mean "look in section 0": binaries with
    // that many sections are not ours.
    if shentsize != SHDR_SIZE || shnum == 0 || shnum > MAX_SECTIONS || shstrndx >= shnum {
        return None;
    }
    let mut table = vec![0u8; shnum * SHDR_SIZE];
    file.read_exact_at(&mut table, shoff).ok()?;
    let shdr = |i: usize| table.get(i * SHDR_SIZE..(i + 1) * SHDR_SIZE);

    let strtab_hdr = shdr(shstrndx)?;
    if u32_at(strtab_hdr, 4)? != SHT_STRTAB {
        return None;
    }
    let strtab = read_section(&file, strtab_hdr, MAX_SHSTRTAB)?;

    let mut found = None;
    for i in 0..shnum {
        let h = shdr(i)?;
        let name_off = usize::try_from(u32_at(h, 0)?).ok()?;
        if section_name(&strtab, name_off) != Some(SECTION.as_bytes()) {
            continue;
        }
        if found.is_some() || u32_at(h, 4)? != SHT_PROGBITS {
            return None;
        }
        found = Some(h);
    }
    read_section(&file, found?, MAX_MARKER)
}

/// The NUL-terminated name at `off` in the section name table.
fn section_name(strtab: &[u8], off: usize) -> Option<&[u8]> {
    let rest = strtab.get(off..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    rest.get(..end)
}

/// Reads the content of the section with header `h` (at most `max` bytes).
fn read_section(file: &File, h: &[u8], max: u64) -> Option<Vec<u8>> {
    let offset = u64_at(h, 0x18)?;
    let size = u64_at(h, 0x20)?;
    if size > max {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(size).ok()?];
    file.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The `main` of a plugin binary of this suite: embeds the build marker
/// (named after the binary, `CARGO_BIN_NAME`), installs the one-shot
/// allocator ([`arena`](crate::arena)) and runs the dispatcher.
///
/// A plugin's whole `main.rs` is `cni::plugin_main!(loopback::Loopback);`.
/// The macro reads `CARGO_BIN_NAME`, which cargo sets for binaries and
/// examples but not for doctests, so the compiled example is
/// `examples/noop_plugin.rs`, built by `cargo test` and run by
/// `tests/plugin_main.rs`.
#[macro_export]
macro_rules! plugin_main {
    ($plugin:expr) => {
        #[global_allocator]
        static ONE_SHOT_ALLOC: $crate::arena::OneShotAlloc = $crate::arena::OneShotAlloc;

        fn main() -> ::std::process::ExitCode {
            $crate::embed_marker!();
            $crate::run(&$plugin)
        }
    };
}

/// Embeds this binary's build marker (named after the binary,
/// `CARGO_BIN_NAME`); a statement for the `main` of a binary that is not a
/// plugin (plugins use [`plugin_main!`](crate::plugin_main)).
#[macro_export]
macro_rules! embed_marker {
    () => {{
        #[used]
        #[link_section = ".cni_rs_id"]
        static CNI_RS_ID: [u8; $crate::marker::len(env!("CARGO_BIN_NAME"))] =
            $crate::marker::bytes(env!("CARGO_BIN_NAME"));
        // Taking the address keeps the section through LTO and the linker's
        // section garbage collection.
        ::std::hint::black_box(&CNI_RS_ID);
    }};
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn const_and_runtime_markers_agree() {
        const M: [u8; len("host-local")] = bytes("host-local");
        assert_eq!(M.to_vec(), expected("host-local"));
        assert!(M.starts_with(MAGIC.as_bytes()));
        assert!(M.ends_with(b"\0host-local\0"));
        assert_ne!(expected("host-local"), expected("bridge"));
    }

    fn tmp(tag: &str, content: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("cni-marker-{tag}-{}", std::process::id()));
        std::fs::write(&p, content).unwrap();
        p
    }

    /// A minimal ELF64 LE file: header, sections [null, shstrtab, marker].
    pub(crate) fn elf(marker: &[u8], section: &str, sh_type: u32) -> Vec<u8> {
        let strtab = format!("\0.shstrtab\0{section}\0").into_bytes();
        let str_off = 64u64;
        let mark_off = str_off + strtab.len() as u64;
        let shoff = mark_off + marker.len() as u64;
        let mut f = vec![0u8; 64];
        f[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        f[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        f[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&strtab);
        f.extend_from_slice(marker);
        let sh = |name: u32, ty: u32, off: u64, size: u64| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&ty.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            h
        };
        f.extend(sh(0, 0, 0, 0));
        f.extend(sh(1, SHT_STRTAB, str_off, strtab.len() as u64));
        f.extend(sh(11, sh_type, mark_off, marker.len() as u64));
        f
    }

    #[test]
    fn synthetic_elf_files() {
        let good = tmp("good", &elf(&expected("host-local"), SECTION, SHT_PROGBITS));
        assert!(binary_is(&good, "host-local"));
        assert!(!binary_is(&good, "bridge"));

        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "other-version",
                elf(
                    b"cni-rs plugin id v1\x000.0.0\0host-local\0",
                    SECTION,
                    SHT_PROGBITS,
                ),
            ),
            (
                "other-section",
                elf(&expected("host-local"), ".cni_rs_idx", SHT_PROGBITS),
            ),
            ("nobits", elf(&expected("host-local"), SECTION, 8)),
            (
                "prefix",
                elf(&expected("host-local")[..20], SECTION, SHT_PROGBITS),
            ),
            (
                "trailing",
                elf(
                    &[expected("host-local"), vec![0]].concat(),
                    SECTION,
                    SHT_PROGBITS,
                ),
            ),
            ("empty", Vec::new()),
            ("short", b"\x7fELF\x02\x01".to_vec()),
        ];
        for (tag, content) in cases {
            let p = tmp(tag, &content);
            assert!(!binary_is(&p, "host-local"), "{tag}");
            std::fs::remove_file(p).unwrap();
        }
        // Every truncation of a good file, and every single-byte corruption
        // of its headers, is answered without a panic.
        let bytes = std::fs::read(&good).unwrap();
        for n in 0..bytes.len() {
            let p = tmp("trunc", &bytes[..n]);
            assert!(!binary_is(&p, "host-local"), "truncated to {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let p = tmp("flip", &b);
            let _ = binary_is(&p, "host-local");
        }
        let _ = std::fs::remove_file(tmp("trunc", b""));
        let _ = std::fs::remove_file(tmp("flip", b""));
        std::fs::remove_file(good).unwrap();
        assert!(!binary_is(
            Path::new("/nonexistent/host-local"),
            "host-local"
        ));
    }
}
