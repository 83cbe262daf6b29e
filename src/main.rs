//! The `lifeboat` binary; everything lives in the workspace crates (see
//! `crates/cli/src/lib.rs` for the codemap).

fn main() -> std::process::ExitCode {
    leave_the_heap_to_the_kernel();
    lifeboat_cli::main()
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's exit handler collects and purges the whole heap, one `madvise`
/// per span: after a 200-hospital plan that is ~200 calls and ~15 ms of the
/// command's wall time, for memory the kernel takes back at exit anyway. The
/// handler returns at once when the option `destroy_on_exit` is above 1
/// (`_mi_auto_process_done` in mimalloc v3's `src/init.c`); that option
/// matters only to a mimalloc loaded into a host that unloads it.
fn leave_the_heap_to_the_kernel() {
    /// `mi_option_destroy_on_exit` in mimalloc v3's `include/mimalloc.h`
    /// (libmimalloc-sys builds v3 unless its `v2` feature is on, and its
    /// bindings name only the options v2 shares).
    const MI_OPTION_DESTROY_ON_EXIT: std::ffi::c_int = 22;
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    // SAFETY: sets one option word before any thread starts; the symbol is
    // the linked mimalloc's own.
    unsafe { mi_option_set(MI_OPTION_DESTROY_ON_EXIT, 2) }
}
