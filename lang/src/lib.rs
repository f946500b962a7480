//! ferry-lang: the site language — parser, evaluator and diagnostics. No I/O of its own.
//!
//! The one entry point most callers need is [`evaluate_site`]:
//!
//! ```text
//! let site: model::Site = ferry_lang::evaluate_site(&loader, Path::new("sites/demo/site.conf"), &resolver)?;
//! ```
//!
//! - `loader` ([`SourceLoader`]) reads a file given its resolved path; the
//!   CLI implements it on the file system (`src/site.rs`), tests in memory.
//! - `resolver` ([`inventory::InventoryResolver`]) turns the site's
//!   `inventory = …` into hosts; the CLI's `inventory::Providers` does that.
//! - The result is the resolved [`model::Site`] (serde; its JSON is
//!   documented in `lang/EVAL-JSON.md`), or [`Diagnostics`]: every error
//!   found, with spans and hints, convertible into a [`miette::Report`].
//!
//! Modules: [`parse`] (nom parser to [`ast`]), [`pretty`] (AST back to
//! source), `eval` (lazy evaluator), [`model`] (the result), [`validate`]
//! (service graph checks), [`diagnostics`].
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

pub mod ast;
pub mod diagnostics;
mod eval;
pub mod inventory;
pub mod model;
pub mod parse;
pub mod pretty;
pub mod span;
pub mod validate;

pub use diagnostics::{Diagnostic, Diagnostics};
pub use model::Site;

/// Reads source files for the evaluator. The only way the language reads anything.
pub trait SourceLoader {
    /// The contents of the file at `path` (already resolved against the
    /// importing file's directory and normalized). The error text is shown to
    /// the user at the import that asked for the file.
    fn load(&self, path: &Path) -> Result<String, String>;

    /// `path` made absolute. Paths that leave the language (`path(…)`, an
    /// inventory file, a secret file) go through here, so the model holds
    /// absolute paths while diagnostics keep the paths as the user wrote them.
    /// The default keeps the path unchanged (for in-memory loaders).
    fn absolute(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

/// Parses and evaluates the site whose root file is `root`, resolving its
/// inventory with `resolver`. Pure apart from the loader and the resolver.
pub fn evaluate_site(
    loader: &dyn SourceLoader,
    root: &Path,
    resolver: &dyn inventory::InventoryResolver,
) -> Result<Site, Diagnostics> {
    eval::evaluate(loader, root, resolver)
}

/// Parses one file alone (no imports, no evaluation); for tools and fuzzing.
pub fn parse_source(text: &str) -> (ast::File, Vec<Diagnostic>) {
    parse::parse_file(span::SourceId(0), text)
}
