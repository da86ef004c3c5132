//! The `credgate` binary; see `credgate --help`.

fn main() -> std::process::ExitCode {
    credgate::cli::main()
}
