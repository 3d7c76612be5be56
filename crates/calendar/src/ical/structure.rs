//! A line-level check of iCalendar text before it is parsed.
//!
//! calcard's parser is lenient by design (it recovers what it can from damaged files, which
//! is right for importing), so a body cut off mid-object parses into a calendar that looks
//! whole. A CalDAV server must not store that: this scanner walks the unfolded content
//! lines (RFC 5545 §3.1) and names the first structural fault with its line number. It is
//! hand-written because it is the strictness no parser crate offers; it does not build
//! anything, calcard still does the parsing.

use std::fmt;

/// What is structurally wrong with a body, and on which (physical, 1-based) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructureError {
    pub line: usize,
    pub fault: StructureFault,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StructureFault {
    Empty,
    /// A continuation line (leading space or tab) with no content line before it.
    FoldWithoutLine,
    /// A content line with no `:` between name and value (outside quoted parameters).
    NoColon {
        text: String,
    },
    /// A parameter value opened a `"` that the line never closes.
    UnclosedQuote {
        text: String,
    },
    /// The property name is empty or holds characters names cannot have.
    BadName {
        text: String,
    },
    /// `BEGIN:` or `END:` with no component name.
    EmptyComponentName,
    /// END for a component that is not the one open.
    Misnested {
        end: String,
        open: String,
        open_line: usize,
    },
    /// END with nothing open.
    EndWithoutBegin {
        end: String,
    },
    /// The body ends while components are still open (a truncated upload).
    Unclosed {
        component: String,
        begin_line: usize,
    },
    /// A content line outside BEGIN:VCALENDAR ... END:VCALENDAR.
    OutsideCalendar {
        text: String,
    },
    /// The outermost component is not VCALENDAR.
    NotCalendar {
        component: String,
    },
    /// A second VCALENDAR after the first closed.
    SecondCalendar,
}

impl fmt::Display for StructureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.line;
        match &self.fault {
            StructureFault::Empty => write!(f, "empty body"),
            StructureFault::FoldWithoutLine => write!(
                f,
                "line {line}: continuation line (starts with a space or tab) with no line to continue"
            ),
            StructureFault::NoColon { text } => write!(
                f,
                "line {line}: `{text}` has no ':' between property name and value \
                 (a folded line must start with a space or tab)"
            ),
            StructureFault::UnclosedQuote { text } => {
                write!(f, "line {line}: `{text}` opens a quoted parameter value it never closes")
            }
            StructureFault::BadName { text } => {
                write!(f, "line {line}: `{text}` does not start with a property name")
            }
            StructureFault::EmptyComponentName => {
                write!(f, "line {line}: BEGIN or END without a component name")
            }
            StructureFault::Misnested {
                end,
                open,
                open_line,
            } => write!(
                f,
                "line {line}: END:{end} while {open} (BEGIN at line {open_line}) is still open"
            ),
            StructureFault::EndWithoutBegin { end } => {
                write!(f, "line {line}: END:{end} without a matching BEGIN:{end}")
            }
            StructureFault::Unclosed {
                component,
                begin_line,
            } => write!(
                f,
                "unclosed component {component}: BEGIN:{component} at line {begin_line} has no \
                 END:{component} before the body ends at line {line} (truncated upload?)"
            ),
            StructureFault::OutsideCalendar { text } => write!(
                f,
                "line {line}: `{text}` is outside BEGIN:VCALENDAR ... END:VCALENDAR"
            ),
            StructureFault::NotCalendar { component } => write!(
                f,
                "line {line}: BEGIN:{component} where BEGIN:VCALENDAR was expected"
            ),
            StructureFault::SecondCalendar => {
                write!(f, "line {line}: a second VCALENDAR; a resource holds one")
            }
        }
    }
}

