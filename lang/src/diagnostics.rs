//! Errors found in a site, with positions, and their conversion to miette reports.
//!
//! The crate collects [`Diagnostic`]s (plain data with [`Span`]s) and hands
//! them out as [`Diagnostics`], which owns the source texts so that the caller
//! can render carets without reading any file again.
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::span::{line_column, Span};

/// One problem in a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, in one line.
    pub message: String,
    /// Where the problem is; `None` for problems with no place in a file
    /// (e.g. the root file cannot be read).
    pub span: Option<Span>,
    /// Text under the caret.
    pub label: Option<String>,
    /// What to do about it ("did you mean `requires`?").
    pub hint: Option<String>,
    /// Other places worth showing ("opened here", "first declared here").
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    /// A diagnostic with `message` at `span`, with no label, hint or related places.
    pub fn new(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: Some(span),
            label: None,
            hint: None,
            related: Vec::new(),
        }
    }

    /// A diagnostic with no place in a file.
    pub fn without_span(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: None,
            label: None,
            hint: None,
            related: Vec::new(),
        }
    }

    /// The diagnostic with `label` under its caret.
    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    /// The diagnostic with `hint` as its advice.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// The diagnostic with `hint` as its advice when there is one (else unchanged).
    pub fn maybe_hint(mut self, hint: Option<String>) -> Diagnostic {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// The diagnostic with one more place to show, labelled `label`.
    pub fn related(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.related.push((span, label.into()));
        self
    }
}

/// "did you mean `x`?" for the closest of `candidates`, if one is close enough.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(name, candidate);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// The names in backticks, separated by commas (`` `a`, `b` ``), for
/// hints that list what exists.
pub(crate) fn quoted_list<I>(names: I) -> String
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A loaded source file, kept for rendering diagnostics.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the loader resolved it (shown in messages).
    pub path: PathBuf,
    /// The file's whole text.
    pub text: Arc<str>,
}

/// All problems found while evaluating a site, plus the sources they point into.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The problems, in source order (those without a place first).
    pub items: Vec<Diagnostic>,
    /// Every loaded file, indexed by [`crate::span::SourceId`].
    pub sources: Vec<SourceFile>,
}

impl Diagnostics {
    /// `file:line:column` of a span, for one-line listings.
    pub fn location(&self, span: Span) -> String {
        match self.sources.get(span.file.0 as usize) {
            Some(source) => {
                let lc = line_column(&source.text, span.start as usize);
                format!("{}:{}:{}", source.path.display(), lc.line, lc.column)
            }
            None => "<unknown>".to_string(),
        }
    }

    /// One miette report per diagnostic, each carrying its own source.
    pub fn reports(&self) -> Vec<DiagnosticReport> {
        self.items.iter().map(|d| self.report(d)).collect()
    }

    fn report(&self, diagnostic: &Diagnostic) -> DiagnosticReport {
        let mut labels = Vec::new();
        let mut source = None;
        let mut location = None;
        if let Some(span) = diagnostic.span {
            if let Some(file) = self.sources.get(span.file.0 as usize) {
                source = Some(file);
                location = Some(self.location(span));
                labels.push(LabeledSpan::new_primary_with_span(
                    diagnostic.label.clone(),
                    source_span(span),
                ));
            }
        }
        let mut notes: Vec<String> = Vec::new();
        for (span, text) in &diagnostic.related {
            match source {
                Some(file)
                    if self
                        .sources
                        .get(span.file.0 as usize)
                        .is_some_and(|f| f.path == file.path) =>
                {
                    labels.push(LabeledSpan::new_with_span(
                        Some(text.clone()),
                        source_span(*span),
                    ));
                }
                _ => {
                    // miette shows one source per report; a place in another
                    // file goes into the help text with its location.
                    notes.push(format!("{}: {}", text, self.location(*span)));
                }
            }
        }
        DiagnosticReport {
            message: diagnostic.message.clone(),
            location,
            source: source.map(|f| Excerpt {
                name: f.path.display().to_string(),
                text: f.text.clone(),
            }),
            labels,
            hint: match (diagnostic.hint.clone(), notes.is_empty()) {
                (hint, true) => hint,
                (Some(hint), false) => Some(format!("{hint}\n{}", notes.join("\n"))),
                (None, false) => Some(notes.join("\n")),
            },
        }
    }

    /// All diagnostics rendered as miette draws them, without colours: the
    /// text `ferry check` prints, and the text the failure fixtures pin.
    pub fn render_plain(&self) -> String {
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100)
                .with_links(false);
        let mut out = String::new();
        for report in self.reports() {
            // Rendering into a String cannot fail.
            let _ = handler.render_report(&mut out, &report);
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.items.len() {
            1 => write!(f, "the site has 1 error"),
            n => write!(f, "the site has {n} errors"),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostics> for miette::Report {
    fn from(diagnostics: Diagnostics) -> miette::Report {
        miette::Report::new(SiteErrors {
            title: diagnostics.to_string(),
            reports: diagnostics.reports(),
        })
    }
}

/// Every diagnostic of a site as one miette report (the diagnostics are its
/// `related` entries, each with its own source and carets).
#[derive(Debug)]
pub struct SiteErrors {
    title: String,
    reports: Vec<DiagnosticReport>,
}

impl fmt::Display for SiteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.title)
    }
}

impl std::error::Error for SiteErrors {}

impl miette::Diagnostic for SiteErrors {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(
            self.reports.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }
}

/// Snippets longer than this many bytes are cut to the span's own line, and
/// that line to [`EXCERPT_WINDOW`] bytes on either side of the span.
const MAX_SNIPPET: usize = 4096;
const EXCERPT_WINDOW: usize = 100;

/// A file's text as miette reads it for a snippet: as it is, unless the
/// snippet would be huge (a 10 MB one-line file), then a window of the
/// span's line, still numbered as in the file.
#[derive(Debug, Clone)]
struct Excerpt {
    name: String,
    text: Arc<str>,
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let text = self.text.as_bytes();
        let full = text.read_span(span, context_lines_before, context_lines_after)?;
        if full.data().len() <= MAX_SNIPPET {
            return Ok(Box::new(MietteSpanContents::new_named(
                self.name.clone(),
                full.data(),
                *full.span(),
                full.line(),
                full.column(),
                full.line_count(),
            )));
        }
        let start = span.offset().min(text.len());
        let line_start = text[..start]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line_end = text[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| start + i);
        let mut from = start.saturating_sub(EXCERPT_WINDOW).max(line_start);
        let mut to = (start + span.len().min(EXCERPT_WINDOW) + EXCERPT_WINDOW).min(line_end);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        while !self.text.is_char_boundary(to) {
            to += 1;
        }
        let line = text[..from].iter().filter(|&&b| b == b'\n').count();
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &text[from..to],
            SourceSpan::from(from..to),
            line,
            // The span's own column, as miette's header shows it.
            self.text[line_start..start].chars().count(),
            1,
        )))
    }
}

fn source_span(span: Span) -> SourceSpan {
    SourceSpan::from(span.start as usize..span.end as usize)
}

/// One diagnostic in miette's terms.
#[derive(Debug, Clone)]
pub struct DiagnosticReport {
    /// The diagnostic's message.
    pub message: String,
    /// `file:line:column` of the primary span.
    pub location: Option<String>,
    source: Option<Excerpt>,
    labels: Vec<LabeledSpan>,
    hint: Option<String>,
}

impl fmt::Display for DiagnosticReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DiagnosticReport {}

impl miette::Diagnostic for DiagnosticReport {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}
