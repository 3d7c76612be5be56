//! iCalendar content lines (RFC 5545 §3.1) as iTIP rewriting needs them: unfolded, split
//! into name, parameters and raw value, edited, and written back folded.
//!
//! Written by hand rather than through calcard on purpose: iTIP (RFC 5546) carries the
//! organizer's data to attendees verbatim except for a few scheduling parameters
//! (PARTSTAT, SCHEDULE-STATUS, SCHEDULE-AGENT) and the METHOD line; calcard re-serialises
//! every value in its own normal form, so attendees would receive text the organizer
//! never wrote. Values are never interpreted here; validation stays in [`crate::ical`].

/// Most content lines accepted in one scheduling message (the resource size limit
/// already bounds bytes; this bounds the per-line bookkeeping).
pub const MAX_LINES: usize = 20_000;

/// One unfolded content line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Upper-cased property name (`ATTENDEE`, `BEGIN`, ...).
    pub name: String,
    /// Parameters in order: upper-cased name, value without surrounding quotes.
    pub params: Vec<(String, String)>,
    /// The raw value, unescaped text left as is.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    #[error("content line {line}: no `:` separating name and value")]
    NoValue { line: usize },
    #[error("{count} content lines, the limit is {limit}")]
    TooManyLines { count: usize, limit: usize },
}

impl Line {
    pub fn new(name: &str, value: &str) -> Self {
        Self {
            name: name.to_ascii_uppercase(),
            params: Vec::new(),
            value: value.to_owned(),
        }
    }

    /// Parses one unfolded line.
    pub fn parse(text: &str) -> Option<Self> {
        let mut in_quotes = false;
        let mut name_end = None;
        let mut value_start = None;
        for (i, c) in text.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ';' if !in_quotes && name_end.is_none() => name_end = Some(i),
                ':' if !in_quotes => {
                    value_start = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let colon = value_start?;
        let name_end = name_end.unwrap_or(colon);
        let name = text.get(..name_end)?.trim().to_ascii_uppercase();
        if name.is_empty() {
            return None;
        }
        let params_text = text.get(name_end..colon).unwrap_or("");
        let params = split_params(params_text);
        let value = text.get(colon + 1..)?.to_owned();
        Some(Self {
            name,
            params,
            value,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets (replacing) a parameter.
    pub fn set_param(&mut self, name: &str, value: &str) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(entry) => entry.1 = value.to_owned(),
            None => self
                .params
                .push((name.to_ascii_uppercase(), value.to_owned())),
        }
    }

    pub fn remove_param(&mut self, name: &str) {
        self.params.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The line folded at 75 octets (RFC 5545 §3.1), CRLF-terminated.
    pub fn write(&self, out: &mut String) {
        let mut line = self.name.clone();
        for (name, value) in &self.params {
            line.push(';');
            line.push_str(name);
            line.push('=');
            if value.contains([':', ';', ',']) {
                line.push('"');
                line.push_str(&value.replace('"', ""));
                line.push('"');
            } else {
                line.push_str(value);
            }
        }
        line.push(':');
        line.push_str(&self.value);
        let mut width = 0;
        for c in line.chars() {
            let len = c.len_utf8();
            if width + len > 75 {
                out.push_str("\r\n ");
                width = 1;
            }
            out.push(c);
            width += len;
        }
        out.push_str("\r\n");
    }
}

fn split_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut pieces = Vec::new();
    for c in text.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            ';' if !in_quotes => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    for piece in pieces.into_iter().filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece.as_str(), ""));
        let value = value.trim_matches('"');
        params.push((name.trim().to_ascii_uppercase(), value.to_owned()));
    }
    params
}

/// A whole iCalendar object as a flat list of lines; components are BEGIN/END spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub lines: Vec<Line>,
}

/// Where a component directly under VCALENDAR lies: `lines[begin..=end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub begin: usize,
    pub end: usize,
}

impl Document {
    pub fn parse(text: &str) -> Result<Self, LinesError> {
        let mut unfolded: Vec<String> = Vec::new();
        for raw in text.split('\n') {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if let Some(rest) = raw.strip_prefix([' ', '\t']) {
                if let Some(last) = unfolded.last_mut() {
                    last.push_str(rest);
                    continue;
                }
            }
            if raw.is_empty() {
                continue;
            }
            if unfolded.len() >= MAX_LINES {
                return Err(LinesError::TooManyLines {
                    count: unfolded.len() + 1,
                    limit: MAX_LINES,
                });
            }
            unfolded.push(raw.to_owned());
        }
        let lines = unfolded
            .iter()
            .enumerate()
            .map(|(i, l)| Line::parse(l).ok_or(LinesError::NoValue { line: i + 1 }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { lines })
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            line.write(&mut out);
        }
        out
    }

