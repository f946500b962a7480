//! Build errors, rendered with the site line that declared the failing thing.
use std::path::PathBuf;

use ferry_lang::model::Origin;
use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

use super::sandbox::SandboxError;

/// A builder that ran and failed.
#[derive(Debug)]
pub struct BuilderFailure {
    /// The package.
    pub package: String,
    /// Where the site declares it.
    pub origin: Origin,
    /// How the builder failed.
    pub reason: SandboxError,
    /// The builder's log.
    pub log: PathBuf,
    /// The last lines of the log.
    pub tail: String,
}

/// A builder whose output the store refused (e.g. a self-reference).
#[derive(Debug)]
pub struct OutputFailure {
    /// The package.
    pub package: String,
    /// Where the site declares it.
    pub origin: Origin,
    /// The builder's log.
    pub log: PathBuf,
    /// Why the store refused it.
    pub source: ferry_store::StoreError,
}

/// Why a build did not produce every requested system.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Something names a package or file the site does not define.
    #[error("{what} is not defined in this site")]
    Unknown {
        /// What is named.
        what: String,
        /// Where.
        origin: Origin,
    },
    /// Packages (or files) need each other.
    #[error("packages depend on each other in a cycle: {}", chain.join(" → "))]
    Cycle {
        /// The cycle, in order.
        chain: Vec<String>,
        /// Where it starts.
        origin: Origin,
    },
    /// A package's source directory does not exist.
    #[error("the source of package `{package}` does not exist: {}", path.display())]
    MissingSource {
        /// The package.
        package: String,
        /// Its source path.
        path: PathBuf,
        /// Where the site declares it.
        origin: Origin,
    },
    /// A package's source could not be added to the store.
    #[error("cannot add the source of package `{package}` ({}) to the store: {source}", path.display())]
    Source {
        /// The package.
        package: String,
        /// Its source path.
        path: PathBuf,
        /// Where the site declares it.
        origin: Origin,
        /// Why.
        #[source]
        source: Box<ferry_store::StoreError>,
    },
    /// A builder ran and failed.
    #[error("package `{}` failed to build: {}", .0.package, .0.reason)]
    BuilderFailed(Box<BuilderFailure>),
    /// The store refused a builder's output.
    #[error("the output of package `{}` cannot be stored: {}", .0.package, .0.source)]
    Output(Box<OutputFailure>),
    /// A requested class is not in the site.
    #[error("unknown class `{class}`; the site has: {}", known.join(", "))]
    UnknownClass {
        /// The class asked for.
        class: String,
        /// The site's classes.
        known: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(Box<ferry_store::StoreError>),
    /// The site's Debian packages could not be made.
    #[error(transparent)]
    Debian(Box<super::debian::DebianError>),
    /// A class's system object could not be written.
    #[error("cannot write the system of class `{class}`: {source}")]
    System {
        /// The class.
        class: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<ferry_store::StoreError> for BuildError {
    fn from(error: ferry_store::StoreError) -> Self {
        BuildError::Store(Box::new(error))
    }
}

impl From<super::debian::DebianError> for BuildError {
    fn from(error: super::debian::DebianError) -> Self {
        BuildError::Debian(Box::new(error))
    }
}

impl BuildError {
    /// True when the site itself is wrong (exit 2), not the build (exit 1).
    pub fn is_bad_input(&self) -> bool {
        use super::debian::DebianError as D;
        matches!(
            self,
            BuildError::Unknown { .. }
                | BuildError::Cycle { .. }
                | BuildError::MissingSource { .. }
                | BuildError::UnknownClass { .. }
        ) || matches!(self, BuildError::Debian(e) if matches!(**e, D::NoLock { .. } | D::BadRoot { .. } | D::Lock { .. } | D::NoShell { .. }))
    }

    fn origin(&self) -> Option<&Origin> {
        match self {
            BuildError::Unknown { origin, .. }
            | BuildError::Cycle { origin, .. }
            | BuildError::MissingSource { origin, .. }
            | BuildError::Source { origin, .. } => Some(origin),
            BuildError::BuilderFailed(failure) => Some(&failure.origin),
            BuildError::Output(failure) => Some(&failure.origin),
            BuildError::Debian(error) => error.origin(),
            _ => None,
        }
    }
}

/// The declaring file's text and the span of `origin`'s line from its column.
fn snippet(origin: &Origin) -> Option<(NamedSource<String>, SourceSpan)> {
    let text = std::fs::read_to_string(&origin.file).ok()?;
    let mut offset = 0usize;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        if number + 1 == origin.line as usize {
            let column = (origin.column as usize).saturating_sub(1).min(line.len());
            let length = line.trim_end().len().saturating_sub(column).max(1);
            let name = origin.file.display().to_string();
            return Some((
                NamedSource::new(name, text.clone()),
                SourceSpan::from(offset + column..offset + column + length),
            ));
        }
        offset += line.len();
    }
    None
}

impl Diagnostic for BuildError {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        let help = match self {
            BuildError::MissingSource { .. } => {
                "`path(…)` is relative to the file that declares the package; check the spelling"
                    .to_string()
            }
            BuildError::Cycle { .. } => {
                "a package cannot be an input of itself, directly or through others".to_string()
            }
            BuildError::BuilderFailed(failure) => {
                let mut help = String::new();
                if !failure.tail.is_empty() {
                    help.push_str("last lines of the build log:\n");
                    for line in failure.tail.lines() {
                        help.push_str("  │ ");
                        help.push_str(line);
                        help.push('\n');
                    }
                }
                help.push_str(&format!("full log: {}", failure.log.display()));
                help
            }
            BuildError::Output(failure) => format!("full log: {}", failure.log.display()),
            BuildError::Debian(error) => error.hint()?,
            _ => return None,
        };
        Some(Box::new(help))
    }
}

/// A build error with the site line that declared the failing thing.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct LocatedBuildError {
    /// The error.
    pub error: BuildError,
    source_text: Option<NamedSource<String>>,
    span: Option<SourceSpan>,
}

impl From<BuildError> for LocatedBuildError {
    fn from(error: BuildError) -> Self {
        let found = error.origin().and_then(snippet);
        let (source_text, span) = match found {
            Some((source, span)) => (Some(source), Some(span)),
            None => (None, None),
        };
        LocatedBuildError {
            error,
            source_text,
            span,
        }
    }
}

impl Diagnostic for LocatedBuildError {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.error.help()
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source_text
            .as_ref()
            .map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let label = match self.error.origin() {
            Some(origin) => format!("declared here ({origin})"),
            None => "declared here".to_string(),
        };
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(label),
            span,
        ))))
    }
}