/// Checks that `text` is one well-formed VCALENDAR: every content line has a name and a
/// colon, folding continues a line, and BEGIN/END pairs nest and all close.
pub fn check(text: &str) -> Result<(), StructureError> {
    // Open components, innermost last: (name, line of its BEGIN).
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut calendar_closed = false;
    let mut last_line = 0;
    for line in logical_lines(text) {
        let line = line?;
        last_line = line.last;
        let fail = |fault| {
            Err(StructureError {
                line: line.first,
                fault,
            })
        };
        let (name, value) = split_content_line(&line.text).map_err(|fault| StructureError {
            line: line.first,
            fault,
        })?;
        let component = value.trim().to_ascii_uppercase();
        if name.eq_ignore_ascii_case("BEGIN") {
            if component.is_empty() {
                return fail(StructureFault::EmptyComponentName);
            }
            if open.is_empty() {
                if calendar_closed {
                    return fail(StructureFault::SecondCalendar);
                }
                if component != "VCALENDAR" {
                    return fail(StructureFault::NotCalendar { component });
                }
            }
            open.push((component, line.first));
        } else if name.eq_ignore_ascii_case("END") {
            if component.is_empty() {
                return fail(StructureFault::EmptyComponentName);
            }
            match open.pop() {
                None => return fail(StructureFault::EndWithoutBegin { end: component }),
                Some((begun, _)) if begun == component => {
                    if open.is_empty() {
                        calendar_closed = true;
                    }
                }
                Some((begun, begin_line)) => {
                    return fail(StructureFault::Misnested {
                        end: component,
                        open: begun,
                        open_line: begin_line,
                    })
                }
            }
        } else if open.is_empty() {
            return fail(StructureFault::OutsideCalendar {
                text: clip(&line.text),
            });
        }
    }
    // The innermost open component is where the body was cut.
    if let Some((component, begin_line)) = open.pop() {
        return Err(StructureError {
            line: last_line,
            fault: StructureFault::Unclosed {
                component,
                begin_line,
            },
        });
    }
    if !calendar_closed {
        return Err(StructureError {
            line: last_line.max(1),
            fault: StructureFault::Empty,
        });
    }
    Ok(())
}

/// One unfolded content line and the physical lines it spans.
struct LogicalLine {
    first: usize,
    last: usize,
    text: String,
}

/// Unfolds physical lines (CRLF or bare LF; blank lines are skipped, as every client
/// tolerates them) into content lines.
fn logical_lines(text: &str) -> impl Iterator<Item = Result<LogicalLine, StructureError>> + '_ {
    let mut physical = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .peekable();
    std::iter::from_fn(move || loop {
        let (number, line) = physical.next()?;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            return Some(Err(StructureError {
                line: number,
                fault: StructureFault::FoldWithoutLine,
            }));
        }
        let mut logical = LogicalLine {
            first: number,
            last: number,
            text: line.to_owned(),
        };
        while let Some((next_number, next)) = physical.peek() {
            let Some(rest) = next.strip_prefix([' ', '\t']) else {
                break;
            };
            logical.text.push_str(rest);
            logical.last = *next_number;
            physical.next();
        }
        return Some(Ok(logical));
    })
}

/// Splits a content line into its name and value: `name *(";" param) ":" value`, where a
/// parameter value may be quoted and hold `:` and `;`.
fn split_content_line(line: &str) -> Result<(&str, &str), StructureFault> {
    let name_end = line.find([';', ':']).unwrap_or(line.len());
    let name = &line[..name_end];
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !name_ok {
        // A name with a space in it is most often a broken fold of the previous line.
        return Err(if line.contains(':') {
            StructureFault::BadName { text: clip(line) }
        } else {
            StructureFault::NoColon { text: clip(line) }
        });
    }
    let mut in_quotes = false;
    for (i, c) in line[name_end..].char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => return Ok((name, &line[name_end + i + 1..])),
            _ => {}
        }
    }
    Err(if in_quotes {
        StructureFault::UnclosedQuote { text: clip(line) }
    } else {
        StructureFault::NoColon { text: clip(line) }
    })
}

fn clip(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(MAX).collect::<String>())
    }
}

