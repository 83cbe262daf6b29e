//! The `lifeboat` binary; everything lives in the workspace crates (see
//! `crates/cli/src/lib.rs` for the codemap).

fn main() -> std::process::ExitCode {
    tune_the_allocator();
    lifeboat_cli::main()
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Option numbers of mimalloc v3's `mi_option_e` (`include/mimalloc.h`;
/// libmimalloc-sys builds v3 unless its `v2` feature is on, and its bindings
/// name only the options v2 shares).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
const MI_OPTION_DESTROY_ON_EXIT: std::ffi::c_int = 22;

/// Two of mimalloc's options, set before any thread starts:
/// - `purge_delay` 1 ms (default 10): memory freed while a fleet is read (the
///   Resource Graph pages held while the templates render, rows once taken
///   in, rendered template text) goes back to the kernel at once rather than
///   staying resident until reused. A 200-hospital plan's peak RSS is ~172
///   MB instead of ~194 MB (five runs each, same wall time; ~0.05 s more
///   system time for the `madvise` calls).
/// - `destroy_on_exit` 2: mimalloc's exit handler would otherwise collect and
///   purge the whole heap, one `madvise` per span: after a 200-hospital plan
///   that is ~200 calls and ~15 ms of the command's wall time, for memory the
///   kernel takes back at exit anyway. The handler returns at once when the
///   option is above 1 (`_mi_auto_process_done` in v3's `src/init.c`); the
///   option matters only to a mimalloc loaded into a host that unloads it.
fn tune_the_allocator() {
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    // SAFETY: sets option words before any thread starts; the symbol is the
    // linked mimalloc's own.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, 1);
        mi_option_set(MI_OPTION_DESTROY_ON_EXIT, 2);
    }
}
