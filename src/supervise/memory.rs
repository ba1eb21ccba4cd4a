//! Keeping plaintext out of a long-lived process's memory beyond our own (zeroized)
//! buffers: the AWS SDK's response buffers are freed, not wiped, and hashing copies input
//! through stack buffers. A supervisor lives for weeks, so both are wiped:
//!
//! * every block Rust code frees (ours and the SDK's) is zeroed first, once [`wipe_freed`]
//!   was called: the global allocator below. glibc's per-thread cache would otherwise keep
//!   small freed blocks (an SDK `String` holding a parameter's value) as they were until
//!   reused, which `M_PERTURB` does not reach;
//! * glibc's `M_PERTURB` as well, for what is freed outside Rust's allocator;
//! * after each use of plaintext, the stack below the main loop is overwritten.
//!
//! One-shot commands (exec, env, admin) and the daemon never turn wiping on: they pay
//! nothing but one relaxed load per free.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

static WIPE: AtomicBool = AtomicBool::new(false);

/// The system allocator, zeroing every block before it is freed (or moved by a realloc)
/// while wiping is on.
pub struct WipingAlloc;

#[global_allocator]
static GLOBAL: WipingAlloc = WipingAlloc;

/// Zero `n` bytes at `p` in a way the compiler keeps although the block is freed next.
///
/// # Safety
/// `p` must be valid for `n` bytes of writes.
unsafe fn wipe(p: *mut u8, n: usize) {
    // SAFETY: the caller's guarantee; zeroize writes volatilely and fences.
    zeroize::Zeroize::zeroize(unsafe { std::slice::from_raw_parts_mut(p, n) });
}

// SAFETY: every method forwards to `System` with the same layout; wiping only writes inside
// the block being freed, before it is freed.
unsafe impl GlobalAlloc for WipingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            if WIPE.load(Ordering::Relaxed) {
                wipe(ptr, layout.size());
            }
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            if !WIPE.load(Ordering::Relaxed) {
                return System.realloc(ptr, layout, new_size);
            }
            // A realloc may move the block and free the old one unwiped: move it ourselves.
            let new = Layout::from_size_align_unchecked(new_size, layout.align());
            let moved = System.alloc(new);
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                wipe(ptr, layout.size());
                System.dealloc(ptr, layout);
            }
            moved
        }
    }
}

/// Ask the allocator to overwrite freed memory (glibc; a no-op elsewhere).
pub fn wipe_freed() {
    WIPE.store(true, Ordering::Relaxed);
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt with a documented parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_PERTURB, 0xa5);
    }
}

/// Overwrite 64 KiB of the stack below the caller's frame (where the frames of the
/// functions it called, and their copies of plaintext, were).
#[inline(never)]
pub fn scrub_stack() {
    let mut buf = [0u8; 64 * 1024];
    zeroize::Zeroize::zeroize(&mut buf[..]);
    std::hint::black_box(&buf);
}
