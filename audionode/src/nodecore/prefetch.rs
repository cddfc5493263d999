//! Software prefetch: asking the CPU to start loading memory that a loop
//! will read a little later, so the load overlaps other work instead of
//! stalling it.
//!
//! The mixing loop reads a block from every source's ring in turn. Each
//! source's samples were written one jitter-target earlier (tens of
//! milliseconds, megabytes of other sources' traffic ago), so they have
//! left the caches, and the hardware prefetcher cannot guess the jump from
//! one source's ring to the next: without a hint, the read of every source
//! waits for memory (two thirds of the ring read's time in a profile at
//! 1000 sources).

/// Bytes in a cache line on the CPUs this runs on.
const LINE: usize = 64;

/// Hints that `data` will be read soon. A hint only: it never faults and
/// changes no result, and it compiles to nothing where the target has no
/// prefetch instruction.
#[inline]
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(data);
        if bytes == 0 {
            return;
        }
        // Every line `data` touches, once, from the line it starts in.
        let skip = data.as_ptr() as usize % LINE;
        let first = data.as_ptr().cast::<i8>().wrapping_sub(skip);
        let mut offset = 0;
        while offset < skip + bytes {
            // SAFETY: prefetching is a hint that never faults; every
            // address hinted is in a cache line `data` occupies.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(offset)) };
            offset += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
