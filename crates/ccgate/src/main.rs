/// mimalloc: faster than glibc malloc on the proxy's many small, short-lived allocations, and it returns memory
/// instead of fragmenting per-thread arenas (peak RSS under thousands of streams).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ccgate::cli::main()
}
