//! Embeds the dashboard's assets (`src/ui/assets`), compressed, for `memory_serve::load!`,
//! in debug builds too: a test binary serves exactly what a release serves.
fn main() {
    // SAFETY: the build script is single-threaded; this only silences memory-serve's
    // per-file `cargo:warning` lines.
    unsafe { std::env::set_var("MEMORY_SERVE_QUIET", "1") };
    memory_serve::load_directory_with_embed("./src/ui/assets", true);
}
