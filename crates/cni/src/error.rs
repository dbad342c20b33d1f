//! CNI errors: a code from the spec's table, a message and details. The
//! dispatcher prints them as the spec's JSON on stdout.

use std::fmt;

/// A CNI error code. 1-99 belong to the spec (plus libcni's 8 and 999);
/// 100 and up are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const INCOMPATIBLE_VERSION: ErrorCode = ErrorCode(1);
    pub const UNSUPPORTED_FIELD: ErrorCode = ErrorCode(2);
    pub const UNKNOWN_CONTAINER: ErrorCode = ErrorCode(3);
    pub const INVALID_ENV: ErrorCode = ErrorCode(4);
    pub const IO_FAILURE: ErrorCode = ErrorCode(5);
    pub const DECODING_FAILURE: ErrorCode = ErrorCode(6);
    pub const INVALID_CONFIG: ErrorCode = ErrorCode(7);
    /// libcni's ErrInvalidNetNS: CNI_NETNS is unusable or is the plugin's own.
    pub const INVALID_NETNS: ErrorCode = ErrorCode(8);
    pub const TRY_AGAIN_LATER: ErrorCode = ErrorCode(11);
    /// STATUS: the plugin cannot serve ADD now.
    pub const NOT_AVAILABLE: ErrorCode = ErrorCode(50);
    /// STATUS: cannot serve ADD, and existing containers are degraded.
    pub const NOT_AVAILABLE_DEGRADED: ErrorCode = ErrorCode(51);
    /// Our plugin-specific failures (kernel refused, state inconsistent, ...).
    pub const PLUGIN: ErrorCode = ErrorCode(100);
    /// IPAM: no free address in a range set.
    pub const NO_ADDRESS: ErrorCode = ErrorCode(101);
    /// CHECK found the container's state differs from the result.
    pub const CHECK_FAILED: ErrorCode = ErrorCode(102);
    /// libcni's ErrInternal: a bug (a caught panic), never bad input.
    pub const INTERNAL: ErrorCode = ErrorCode(999);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A CNI error as the spec defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl Error {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Error {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Error {
        self.details = details.into();
        self
    }

    pub fn incompatible_version(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::INCOMPATIBLE_VERSION, msg)
    }
    pub fn unsupported_field(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::UNSUPPORTED_FIELD, msg)
    }
    pub fn invalid_env(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::INVALID_ENV, msg)
    }
    pub fn io(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::IO_FAILURE, msg)
    }
    pub fn decoding(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::DECODING_FAILURE, msg)
    }
    pub fn invalid_config(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::INVALID_CONFIG, msg)
    }
    pub fn invalid_netns(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::INVALID_NETNS, msg)
    }
    pub fn try_again_later(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::TRY_AGAIN_LATER, msg)
    }
    pub fn plugin(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::PLUGIN, msg)
    }
    pub fn check_failed(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::CHECK_FAILED, msg)
    }

    /// The spec's error JSON. `cni_version` is the config's version string as the
    /// runtime sent it (even an unsupported one, so the runtime can read the reply).
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("cniVersion".into(), cni_version.into());
        obj.insert("code".into(), self.code.0.into());
        obj.insert("msg".into(), self.msg.clone().into());
        if !self.details.is_empty() {
            obj.insert("details".into(), self.details.clone().into());
        }
        serde_json::Value::Object(obj)
    }

    /// Parses an error a delegated plugin printed. `None` when it is not one.
    pub fn from_json(value: &serde_json::Value) -> Option<Error> {
        let code = value.get("code")?.as_u64()?;
        let code = u32::try_from(code).ok()?;
        Some(Error {
            code: ErrorCode(code),
            msg: value
                .get("msg")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string(),
            details: value
                .get("details")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string(),
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_has_version_code_msg_and_optional_details() {
        let e = Error::invalid_env("bad ifname");
        let j = e.to_json("1.0.0");
        assert_eq!(
            j,
            serde_json::json!({"cniVersion": "1.0.0", "code": 4, "msg": "bad ifname"})
        );
        let j = e.with_details("too long").to_json("0.4.0");
        assert_eq!(j["details"], "too long");
        assert_eq!(j["cniVersion"], "0.4.0");
    }

    #[test]
    fn parses_a_delegated_plugins_error() {
        let v = serde_json::json!({"cniVersion": "1.0.0", "code": 11, "msg": "busy", "details": "etcd"});
        let e = Error::from_json(&v).unwrap();
        assert_eq!(e.code, ErrorCode::TRY_AGAIN_LATER);
        assert_eq!(e.msg, "busy");
        assert_eq!(e.details, "etcd");
        assert!(Error::from_json(&serde_json::json!({"msg": "no code"})).is_none());
        assert!(Error::from_json(&serde_json::json!({"code": -1})).is_none());
    }

    #[test]
    fn display_names_code_and_details() {
        let e = Error::plugin("veth failed").with_details("EEXIST");
        assert_eq!(e.to_string(), "veth failed (code 100): EEXIST");
    }
}
