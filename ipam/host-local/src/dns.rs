//! `ipam.resolvConf`: a resolv.conf turned into the result's `dns`, parsed as
//! the reference parses it. Lines are trimmed; empty lines and lines starting
//! with `#` or `;` are skipped, as are lines with fewer than two fields;
//! `nameserver` appends its first argument, `domain` keeps the last one seen,
//! `search` and `options` append all their arguments (lines accumulate).
//! Anything else is ignored.

use std::path::Path;

use cni::{Dns, Error};

/// Parses resolv.conf text.
pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [key, args @ ..] = fields.as_slice() else {
            continue;
        };
        let Some(first) = args.first() else {
            continue;
        };
        match *key {
            "nameserver" => dns.nameservers.push(first.to_string()),
            "domain" => dns.domain = Some(first.to_string()),
            "search" => dns.search.extend(args.iter().map(|s| s.to_string())),
            "options" => dns.options.extend(args.iter().map(|s| s.to_string())),
            _ => {}
        }
    }
    dns
}

/// Reads and parses the file. A file that cannot be read fails ADD before any
/// address is reserved (code 7: the config names a file we cannot use).
pub fn load(path: &Path) -> Result<Dns, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::invalid_config(format!(
            "ipam.resolvConf: cannot read {}: {e}",
            path.display()
        ))
    })?;
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_reference() {
        let text = "\
# generated
; also a comment
nameserver 1.1.1.1
nameserver   8.8.8.8   # trailing words are ignored for nameserver
domain first.example
domain second.example extra
search a.example b.example
search c.example
options ndots:5 timeout:1
options rotate
sortlist 10.0.0.0/8
nameserver
   nameserver\t9.9.9.9\r
";
        let dns = parse(text);
        assert_eq!(dns.nameservers, ["1.1.1.1", "8.8.8.8", "9.9.9.9"]);
        assert_eq!(dns.domain.as_deref(), Some("second.example"));
        assert_eq!(dns.search, ["a.example", "b.example", "c.example"]);
        assert_eq!(dns.options, ["ndots:5", "timeout:1", "rotate"]);
    }

    #[test]
    fn empty_input_gives_empty_dns() {
        assert!(parse("").is_empty());
        assert!(parse("# nothing\n\n  \n").is_empty());
    }

    #[test]
    fn keywords_are_case_sensitive() {
        assert!(parse("Nameserver 1.1.1.1\nDOMAIN x\n").is_empty());
    }

    #[test]
    fn load_reads_a_file_and_reports_a_missing_one_as_code_7() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        std::fs::write(&p, b"nameserver 10.0.0.53\nsearch svc.local\n").unwrap();
        let dns = load(&p).unwrap();
        assert_eq!(dns.nameservers, ["10.0.0.53"]);
        assert_eq!(dns.search, ["svc.local"]);
        let e = load(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.code, cni::ErrorCode::INVALID_CONFIG);
        assert!(e.msg.contains("missing"), "{}", e.msg);
    }
}
