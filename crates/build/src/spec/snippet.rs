//! From a byte span of the spec to a line, a column and a quoted line with
//! carets under the place, as rustc shows them.

use std::ops::Range;

/// Where a span starts, and the snippet that shows it.
pub(super) struct Place {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// `   | <line>` and `   | <carets>`.
    pub snippet: String,
}

/// Locates `span` (byte offsets into `text`, clamped to it) in `text`.
pub(super) fn locate(text: &str, span: Range<usize>) -> Place {
    let start = floor_char_boundary(text, span.start);
    let end = floor_char_boundary(text, span.end.max(start));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_text = text[line_start..line_end].trim_end_matches('\r');
    let before = &text[line_start..start];
    let line = text[..start].matches('\n').count() + 1;
    let column = before.chars().count() + 1;

    // Keep tabs so the carets line up under the source however tabs render.
    let pad: String = before
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let under_end = end.min(line_start + line_text.len()).max(start);
    let width = text[start..under_end].chars().count().max(1);
    let snippet = format!("   | {line_text}\n   | {pad}{}", "^".repeat(width));
    Place {
        line,
        column,
        snippet,
    }
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}
