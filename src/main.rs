//! The `jobs` binary: everything happens in the library; this only returns its exit code.

fn main() -> std::process::ExitCode {
    jobs::cli::main()
}