    /// Components directly inside the VCALENDAR, with their names (`VEVENT`, `VTIMEZONE`, ...).
    pub fn components(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut open: Option<(String, usize)> = None;
        for (i, line) in self.lines.iter().enumerate() {
            match line.name.as_str() {
                "BEGIN" => {
                    depth += 1;
                    if depth == 2 {
                        open = Some((line.value.trim().to_ascii_uppercase(), i));
                    }
                }
                "END" => {
                    if depth == 2 {
                        if let Some((name, begin)) = open.take() {
                            out.push((name, Span { begin, end: i }));
                        }
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
        }
        out
    }

    /// Indices of the properties of the component at `span` itself (not of nested
    /// components such as VALARM).
    pub fn own_lines(&self, span: Span) -> Vec<usize> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        for i in span.begin..=span.end {
            let Some(line) = self.lines.get(i) else { break };
            match line.name.as_str() {
                "BEGIN" => depth += 1,
                "END" => depth = depth.saturating_sub(1),
                _ if depth == 1 => out.push(i),
                _ => {}
            }
        }
        out
    }

    /// The first own property `name` of a component.
    pub fn property(&self, span: Span, name: &str) -> Option<&Line> {
        self.own_lines(span)
            .into_iter()
            .filter_map(|i| self.lines.get(i))
            .find(|l| l.name == name)
    }

    /// Sets or inserts the calendar-level METHOD line (after BEGIN:VCALENDAR), or removes
    /// it for `None`.
    pub fn set_method(&mut self, method: Option<&str>) {
        let top: Vec<usize> = self.top_level_lines();
        let existing = top
            .into_iter()
            .find(|&i| self.lines.get(i).is_some_and(|l| l.name == "METHOD"));
        match (existing, method) {
            (Some(i), Some(m)) => {
                if let Some(line) = self.lines.get_mut(i) {
                    line.value = m.to_owned();
                }
            }
            (Some(i), None) => {
                self.lines.remove(i);
            }
            (None, Some(m)) => {
                let at = usize::from(!self.lines.is_empty());
                self.lines.insert(at, Line::new("METHOD", m));
            }
            (None, None) => {}
        }
    }

    fn top_level_lines(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        for (i, line) in self.lines.iter().enumerate() {
            match line.name.as_str() {
                "BEGIN" => depth += 1,
                "END" => depth = depth.saturating_sub(1),
                _ if depth == 1 => out.push(i),
                _ => {}
            }
        }
        out
    }

    /// Keeps only the components `keep` accepts (by name and span); the VCALENDAR's own
    /// lines stay.
    pub fn retain_components(&mut self, mut keep: impl FnMut(&str, Span, &Document) -> bool) {
        let drop: Vec<Span> = self
            .components()
            .into_iter()
            .filter(|(name, span)| !keep(name, *span, self))
            .map(|(_, span)| span)
            .collect();
        for span in drop.into_iter().rev() {
            self.lines.drain(span.begin..=span.end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_params_and_colons_in_values_survive() {
        let line = Line::parse("ATTENDEE;CN=\"Lee, Ann\";PARTSTAT=ACCEPTED:mailto:ann@example.com")
            .unwrap();
        assert_eq!(line.name, "ATTENDEE");
        assert_eq!(line.param("cn"), Some("Lee, Ann"));
        assert_eq!(line.param("PARTSTAT"), Some("ACCEPTED"));
        assert_eq!(line.value, "mailto:ann@example.com");
        let mut out = String::new();
        line.write(&mut out);
        assert_eq!(
            out,
            "ATTENDEE;CN=\"Lee, Ann\";PARTSTAT=ACCEPTED:mailto:ann@example.com\r\n"
        );
    }

    #[test]
    fn long_lines_fold_and_unfold() {
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let doc =
            Document::parse(&format!("BEGIN:VCALENDAR\r\n{long}\r\nEND:VCALENDAR\r\n")).unwrap();
        let text = doc.to_text();
        assert!(text.lines().all(|l| l.len() <= 75));
        assert_eq!(Document::parse(&text).unwrap(), doc);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Document::parse("no colon here").is_err());
        assert!(Line::parse(":value").is_none());
        assert!(Line::parse("X;\"unterminated:").is_none());
    }

    #[test]
    fn components_ignore_nested_alarms() {
        let doc = Document::parse("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nBEGIN:VALARM\r\nATTENDEE:mailto:x@y\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").unwrap();
        let comps = doc.components();
        assert_eq!(comps.len(), 1);
        let (_, span) = comps[0];
        assert!(doc.property(span, "ATTENDEE").is_none());
        assert_eq!(doc.property(span, "UID").unwrap().value, "a");
    }
}
