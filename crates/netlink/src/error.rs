//! The crate's one error type: what we were doing (with the link, address or
//! namespace concerned) plus the cause, with helpers for the two cases callers
//! branch on: "it is not there" and "it is already there".

use std::fmt;
use std::io;

/// What went wrong, without the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The kernel answered with an errno (netlink NACK or a failed syscall).
    Os,
    /// The caller passed something we refuse before asking the kernel
    /// (a bad interface name, a sysctl key escaping /proc/sys, mixed families).
    InvalidInput,
    /// A link with the wanted name exists but is of another kind
    /// (e.g. `ensure_bridge` found a veth).
    WrongKind,
    /// The netlink conversation itself failed (unexpected reply, closed socket).
    Protocol,
    /// A dump kept being interrupted by concurrent changes (its answer
    /// could miss entries); asking again later may succeed.
    Interrupted,
}

/// An error with the operation it happened in, e.g.
/// `delete link 12 (netns /run/netns/x): No such device (os error 19)`.
#[derive(Debug)]
pub struct Error {
    context: String,
    kind: ErrorKind,
    errno: Option<i32>,
    detail: String,
}

impl Error {
    /// An errno-carrying error; `errno` is positive (e.g. `libc::EEXIST`).
    pub(crate) fn os(context: impl Into<String>, errno: i32) -> Error {
        Error {
            context: context.into(),
            kind: ErrorKind::Os,
            errno: Some(errno),
            detail: io::Error::from_raw_os_error(errno).to_string(),
        }
    }

    /// An error of an I/O call (socket, send, receive) in `context`: kind
    /// [`ErrorKind::Os`] with the errno when it has one.
    pub fn from_io(context: impl Into<String>, err: io::Error) -> Error {
        Error::io(context, err)
    }

    pub(crate) fn io(context: impl Into<String>, err: io::Error) -> Error {
        match err.raw_os_error() {
            Some(errno) => Error::os(context, errno),
            None => Error {
                context: context.into(),
                kind: ErrorKind::Protocol,
                errno: None,
                detail: err.to_string(),
            },
        }
    }

    pub(crate) fn invalid(context: impl Into<String>, detail: impl Into<String>) -> Error {
        Error {
            context: context.into(),
            kind: ErrorKind::InvalidInput,
            errno: None,
            detail: detail.into(),
        }
    }

    pub(crate) fn wrong_kind(context: impl Into<String>, detail: impl Into<String>) -> Error {
        Error {
            context: context.into(),
            kind: ErrorKind::WrongKind,
            errno: None,
            detail: detail.into(),
        }
    }

    /// A kernel NACK: netlink carries the errno negative; we store it positive.
    pub(crate) fn nack(context: impl Into<String>, raw_code: i32) -> Error {
        Error::os(context, raw_code.saturating_abs())
    }

    pub(crate) fn protocol(context: impl Into<String>, detail: impl Into<String>) -> Error {
        Error {
            context: context.into(),
            kind: ErrorKind::Protocol,
            errno: None,
            detail: detail.into(),
        }
    }

    pub(crate) fn interrupted(context: impl Into<String>, detail: impl Into<String>) -> Error {
        Error {
            context: context.into(),
            kind: ErrorKind::Interrupted,
            errno: None,
            detail: detail.into(),
        }
    }

    /// Adds an outer context: `"{outer}: {inner context}"`.
    pub(crate) fn within(mut self, outer: impl fmt::Display) -> Error {
        self.context = format!("{outer}: {}", self.context);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The positive errno when the kernel reported one (`libc::ENODEV`, ...).
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// The operation this error happened in (without the cause).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The thing is not there: no such link (ENODEV), no such entry (ENOENT),
    /// no such route (ESRCH), no such device or address (ENXIO) or no such
    /// address on the link (EADDRNOTAVAIL, what deleting a missing address gives).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno,
            Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::ENXIO | libc::EADDRNOTAVAIL)
        )
    }

    /// The thing is already there (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno == Some(libc::EEXIST)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.detail)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_codes_arrive_negative_and_are_stored_positive() {
        let err = Error::nack("create link br0", -libc::EEXIST);
        assert_eq!(err.errno(), Some(libc::EEXIST));
        assert!(err.is_exists());
        assert!(!err.is_not_found());
        assert_eq!(err.kind(), ErrorKind::Os);
        let text = err.to_string();
        assert!(text.starts_with("create link br0: "), "{text}");
        assert!(text.contains("exists"), "{text}");
    }

    #[test]
    fn not_found_covers_every_missing_errno() {
        for errno in [
            libc::ENODEV,
            libc::ENOENT,
            libc::ESRCH,
            libc::ENXIO,
            libc::EADDRNOTAVAIL,
        ] {
            let err = Error::os("x", errno);
            assert!(err.is_not_found(), "{errno}");
            assert!(!err.is_exists());
        }
        assert!(!Error::os("x", libc::EPERM).is_not_found());
        assert!(!Error::invalid("x", "bad").is_not_found());
    }

    #[test]
    fn io_errors_keep_their_errno_and_within_prefixes_context() {
        let err = Error::io(
            "open netns /nope",
            io::Error::from_raw_os_error(libc::ENOENT),
        )
        .within("connect");
        assert!(err.is_not_found());
        assert_eq!(err.context(), "connect: open netns /nope");
        let err = Error::io("x", io::Error::other("custom"));
        assert_eq!(err.errno(), None);
        assert_eq!(err.kind(), ErrorKind::Protocol);
    }
}
