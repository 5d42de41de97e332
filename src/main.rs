//! The `jobctl` binary: everything happens in the library; this only returns its exit code.
//! (`src/bin/jobs.rs` is the same program under its first name.)

fn main() -> std::process::ExitCode {
    jobs::cli::main()
}
