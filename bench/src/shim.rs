//! `cni-bench __spawn PROGRAM [ARGS...]`: a small launcher for peak-RSS
//! measurements.
//!
//! `ru_maxrss` of a child counts the memory map it had *before* exec, i.e. the
//! forked copy of its parent (Linux keeps the larger of the two high-water
//! marks). Forked straight from the bench (a few MiB resident) every plugin
//! would look at least as large as the bench. This launcher is a fresh, small
//! process: it forks (a copy of almost nothing), execs PROGRAM with the
//! inherited stdin/stdout/stderr and environment, reaps it with wait4(), and
//! appends one line `cni-bench-maxrss-kb=<N>` to stderr. Its exit status is
//! the child's.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

/// The marker line the launcher appends to stderr.
pub const MARKER: &str = "cni-bench-maxrss-kb=";

pub fn main(args: Vec<OsString>) -> i32 {
    let cargs: Vec<CString> = match args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<CString>, _>>()
    {
        Ok(v) if !v.is_empty() => v,
        _ => {
            eprintln!("cni-bench __spawn: usage: __spawn PROGRAM [ARGS...]");
            return 127;
        }
    };
    let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: single-threaded process; the child only calls execv and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!(
            "cni-bench __spawn: fork: {}",
            std::io::Error::last_os_error()
        );
        return 127;
    }
    if pid == 0 {
        // SAFETY: argv is a NULL-terminated array of valid C strings.
        unsafe {
            libc::execv(cargs[0].as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    // SAFETY: rusage is plain data written by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            eprintln!(
                "cni-bench __spawn: wait4: {}",
                std::io::Error::last_os_error()
            );
            return 127;
        }
    }
    eprint!("\n{MARKER}{}\n", usage.ru_maxrss);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// Takes the launcher's marker line out of `stderr`; returns its value.
pub fn take_maxrss(stderr: &mut Vec<u8>) -> Option<u64> {
    let text = String::from_utf8_lossy(stderr).into_owned();
    let pos = text.rfind(&format!("\n{MARKER}"))?;
    let value = text[pos + 1 + MARKER.len()..].trim().parse().ok()?;
    stderr.truncate(pos);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_taken_out() {
        let mut e = b"some log\n\ncni-bench-maxrss-kb=1234\n".to_vec();
        assert_eq!(take_maxrss(&mut e), Some(1234));
        assert_eq!(e, b"some log\n");
        let mut e = b"nothing".to_vec();
        assert_eq!(take_maxrss(&mut e), None);
    }
}
