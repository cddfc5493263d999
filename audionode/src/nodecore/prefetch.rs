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
        let start = data.as_ptr().cast::<i8>();
        let bytes = std::mem::size_of_val(data);
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: prefetching is a hint that never faults, and every
            // address hinted lies inside `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
            offset += LINE;
        }
        if bytes > 0 {
            // The last line, when `data` does not start on a line boundary.
            // SAFETY: as above; `bytes - 1` is inside `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(bytes - 1)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
