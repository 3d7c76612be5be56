//! RFC 4791 §9.6 options of `calendar-data` in a REPORT, applied to a stored object:
//! partial retrieval (`comp` / `prop` / `allprop` / `allcomp`, §9.6.1-§9.6.4),
//! `limit-recurrence-set` (§9.6.6) and `limit-freebusy-set` (§9.6.7). `expand` (§9.6.5)
//! lives in [`super::expand::write_expanded`].
//!
//! Works on content lines ([`crate::schedule::lines`]) rather than through calcard so that
//! what a client gets back is the text it stored, minus what it did not ask for; calcard
//! would re-serialise every value. Pure: no clock, no store.

use super::expand::{parse_utc, Expansion, TimeRange};
use crate::schedule::lines::{Document, Line, Span};

/// Which components and properties a client wants (one `C:comp` element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompSpec {
    /// Upper-cased component name (`VCALENDAR`, `VEVENT`, ...).
    pub name: String,
    pub props: PropSelection,
    pub comps: CompSelection,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropSelection {
    All,
    Named(Vec<PropSpec>),
}

/// One `C:prop name=... novalue=yes|no`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropSpec {
    /// Upper-cased property name.
    pub name: String,
    /// `novalue="yes"`: the property is returned with an empty value.
    pub novalue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompSelection {
    All,
    Named(Vec<CompSpec>),
}

impl CompSpec {
    /// A `C:comp` with no children at all asks for the whole component: RFC 4791's own
    /// example (§7.8.1) lists `<C:comp name="VTIMEZONE"/>` and gets the full VTIMEZONE.
    pub fn whole(name: &str) -> Self {
        Self {
            name: name.to_ascii_uppercase(),
            props: PropSelection::All,
            comps: CompSelection::All,
        }
    }
}

/// Keeps only what `spec` names. `spec` is rooted at VCALENDAR; anything else yields an
/// empty VCALENDAR. Unparseable text is returned unchanged (it passed validation once).
pub fn select_parts(text: &str, spec: &CompSpec) -> String {
    let Ok(doc) = Document::parse(text) else {
        return text.to_owned();
    };
    let Some(root) = root_span(&doc) else {
        return text.to_owned();
    };
    let mut out = Vec::with_capacity(doc.lines.len());
    if spec.name == "VCALENDAR" {
        write_selected(&doc, root, spec, &mut out);
    } else {
        out.push(Line::new("BEGIN", "VCALENDAR"));
        out.push(Line::new("END", "VCALENDAR"));
    }
    Document { lines: out }.to_text()
}

/// §9.6.6: the master component and only those overrides whose instance overlaps
/// `range` or whose RECURRENCE-ID falls inside it; time zones and non-recurring objects
/// stay. `expansion` is the object's, with `comp_id` indexing calcard's components (the
/// root's children appear in document order, which is how they are matched here).
pub fn limit_recurrence_set(
    text: &str,
    expansion: &Expansion,
    root_children: &[u32],
    range: TimeRange,
) -> String {
    let Ok(mut doc) = Document::parse(text) else {
        return text.to_owned();
    };
    let mut position = 0usize;
    doc.retain_components(|_, span, doc| {
        let comp_id = root_children.get(position).copied();
        position += 1;
        if doc.property(span, "RECURRENCE-ID").is_none() {
            return true;
        }
        let Some(comp_id) = comp_id else {
            return true;
        };
        expansion
            .instances
            .iter()
            .filter(|i| i.comp_id == comp_id)
            .any(|i| {
                range.overlaps(i.start, i.end)
                    || i.recurrence_id
                        .is_some_and(|rid| range.overlaps(rid, rid.saturating_add(1)))
            })
    });
    doc.to_text()
}

