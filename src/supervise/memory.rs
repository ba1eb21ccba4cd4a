//! Keeping plaintext out of a long-lived process's memory beyond our own (zeroized)
//! buffers: the AWS SDK's response buffers are freed, not wiped, and hashing copies input
//! through stack buffers. A supervisor lives for weeks, so both are wiped:
//!
//! * glibc's `M_PERTURB`: every freed block is overwritten (and every new one filled), so
//!   what the SDK frees does not linger. glibc's per-thread cache keeps small blocks
//!   unwiped until reused; those are overwritten by the next refresh's same-sized
//!   allocations.
//! * after each use of plaintext, the stack below the main loop is overwritten.

/// Ask the allocator to overwrite freed memory (glibc; a no-op elsewhere).
pub fn wipe_freed() {
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
