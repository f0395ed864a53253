//! The binaries' allocator. `ccdc` and `ccdc-bench` use mimalloc (`#[global_allocator]`): the
//! pipeline allocates many small, short-lived objects (rows, events, records), and glibc's allocator
//! spent ~20 % of the benchmarks' CPU in malloc/free (BENCHMARKS.md). mimalloc is built to commit
//! arena memory on demand (`.cargo/config.toml`): eagerly committed arenas kept the memory of the
//! first large poll resident (peak RSS 210–250 MB instead of ~150 MB).

/// `mi_option_arena_eager_commit` in the vendored mimalloc v3 (`mimalloc.h`, `mi_option_e`);
/// `libmimalloc-sys` does not export it as a constant.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// `mi_option_purge_delay`, likewise.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory may stay resident before mimalloc returns it to the OS. Its default,
/// 1 s, let a cycle's freed buffers pile up over the next few cycles of a 60,000-interaction
/// source (peak RSS +20 MB). P1 (BENCHMARKS.md, seventh round), side by side on one box: 100 ms
/// peaked at 98–109 MB (a first cycle's response and decoding buffers were still resident while
/// its 60,000 events were built), 50 ms at 94–95 MB, 20 ms at 88–91 MB; below 50 ms P2e's CPU per
/// row rose (10.1–11.5 µs at 20 ms against 9.6–10.5 at 50 and 100: more `madvise` calls and page
/// faults for the report path's large chunk buffers). Call first thing in `main` (mimalloc reads
/// this option at every purge, so it applies from then on).
pub fn configure() {
    // SAFETY: sets a plain integer option; no other thread runs yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 50) }
}

/// mimalloc's eager-commit setting in this build (0: on demand; mimalloc's own default is 2).
pub fn arena_eager_commit() -> i64 {
    // SAFETY: reads an integer option.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_number_is_right() {
        // Its default is 1000 ms, which no neighbouring option has.
        // SAFETY: reads an integer option.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, 1000);
    }

    #[test]
    fn mimalloc_is_built_to_commit_on_demand() {
        assert_eq!(
            super::arena_eager_commit(),
            0,
            "built without .cargo/config.toml's CFLAGS (or with CFLAGS overridden)"
        );
    }
}
