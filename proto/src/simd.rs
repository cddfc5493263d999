//! Building a hot loop twice, for baseline x86-64 and for AVX2, and
//! choosing at run time.
//!
//! Release builds target baseline x86-64 (SSE2) so they run on any
//! x86-64 machine; the receive and mixing paths' per-sample loops run
//! about twice the lanes per instruction with AVX2, which nearly every
//! server has. [`with_avx2!`](crate::with_avx2) writes the dispatching
//! function: the choice is std's cached CPU-feature lookup (one atomic
//! load, no system call), and both builds perform the same operations in
//! the same order, so results are bit-identical whichever runs.

/// Defines `$vis fn $name(args) -> ret`, which runs `$body(args)` (an
/// `#[inline(always)]` function, so each build inlines its own copy)
/// compiled with AVX2 when the CPU has it, else as baseline code.
#[macro_export]
macro_rules! with_avx2 {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident) => {
        $(#[$meta])*
        #[inline]
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU was just found to have AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
