//! `jobs`: the same program as `jobctl`, under the name it had first, for scripts that call it
//! by path or through `env` (a shell's own `jobs` builtin shadows it at a prompt).

fn main() -> std::process::ExitCode {
    jobs::cli::main()
}