/// Where a body stops being UTF-8: "line L, byte B" for the error message.
pub fn utf8_error_position(body: &[u8], error: &std::str::Utf8Error) -> String {
    let valid = &body[..error.valid_up_to()];
    let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = valid.len() - valid.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
    let byte = body.get(error.valid_up_to()).copied().unwrap_or(0);
    format!(
        "invalid UTF-8 byte 0x{byte:02X} at line {line}, column {column} (byte offset {})",
        error.valid_up_to()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:a@b\r\nDTSTART;TZID=\"Europe/Berlin:x\":20260105T100000\r\nDESCRIPTION:long\r\n  folded\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn fault(text: &str) -> StructureError {
        check(text).expect_err("refused")
    }

    #[test]
    fn well_formed_passes_also_with_bare_lf_and_blank_lines() {
        check(GOOD).unwrap();
        check(&GOOD.replace("\r\n", "\n")).unwrap();
        check(&format!("{GOOD}\r\n\r\n")).unwrap();
    }

    #[test]
    fn truncated_body_names_the_unclosed_component_and_its_line() {
        let cut = &GOOD[..GOOD.find("END:VEVENT").unwrap()];
        let error = fault(cut);
        assert_eq!(
            error.fault,
            StructureFault::Unclosed {
                component: "VEVENT".into(),
                begin_line: 4
            }
        );
        assert_eq!(error.line, 8);
        assert!(
            error.to_string().contains("BEGIN:VEVENT at line 4"),
            "{error}"
        );
        let no_calendar_end = GOOD.replace("END:VCALENDAR\r\n", "");
        assert!(matches!(
            fault(&no_calendar_end).fault,
            StructureFault::Unclosed { ref component, begin_line: 1 } if component == "VCALENDAR"
        ));
    }

    #[test]
    fn misnested_and_unbalanced_ends_are_refused() {
        let swapped = GOOD.replace("END:VEVENT\r\nEND:VCALENDAR", "END:VCALENDAR\r\nEND:VEVENT");
        let error = fault(&swapped);
        assert_eq!(error.line, 9);
        assert_eq!(
            error.fault,
            StructureFault::Misnested {
                end: "VCALENDAR".into(),
                open: "VEVENT".into(),
                open_line: 4
            }
        );
        let extra_end = GOOD.replace("END:VEVENT", "END:VALARM\r\nEND:VEVENT");
        assert!(matches!(
            fault(&extra_end).fault,
            StructureFault::Misnested { .. }
        ));
        let end_after = format!("{GOOD}END:VEVENT\r\n");
        assert!(matches!(
            fault(&end_after).fault,
            StructureFault::EndWithoutBegin { .. }
        ));
    }

    #[test]
    fn line_without_colon_and_broken_fold_are_refused() {
        let no_colon = GOOD.replace("UID:a@b", "UID a@b");
        let error = fault(&no_colon);
        assert_eq!(error.line, 5);
        assert!(matches!(error.fault, StructureFault::NoColon { .. }));
        let broken_fold = GOOD.replace("  folded", "folded text");
        let error = fault(&broken_fold);
        assert_eq!(error.line, 8);
        assert!(
            error.to_string().contains("must start with a space"),
            "{error}"
        );
        let quote = GOOD.replace("\"Europe/Berlin:x\"", "\"Europe/Berlin");
        assert!(matches!(
            fault(&quote).fault,
            StructureFault::UnclosedQuote { .. }
        ));
        let leading_fold = format!(" {GOOD}");
        assert_eq!(fault(&leading_fold).fault, StructureFault::FoldWithoutLine);
    }

    #[test]
    fn content_outside_and_second_calendars_are_refused() {
        assert!(matches!(
            fault(&format!("{GOOD}X-TRAILER:1\r\n")).fault,
            StructureFault::OutsideCalendar { .. }
        ));
        assert_eq!(
            fault(&format!("{GOOD}{GOOD}")).fault,
            StructureFault::SecondCalendar
        );
        assert!(matches!(
            fault("BEGIN:VCARD\r\nEND:VCARD\r\n").fault,
            StructureFault::NotCalendar { .. }
        ));
        assert_eq!(fault("").fault, StructureFault::Empty);
        assert_eq!(fault("\r\n\r\n").fault, StructureFault::Empty);
    }

    #[test]
    fn utf8_position_names_line_and_column() {
        let body = b"BEGIN:VCALENDAR\r\nSUMMARY:ab\xFFc\r\n".to_vec();
        let error = String::from_utf8(body).unwrap_err();
        let message = utf8_error_position(error.as_bytes(), &error.utf8_error());
        assert_eq!(
            message,
            "invalid UTF-8 byte 0xFF at line 2, column 11 (byte offset 27)"
        );
    }
}
