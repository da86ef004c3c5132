//! The `credgate` binary; see `credgate --help`.

/// A proxy allocates and frees buffers, headers and futures for every request on every worker
/// thread; mimalloc's thread-local free lists serve that pattern with far less contention and
/// consolidation work than glibc's malloc (measured in `benches/e2e`, see the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    credgate::cli::main()
}
