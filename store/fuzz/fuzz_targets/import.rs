//! Fuzzes `Store::import` with arbitrary bytes in both modes. Invariants checked after every
//! input: import never panics, and the store always verifies clean (nothing unverified was
//! registered, no reference dangles).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use ferry_store::{ImportMode, Store};
use libfuzzer_sys::fuzz_target;

/// A fixed store dir, so seed archives exported from a store there (see CONTRIBUTING-store.md)
/// carry paths this store accepts.
const STORE_DIR: &str = "/tmp/ferry-fuzz/store";

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let state = Path::new("/tmp/ferry-fuzz").join(format!("var-{}", std::process::id()));
        Store::open(Path::new(STORE_DIR), &state).expect("the fuzz store opens")
    })
}

fuzz_target!(|data: &[u8]| {
    let store = store();
    let _ = store.import(data, ImportMode::Atomic);
    let _ = store.import(data, ImportMode::Incremental);
    let report = store.verify(false).expect("verify runs");
    assert!(report.is_clean(), "import left the store inconsistent: {report:?}");
});
