//! Loading a site from the file system: a [`SourceLoader`] over local files and
//! the one call that gives a resolved [`Site`] (the CLI adds rendering in `cli::site`).
use std::path::{Path, PathBuf};

use ferry_lang::{Site, SourceLoader};

use crate::inventory::Providers;

/// Reads site files from the local file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsLoader;

/// Site files larger than this are refused (no real site comes close).
const MAX_SOURCE_BYTES: u64 = 256 * 1024 * 1024;

impl SourceLoader for FsLoader {
    fn load(&self, path: &Path) -> Result<String, String> {
        let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if metadata.is_dir() {
            return Err("it is a directory; name the site file (e.g. `site.conf`)".to_string());
        }
        if metadata.len() > MAX_SOURCE_BYTES {
            return Err(format!("the file is larger than {MAX_SOURCE_BYTES} bytes"));
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))
    }

    fn absolute(&self, path: &Path) -> PathBuf {
        std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Where the first byte that is not UTF-8 is, as `FILE:LINE:COLUMN`
/// (columns count characters), and what it is.
fn not_utf8(path: &Path, bytes: &[u8], error: std::str::Utf8Error) -> String {
    let good = &bytes[..error.valid_up_to()];
    // Everything before the bad byte is valid UTF-8 by definition.
    let good = std::str::from_utf8(good).unwrap_or_default();
    let line = good.matches('\n').count() + 1;
    let column = good.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!(
        "{}:{line}:{column}: byte 0x{:02x} is not UTF-8 (site files are UTF-8 text)",
        path.display(),
        bytes[error.valid_up_to()]
    )
}

/// The root file of a site given on the command line: a file, or a directory
/// holding `site.conf`.
pub fn site_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("site.conf")
    } else {
        path.to_path_buf()
    }
}

/// Parses and evaluates the site at `path` (a file, or a directory holding
/// `site.conf`) with ferry's inventory providers.
pub fn load_site(path: &Path) -> Result<Site, ferry_lang::Diagnostics> {
    ferry_lang::evaluate_site(&FsLoader, &site_file(path), &Providers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_utf8_names_the_line_and_column_of_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.conf");
        std::fs::write(
            &file,
            b"site = \"u\"\nclass w\xc3\xa9b {\n  x = \"r\xff\xfe\"\n}\n",
        )
        .unwrap();
        let error = FsLoader.load(&file).unwrap_err();
        assert_eq!(
            error,
            format!(
                "{}:3:9: byte 0xff is not UTF-8 (site files are UTF-8 text)",
                file.display()
            )
        );
    }
}