/// §9.6.7: FREEBUSY periods of VFREEBUSY components that do not overlap `range` are
/// dropped, and a FREEBUSY line left with no period goes with them.
pub fn limit_freebusy_set(text: &str, range: TimeRange) -> String {
    let Ok(doc) = Document::parse(text) else {
        return text.to_owned();
    };
    let mut in_freebusy = false;
    let mut lines = Vec::with_capacity(doc.lines.len());
    for mut line in doc.lines {
        match line.name.as_str() {
            "BEGIN" if line.value.eq_ignore_ascii_case("VFREEBUSY") => in_freebusy = true,
            "END" if line.value.eq_ignore_ascii_case("VFREEBUSY") => in_freebusy = false,
            "FREEBUSY" if in_freebusy => {
                let kept: Vec<&str> = line
                    .value
                    .split(',')
                    .filter(|period| period_overlaps(period, range))
                    .collect();
                if kept.is_empty() {
                    continue;
                }
                line.value = kept.join(",");
            }
            _ => {}
        }
        lines.push(line);
    }
    Document { lines }.to_text()
}

/// The whole document's span when it is one VCALENDAR.
fn root_span(doc: &Document) -> Option<Span> {
    let first = doc.lines.first()?;
    let last = doc.lines.len().checked_sub(1)?;
    (first.name == "BEGIN" && first.value.trim().eq_ignore_ascii_case("VCALENDAR")).then_some(
        Span {
            begin: 0,
            end: last,
        },
    )
}

