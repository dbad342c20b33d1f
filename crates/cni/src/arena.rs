//! The allocator of a one-shot plugin process: bump allocation from a fixed
//! arena, frees ignored, the system allocator once the arena is used up.
//!
//! A plugin allocates a few hundred KiB in total and exits within
//! milliseconds; returning memory to a free list is work nobody profits from,
//! and musl's allocator in particular is slow (BENCHMARKS.md: a musl build
//! with musl's malloc ran the bridge ADD 5 % slower than the glibc build; with
//! this arena, 11 % faster). The arena lives in `.bss`: pages never touched
//! cost nothing.
//!
//! Every byte of the arena is handed out at most once (the bump pointer only
//! moves forward), so a block is always memory the kernel gave us zeroed:
//! `alloc_zeroed` writes nothing, and no block can be reused while another
//! thread still holds it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// 8 MiB of address space, only touched as used.
const ARENA_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

// SAFETY: every byte range is handed out once (an atomic bump pointer
// decides who gets it); the arena itself is never read or written here.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));

/// Bytes of the arena handed out so far; only ever grows.
static USED: AtomicUsize = AtomicUsize::new(0);

/// A `#[global_allocator]` for one-shot processes (the plugin binaries;
/// [`plugin_main!`](crate::plugin_main) installs it).
pub struct OneShotAlloc;

fn base() -> usize {
    ARENA.0.get() as usize
}

fn in_arena(ptr: *mut u8) -> bool {
    let p = ptr as usize;
    p >= base() && p < base() + ARENA_SIZE
}

// SAFETY: blocks never overlap (the bump pointer only moves forward), are
// aligned as asked, arena memory is zero when handed out (never used before),
// and blocks not from the arena go to and come back from the system allocator.
unsafe impl GlobalAlloc for OneShotAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut used = USED.load(Ordering::Relaxed);
        loop {
            let start = (base() + used)
                .checked_next_multiple_of(layout.align())
                .map(|a| a - base());
            let end = match start.and_then(|s| s.checked_add(layout.size())) {
                Some(end) if end <= ARENA_SIZE => end,
                _ => return System.alloc(layout),
            };
            let start = end - layout.size();
            match USED.compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base() + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = self.alloc(layout);
        if !ptr.is_null() && !in_arena(ptr) {
            ptr.write_bytes(0, layout.size());
        }
        // Arena blocks are fresh pages: already zero, and left untouched.
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !in_arena(ptr) {
            System.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_arena(ptr) {
            return System.realloc(ptr, layout, new_size);
        }
        // A block that shrinks stays where it is.
        if new_size <= layout.size() {
            return ptr;
        }
        // The newest block grows in place, into memory never handed out: a
        // Vec being filled does not copy itself at every doubling.
        let start = ptr as usize - base();
        if let Some(end) = start.checked_add(new_size).filter(|e| *e <= ARENA_SIZE) {
            if USED
                .compare_exchange(
                    start + layout.size(),
                    end,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return ptr;
            }
        }
        let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size());
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocator's rules, exercised directly (tests run with the system
    /// allocator as the global one).
    #[test]
    fn blocks_are_aligned_disjoint_zero_and_the_newest_grows_in_place() {
        let a = OneShotAlloc;
        unsafe {
            let l8 = Layout::from_size_align(24, 8).unwrap();
            let p = a.alloc(l8);
            let q = a.alloc(Layout::from_size_align(3, 64).unwrap());
            assert!(in_arena(p) && in_arena(q));
            assert_eq!(q as usize % 64, 0);
            assert!(q as usize >= p as usize + 24);
            // q is the newest: it grows in place and keeps its bytes.
            q.write_bytes(7, 3);
            let q2 = a.realloc(q, Layout::from_size_align(3, 64).unwrap(), 100);
            assert_eq!(q, q2);
            assert_eq!(*q2.add(2), 7);
            // p is not: it moves, with its content; its old place is not reused.
            p.write_bytes(9, 24);
            let p2 = a.realloc(p, l8, 48);
            assert_ne!(p, p2);
            assert_eq!(*p2.add(23), 9);
            a.dealloc(p2, Layout::from_size_align(48, 8).unwrap());
            let z = a.alloc_zeroed(Layout::from_size_align(8192, 8).unwrap());
            assert!(
                z as usize > p2 as usize,
                "freed space is never handed out again"
            );
            assert!((0..8192).all(|i| *z.add(i) == 0));
            // Too large for the arena: the system's.
            let big = Layout::from_size_align(ARENA_SIZE + 1, 8).unwrap();
            let s = a.alloc_zeroed(big);
            assert!(!s.is_null() && !in_arena(s));
            assert_eq!(*s.add(ARENA_SIZE), 0);
            a.dealloc(s, big);
        }
    }
}
