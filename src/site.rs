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
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }

    fn absolute(&self, path: &Path) -> PathBuf {
        std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
    }
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
