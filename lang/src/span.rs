//! Source positions: every syntax node carries a [`Span`] into the file it came from.
use serde::{Deserialize, Serialize};

/// Index of a loaded source file in the evaluator's source table (and in
/// [`crate::Diagnostics::sources`]); `SourceId(0)` is the root file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceId(pub u32);

/// A byte range `start..end` in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// The source file the range is in.
    pub file: SourceId,
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset just past the last byte (never before `start`).
    pub end: u32,
}

impl Span {
    /// The span `start..end` in `file` (an `end` before `start` becomes `start`).
    pub fn new(file: SourceId, start: usize, end: usize) -> Span {
        // Source files are read whole into memory; a file over 4 GiB is refused
        // by the loader long before offsets could overflow.
        Span {
            file,
            start: start as u32,
            end: end.max(start) as u32,
        }
    }

    /// The smallest span covering both (they must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The number of bytes the span covers.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// True when the span covers no byte (a position between two bytes).
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// One line:column position (both 1-based, column counted in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineColumn {
    /// The 1-based line number.
    pub line: u32,
    /// The 1-based column, counted in characters from the line's start.
    pub column: u32,
}

/// The 1-based line and column of a byte offset in `text`.
pub fn line_column(text: &str, offset: usize) -> LineColumn {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() as u32 + 1;
    LineColumn { line, column }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}
