//! Fuzz target: the parser accepts any text without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (file, errors) = ferry_lang::parse_source(text);
        // Every span must lie inside the input.
        for error in &errors {
            if let Some(span) = error.span {
                assert!(span.end as usize <= text.len());
            }
        }
        let _ = ferry_lang::pretty::file(&file);
    }
});