/// Components directly inside the one at `span`, with their upper-cased names.
fn child_components(doc: &Document, span: Span) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut open: Option<(String, usize)> = None;
    for i in span.begin..=span.end {
        let Some(line) = doc.lines.get(i) else { break };
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

/// Writes the component at `span` as `spec` selects. Recursion follows `spec`, whose
/// depth the XML parser bounds (`MAX_XML_DEPTH`); whole sub-trees are copied flat.
fn write_selected(doc: &Document, span: Span, spec: &CompSpec, out: &mut Vec<Line>) {
    if spec.props == PropSelection::All && spec.comps == CompSelection::All {
        out.extend(
            doc.lines
                .get(span.begin..=span.end)
                .unwrap_or(&[])
                .iter()
                .cloned(),
        );
        return;
    }
    if let Some(begin) = doc.lines.get(span.begin) {
        out.push(begin.clone());
    }
    for i in doc.own_lines(span) {
        let Some(line) = doc.lines.get(i) else {
            continue;
        };
        match &spec.props {
            PropSelection::All => out.push(line.clone()),
            PropSelection::Named(names) => {
                if let Some(wanted) = names.iter().find(|p| p.name == line.name) {
                    let mut line = line.clone();
                    if wanted.novalue {
                        line.value.clear();
                    }
                    out.push(line);
                }
            }
        }
    }
    for (name, child) in child_components(doc, span) {
        match &spec.comps {
            CompSelection::All => {
                out.extend(
                    doc.lines
                        .get(child.begin..=child.end)
                        .unwrap_or(&[])
                        .iter()
                        .cloned(),
                );
            }
            CompSelection::Named(specs) => {
                if let Some(child_spec) = specs.iter().find(|s| s.name == name) {
                    write_selected(doc, child, child_spec, out);
                }
            }
        }
    }
    if let Some(end) = doc.lines.get(span.end) {
        out.push(end.clone());
    }
}

/// A FREEBUSY period (`start/end` or `start/duration`, UTC per RFC 5545 §3.8.2.6)
/// overlapping `range`. A period that cannot be read is kept: dropping data the client
/// stored because we fail to read it would be worse than returning a little too much.
fn period_overlaps(period: &str, range: TimeRange) -> bool {
    let Some((start, rest)) = period.trim().split_once('/') else {
        return true;
    };
    let Some(start) = parse_utc(start) else {
        return true;
    };
    let end = parse_utc(rest).or_else(|| parse_duration(rest).and_then(|d| start.checked_add(d)));
    match end {
        Some(end) => range.overlaps(start, end),
        None => true,
    }
}

/// An RFC 5545 §3.3.6 positive duration (`P1W`, `PT1H30M`, `P1DT12H`) in seconds.
fn parse_duration(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('+').unwrap_or(text).strip_prefix('P')?;
    let mut seconds: i64 = 0;
    let mut number: i64 = 0;
    let mut has_digits = false;
    let mut in_time = false;
    for c in rest.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = number.checked_mul(10)?.checked_add(i64::from(digit))?;
            has_digits = true;
            continue;
        }
        let unit: i64 = match (c, in_time) {
            ('T', false) => {
                in_time = true;
                continue;
            }
            ('W', false) => 7 * 86_400,
            ('D', false) => 86_400,
            ('H', true) => 3_600,
            ('M', true) => 60,
            ('S', true) => 1,
            _ => return None,
        };
        if !has_digits {
            return None;
        }
        seconds = seconds.checked_add(number.checked_mul(unit)?)?;
        number = 0;
        has_digits = false;
    }
    (!has_digits).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECURRING: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:r\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nSUMMARY:Weekly\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn named(names: &[&str]) -> PropSelection {
        PropSelection::Named(
            names
                .iter()
                .map(|n| PropSpec {
                    name: (*n).to_owned(),
                    novalue: false,
                })
                .collect(),
        )
    }

    #[test]
    fn partial_retrieval_keeps_only_named_properties_and_components() {
        let spec = CompSpec {
            name: "VCALENDAR".into(),
            props: named(&["VERSION"]),
            comps: CompSelection::Named(vec![CompSpec {
                name: "VEVENT".into(),
                props: named(&["UID", "SUMMARY"]),
                comps: CompSelection::Named(vec![]),
            }]),
        };
        assert_eq!(
            select_parts(RECURRING, &spec),
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:r\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
    }

    #[test]
    fn allcomp_and_novalue() {
        let spec = CompSpec {
            name: "VCALENDAR".into(),
            props: PropSelection::Named(vec![]),
            comps: CompSelection::Named(vec![CompSpec {
                name: "VEVENT".into(),
                props: PropSelection::Named(vec![PropSpec {
                    name: "RRULE".into(),
                    novalue: true,
                }]),
                comps: CompSelection::All,
            }]),
        };
        assert_eq!(
            select_parts(RECURRING, &spec),
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nRRULE:\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
    }

    #[test]
    fn freebusy_periods_outside_the_range_are_dropped() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VFREEBUSY\r\nUID:f\r\nDTSTAMP:20260101T000000Z\r\nFREEBUSY:20260105T100000Z/PT1H,20260107T100000Z/20260107T120000Z\r\nFREEBUSY;FBTYPE=BUSY-TENTATIVE:20260110T100000Z/PT1H\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";
        let range = TimeRange::new(
            parse_utc("20260106T000000Z").unwrap(),
            parse_utc("20260108T000000Z").unwrap(),
        );
        assert_eq!(
            limit_freebusy_set(text, range),
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VFREEBUSY\r\nUID:f\r\nDTSTAMP:20260101T000000Z\r\nFREEBUSY:20260107T100000Z/20260107T120000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT1H30M"), Some(5_400));
        assert_eq!(parse_duration("P1W"), Some(604_800));
        assert_eq!(parse_duration("P1DT1S"), Some(86_401));
        assert_eq!(parse_duration("PT"), Some(0));
        assert_eq!(parse_duration("P1"), None);
        assert_eq!(parse_duration("PT99999999999999999999H"), None);
        assert_eq!(parse_duration("P1H"), None);
    }

    #[test]
    fn unreadable_text_comes_back_unchanged() {
        let spec = CompSpec::whole("VCALENDAR");
        let range = TimeRange::new(0, 1);
        for garbage in [
            "",
            "no colon",
            "BEGIN:VEVENT\r\nEND:VCALENDAR\r\n",
            "END:VCALENDAR\r\n",
        ] {
            let _ = select_parts(garbage, &spec);
            let _ = limit_freebusy_set(garbage, range);
            let _ = limit_recurrence_set(garbage, &Expansion::default(), &[7, 9], range);
        }
        assert_eq!(select_parts("no colon", &spec), "no colon");
    }
}
