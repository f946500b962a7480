//! Fuzz target: evaluating any one-file site ends in a site or diagnostics.
#![no_main]
use std::path::Path;

use ferry_lang::inventory::{HostEntry, InventoryResolver, InventorySource};
use libfuzzer_sys::fuzz_target;

struct OneFile<'a>(&'a str);

impl ferry_lang::SourceLoader for OneFile<'_> {
    fn load(&self, path: &Path) -> Result<String, String> {
        if path == Path::new("site.conf") {
            Ok(self.0.to_string())
        } else {
            Err("not found".to_string())
        }
    }
}

struct NoHosts;

impl InventoryResolver for NoHosts {
    fn resolve(&self, _: &InventorySource) -> Result<Vec<HostEntry>, String> {
        Ok(Vec::new())
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(diagnostics) = ferry_lang::evaluate_site(&OneFile(text), Path::new("site.conf"), &NoHosts) {
            let _ = diagnostics.render_plain();
        }
    }
});
