//! Ctrl-C / SIGTERM: the first one sets a flag; the run stops after the
//! invocation in flight and unwinds normally, so every sandbox is dropped
//! (namespaces deleted, lease directories removed). A second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // Second signal: the user insists. Nothing async-signal-unsafe here.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    let msg = b"\ncni-bench: interrupted, cleaning up (again to exit now)\n";
    // SAFETY: write(2) is async-signal-safe; the buffer is valid.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a plain handler that only touches an atomic and calls
        // async-signal-safe functions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// An error to unwind with when a signal arrived.
pub fn check() -> Result<(), String> {
    if stopped() {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}
