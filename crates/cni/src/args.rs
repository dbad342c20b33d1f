//! CNI_ARGS: `K=V;K=V`. Like the Go reference, keys a plugin does not know are
//! an error unless `IgnoreUnknown` is true ("1"/"true", any case).

use crate::error::Error;

/// Parsed CNI_ARGS, in order of appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

/// Keys every runtime may send (kubelet sends the K8S_* ones with IgnoreUnknown=1,
/// others send them alone); accepting them keeps plugins usable under CRI.
pub const COMMON_KEYS: &[&str] = &[
    "IgnoreUnknown",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

impl CniArgs {
    /// Parses `K=V;K=V`. Empty segments are ignored; a segment without `=` or
    /// with an empty key is an error (code 4).
    pub fn parse(s: &str) -> Result<CniArgs, Error> {
        let mut pairs = Vec::new();
        for seg in s.split(';') {
            if seg.is_empty() {
                continue;
            }
            let (k, v) = seg.split_once('=').ok_or_else(|| {
                Error::invalid_env(format!(
                    "CNI_ARGS: invalid pair {seg:?}: expected KEY=VALUE"
                ))
            })?;
            if k.is_empty() {
                return Err(Error::invalid_env(format!(
                    "CNI_ARGS: invalid pair {seg:?}: empty key"
                )));
            }
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(CniArgs { pairs })
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The pairs as a CNI_ARGS value (`K=V;K=V`) that parses back to them.
    pub fn to_env_string(&self) -> String {
        let pairs: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(";")
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn ignore_unknown(&self) -> bool {
        self.get("IgnoreUnknown")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// Rejects keys outside `known` and [`COMMON_KEYS`] unless IgnoreUnknown.
    pub fn check_known(&self, known: &[&str]) -> Result<(), Error> {
        if self.ignore_unknown() {
            return Ok(());
        }
        for (k, _) in &self.pairs {
            if !known.contains(&k.as_str()) && !COMMON_KEYS.contains(&k.as_str()) {
                return Err(Error::invalid_env(format!(
                    "CNI_ARGS: unknown key {k:?} (set IgnoreUnknown=1 to allow it)"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_ignores_empty_segments() {
        let a = CniArgs::parse("IP=10.0.0.5;;MAC=aa:bb:cc:dd:ee:ff;X=a=b;").unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("MAC"), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(a.get("X"), Some("a=b"));
        assert_eq!(a.get("nope"), None);
        assert!(CniArgs::parse("").unwrap().is_empty());
    }

    #[test]
    fn env_string_parses_back_to_the_same_pairs() {
        for s in [
            "",
            "IP=10.0.0.5;;MAC=aa:bb:cc:dd:ee:ff;X=a=b;",
            "A=;B=1;A=2",
        ] {
            let a = CniArgs::parse(s).unwrap();
            assert_eq!(CniArgs::parse(&a.to_env_string()).unwrap(), a, "{s}");
        }
    }

    #[test]
    fn later_values_win() {
        let a = CniArgs::parse("IP=1.1.1.1;IP=2.2.2.2").unwrap();
        assert_eq!(a.get("IP"), Some("2.2.2.2"));
    }

    #[test]
    fn malformed_pairs_are_code_4() {
        for bad in ["IP", "=v", "A=1;B"] {
            let e = CniArgs::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::INVALID_ENV, "{bad}");
        }
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        let a = CniArgs::parse("FOO=1").unwrap();
        assert!(a.check_known(&["IP"]).is_err());
        for ignore in ["1", "true", "TRUE", "True"] {
            let a = CniArgs::parse(&format!("FOO=1;IgnoreUnknown={ignore}")).unwrap();
            assert!(a.check_known(&["IP"]).is_ok(), "{ignore}");
        }
        let a = CniArgs::parse("FOO=1;IgnoreUnknown=0").unwrap();
        assert!(a.check_known(&["IP"]).is_err());
        let a = CniArgs::parse("IP=1.2.3.4;K8S_POD_NAME=x").unwrap();
        assert!(a.check_known(&["IP"]).is_ok());
    }
}
