//! The `lifeboat` binary; everything lives in the workspace crates (see
//! `crates/cli/src/lib.rs` for the codemap).

fn main() -> std::process::ExitCode {
    lifeboat_cli::main()
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
