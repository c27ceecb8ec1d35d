/// mimalloc: faster than glibc malloc on the proxy's many small, short-lived allocations, and it returns memory
/// instead of fragmenting per-thread arenas (peak RSS under thousands of streams).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    ccgate::cli::main()
}

/// Opts this process out of transparent huge pages.
///
/// mimalloc asks for huge pages on its arenas, so on kernels with THP in `madvise` or `always` mode a heap of
/// small per-connection buffers was backed by 2 MiB pages that are only partly used: an idle gateway sat at 29 MiB
/// RSS instead of 15, and 9,900 held streams at 435 MiB instead of 280 (`docs/benchmarks.md`). Page faults that
/// have to find or compact a huge page also stalled first bytes under a connection storm. The setting only affects
/// this process; `MIMALLOC_ALLOW_THP=0` would do the same but must be set before the process starts.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory of ours; on a kernel without
    // it the call fails with EINVAL, which changes nothing.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
