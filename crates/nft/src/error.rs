//! One error type for the crate: what failed, with the context needed to act
//! on it, and a kind so callers can map it to a CNI code.

use std::fmt;

/// What went wrong, coarsely, for callers that map errors to CNI codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The `nft` binary is not installed (Debian package `nftables`).
    NftMissing,
    /// `nft` ran but refused the batch or the listing (its stderr is in the
    /// message).
    NftFailed,
    /// Starting `nft` or talking to it failed for another reason.
    Io,
    /// `nft` printed JSON we could not understand.
    BadOutput,
    /// CHECK: the rules in the kernel differ from the expected ones.
    Mismatch,
    /// The caller passed something we can't express (e.g. no rules at all).
    InvalidInput,
}

/// An error of this crate. `Display` gives context and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    context: String,
    detail: String,
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        context: impl Into<String>,
        detail: impl Into<String>,
    ) -> Error {
        Error {
            kind,
            context: context.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn missing(context: impl Into<String>) -> Error {
        Error::new(
            ErrorKind::NftMissing,
            context,
            "the `nft` binary was not found in PATH (nor in /usr/sbin, /sbin): install the Debian package `nftables`",
        )
    }

    pub(crate) fn mismatch(context: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::new(ErrorKind::Mismatch, context, detail)
    }

    pub(crate) fn invalid(context: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput, context, detail)
    }

    /// Prefixes more context ("masquerade ADD for net/ctr/eth0: ...").
    pub(crate) fn within(mut self, outer: impl fmt::Display) -> Error {
        self.context = if self.context.is_empty() {
            outer.to_string()
        } else {
            format!("{outer}: {}", self.context)
        };
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The `nft` binary is not installed.
    pub fn is_missing_binary(&self) -> bool {
        self.kind == ErrorKind::NftMissing
    }

    /// CHECK found a difference (as opposed to failing to look).
    pub fn is_mismatch(&self) -> bool {
        self.kind == ErrorKind::Mismatch
    }

    /// What was being done.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// What went wrong (nft's own message when it refused).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.context.is_empty(), self.detail.is_empty()) {
            (true, _) => f.write_str(&self.detail),
            (false, true) => f.write_str(&self.context),
            (false, false) => write!(f, "{}: {}", self.context, self.detail),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_context_and_detail() {
        let e = Error::new(
            ErrorKind::NftFailed,
            "apply batch",
            "Error: No such file or directory",
        )
        .within("masquerade ADD for n/c/eth0");
        assert_eq!(
            e.to_string(),
            "masquerade ADD for n/c/eth0: apply batch: Error: No such file or directory"
        );
        assert!(!e.is_missing_binary());
    }

    #[test]
    fn missing_binary_names_the_package() {
        let e = Error::missing("run nft");
        assert!(e.is_missing_binary());
        assert!(e.to_string().contains("Debian package `nftables`"), "{e}");
    }
}
