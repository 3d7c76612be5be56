//! Single instances of a recurring meeting in iTIP (RFC 5546 §3.2.5, §3.2.3): which
//! instances an organizer's change cancels for an attendee (an EXDATE added, an override
//! set to STATUS:CANCELLED, the attendee taken off one override), the METHOD:CANCEL
//! carrying their RECURRENCE-IDs, and applying such a CANCEL to an attendee's copy.
//!
//! Instances are matched by their RECURRENCE-ID as written (value plus TZID/VALUE), the
//! way clients write EXDATE and RECURRENCE-ID for the same instance; an EXDATE written in
//! another zone than the RECURRENCE-ID it cancels is not recognised (the attendee then
//! gets the organizer's new version as a REQUEST, as before). Pure text work.

use super::itip::{calendar_copy, same_address};
use super::lines::{Document, Line, Span};
use std::collections::BTreeSet;

/// One instance as a RECURRENCE-ID would name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstanceId {
    /// TZID, upper-cased VALUE (`DATE` or empty), then the raw value.
    pub tzid: String,
    pub value_type: String,
    pub value: String,
}

impl InstanceId {
    fn of(line: &Line, value: &str) -> Self {
        Self {
            tzid: line.param("TZID").unwrap_or("").to_owned(),
            value_type: line
                .param("VALUE")
                .unwrap_or("")
                .to_ascii_uppercase()
                .replace("DATE-TIME", ""),
            value: value.trim().to_owned(),
        }
    }

    /// A content line `name` (EXDATE, RECURRENCE-ID) naming this instance.
    fn line(&self, name: &str) -> Line {
        let mut line = Line::new(name, &self.value);
        if !self.tzid.is_empty() {
            line.set_param("TZID", &self.tzid);
        }
        if !self.value_type.is_empty() {
            line.set_param("VALUE", &self.value_type);
        }
        line
    }
}

/// Schedulable components: (span, RECURRENCE-ID or `None` for the master).
fn occurrences(doc: &Document) -> Vec<(Span, Option<InstanceId>)> {
    doc.components()
        .into_iter()
        .filter(|(name, _)| name == "VEVENT" || name == "VTODO")
        .map(|(_, span)| {
            let rid = doc
                .property(span, "RECURRENCE-ID")
                .map(|l| InstanceId::of(l, &l.value));
            (span, rid)
        })
        .collect()
}

fn own<'a>(doc: &'a Document, span: Span, name: &'a str) -> impl Iterator<Item = &'a Line> + 'a {
    doc.own_lines(span)
        .into_iter()
        .filter_map(|i| doc.lines.get(i))
        .filter(move |l| l.name == name)
}

fn lists(doc: &Document, span: Span, attendee: &str) -> bool {
    own(doc, span, "ATTENDEE").any(|l| same_address(&l.value, attendee))
}

fn is_cancelled(doc: &Document, span: Span) -> bool {
    doc.property(span, "STATUS")
        .is_some_and(|l| l.value.trim().eq_ignore_ascii_case("CANCELLED"))
}

/// The master's EXDATEs.
fn exdates(doc: &Document) -> BTreeSet<InstanceId> {
    occurrences(doc)
        .into_iter()
        .filter(|(_, rid)| rid.is_none())
        .flat_map(|(span, _)| {
            own(doc, span, "EXDATE")
                .flat_map(|l| l.value.split(',').map(move |v| InstanceId::of(l, v)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `attendee` had instance `id` in `doc`: its override lists them (and is not
/// cancelled), or without an override the master lists them and does not exclude it.
fn attends(doc: &Document, attendee: &str, id: &InstanceId) -> bool {
    let all = occurrences(doc);
    if let Some((span, _)) = all.iter().find(|(_, rid)| rid.as_ref() == Some(id)) {
        return lists(doc, *span, attendee) && !is_cancelled(doc, *span);
    }
    !exdates(doc).contains(id)
        && all
            .iter()
            .any(|(span, rid)| rid.is_none() && lists(doc, *span, attendee))
}

/// Instances `attendee` had in `old` that `new` cancels for them while the meeting goes on.
pub fn cancelled_for(old: &Document, new: &Document, attendee: &str) -> Vec<InstanceId> {
    let mut candidates: BTreeSet<InstanceId> =
        exdates(new).difference(&exdates(old)).cloned().collect();
    for (span, rid) in occurrences(new) {
        let Some(rid) = rid else { continue };
        if is_cancelled(new, span) || !lists(new, span, attendee) {
            candidates.insert(rid);
        }
    }
    candidates
        .into_iter()
        .filter(|id| attends(old, attendee, id) && !attends(new, attendee, id))
        .collect()
}

/// METHOD:CANCEL for the given instances (RFC 5546 §3.2.5): one component per instance,
/// the override as `old` had it or else the master's identity (UID, ORGANIZER, SEQUENCE,
/// SUMMARY) with the attendee's ATTENDEE line, each with its RECURRENCE-ID and
/// STATUS:CANCELLED; time zones ride along. `None` if `old` has no master or override.
pub fn cancel_instances(old: &Document, attendee: &str, ids: &[InstanceId]) -> Option<Document> {
    let mut message = calendar_copy(old);
    let all = occurrences(&message);
    let master = all.iter().find(|(_, rid)| rid.is_none()).map(|(s, _)| *s);
    let mut components: Vec<Line> = Vec::new();
    for id in ids {
        let override_span = all
            .iter()
            .find(|(_, rid)| rid.as_ref() == Some(id))
            .map(|(s, _)| *s);
        let Some(source) = override_span.or(master) else {
            continue;
        };
        let name = message
            .lines
            .get(source.begin)
            .map(|l| l.value.trim().to_ascii_uppercase())
            .unwrap_or_else(|| "VEVENT".into());
        components.push(Line::new("BEGIN", &name));
        for i in message.own_lines(source) {
            let Some(line) = message.lines.get(i) else {
                continue;
            };
            let keep = match line.name.as_str() {
                "UID" | "ORGANIZER" | "SEQUENCE" | "DTSTAMP" | "SUMMARY" => true,
                "ATTENDEE" => same_address(&line.value, attendee),
                _ => false,
            };
            if keep {
                components.push(line.clone());
            }
        }
        components.push(id.line("RECURRENCE-ID"));
        components.push(Line::new("STATUS", "CANCELLED"));
        components.push(Line::new("END", &name));
    }
    if components.is_empty() {
        return None;
    }
    message.retain_components(|name, _, _| name != "VEVENT" && name != "VTODO");
    let end = message.lines.len().checked_sub(1)?;
    message.lines.splice(end..end, components);
    message.set_method(Some("CANCEL"));
    Some(message)
}

/// The RECURRENCE-IDs a CANCEL names; empty when it cancels the whole meeting.
pub fn cancelled_ids(message: &Document) -> Vec<InstanceId> {
    let all = occurrences(message);
    if all.iter().any(|(_, rid)| rid.is_none()) {
        return Vec::new();
    }
    all.into_iter().filter_map(|(_, rid)| rid).collect()
}

/// Applies an instance CANCEL to an attendee's copy: the master gets an EXDATE per
/// instance and overrides of those instances go. Returns whether any master or override
/// is left (if not, the copy should be deleted).
pub fn apply_cancel(copy: &mut Document, ids: &[InstanceId]) -> bool {
    copy.retain_components(|name, span, doc| {
        if name != "VEVENT" && name != "VTODO" {
            return true;
        }
        let rid = doc
            .property(span, "RECURRENCE-ID")
            .map(|l| InstanceId::of(l, &l.value));
        !rid.is_some_and(|rid| ids.contains(&rid))
    });
    let master = occurrences(copy)
        .into_iter()
        .find(|(_, rid)| rid.is_none())
        .map(|(span, _)| span);
    if let Some(span) = master {
        let known = exdates(copy);
        let new: Vec<Line> = ids
            .iter()
            .filter(|id| !known.contains(id))
            .map(|id| id.line("EXDATE"))
            .collect();
        copy.lines.splice(span.end..span.end, new);
    }
    !occurrences(copy).is_empty()
}

/// Whether `new` differs from `old` for an attendee only by cancelling `ids`: then the
/// CANCEL says it all and no REQUEST is due. DTSTAMP, PARTSTAT and server parameters are
/// ignored as in `itip::same_for_attendees`.
pub fn only_cancels(old: &Document, new: &Document, ids: &[InstanceId]) -> bool {
    let (old_ex, new_ex) = (exdates(old), exdates(new));
    if !old_ex.is_subset(&new_ex) || new_ex.difference(&old_ex).any(|id| !ids.contains(id)) {
        return false;
    }
    let reduced = |doc: &Document| {
        let mut d = calendar_copy(doc);
        d.retain_components(|name, span, doc| {
            if name != "VEVENT" && name != "VTODO" {
                return true;
            }
            let rid = doc
                .property(span, "RECURRENCE-ID")
                .map(|l| InstanceId::of(l, &l.value));
            !rid.is_some_and(|rid| ids.contains(&rid))
        });
        d.lines
            .retain(|l| l.name != "DTSTAMP" && l.name != "EXDATE");
        for line in &mut d.lines {
            line.remove_param("PARTSTAT");
        }
        d
    };
    reduced(old) == reduced(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: &str = "mailto:ann@example.com";
    const BOB: &str = "mailto:bob@example.com";

    fn weekly(extra_master: &str, overrides: &str) -> Document {
        Document::parse(&format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Sync\r\nORGANIZER:{ANN}\r\nATTENDEE;PARTSTAT=ACCEPTED:{ANN}\r\nATTENDEE;PARTSTAT=ACCEPTED:{BOB}\r\n{extra_master}END:VEVENT\r\n{overrides}END:VCALENDAR\r\n"
        ))
        .unwrap()
    }

    fn id(value: &str) -> InstanceId {
        InstanceId {
            tzid: String::new(),
            value_type: String::new(),
            value: value.into(),
        }
    }

    #[test]
    fn an_added_exdate_cancels_that_instance_only() {
        let old = weekly("", "");
        let new = weekly("EXDATE:20260112T100000Z\r\n", "");
        let ids = cancelled_for(&old, &new, BOB);
        assert_eq!(ids, [id("20260112T100000Z")]);
        assert!(only_cancels(&old, &new, &ids));
        let cancel = cancel_instances(&old, BOB, &ids).unwrap();
        assert_eq!(
            cancel.to_text(),
            format!("BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Sync\r\nORGANIZER:{ANN}\r\nATTENDEE;PARTSTAT=ACCEPTED:{BOB}\r\nRECURRENCE-ID:20260112T100000Z\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        );
        let mut copy = calendar_copy(&old);
        assert!(apply_cancel(&mut copy, &cancelled_ids(&cancel)));
        assert_eq!(copy, calendar_copy(&new));
    }

    #[test]
    fn a_cancelled_override_cancels_and_its_removal_with_exdate_too() {
        let moved = "BEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260119T100000Z\r\nDTSTART:20260120T100000Z\r\nDTEND:20260120T110000Z\r\nSUMMARY:Sync\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE:mailto:bob@example.com\r\nEND:VEVENT\r\n";
        let old = weekly("", moved);
        let cancelled = weekly(
            "",
            &moved.replace("SUMMARY:Sync\r\n", "SUMMARY:Sync\r\nSTATUS:CANCELLED\r\n"),
        );
        assert_eq!(
            cancelled_for(&old, &cancelled, BOB),
            [id("20260119T100000Z")]
        );
        let removed = weekly("EXDATE:20260119T100000Z\r\n", "");
        let ids = cancelled_for(&old, &removed, BOB);
        assert_eq!(ids, [id("20260119T100000Z")]);
        let mut copy = calendar_copy(&old);
        assert!(apply_cancel(&mut copy, &ids));
        assert!(only_cancels(&copy, &removed, &ids));
        // An override dropped without an EXDATE hands the instance back to the master:
        // nothing is cancelled.
        assert!(cancelled_for(&old, &weekly("", ""), BOB).is_empty());
        // Nor is anything cancelled for an attendee who never had the instance.
        assert!(cancelled_for(&old, &removed, "mailto:carol@example.com").is_empty());
    }

    #[test]
    fn moving_an_instance_is_not_a_cancellation() {
        let old = weekly("", "");
        let moved = weekly("", "BEGIN:VEVENT\r\nUID:w\r\nRECURRENCE-ID:20260112T100000Z\r\nDTSTART:20260113T100000Z\r\nDTEND:20260113T110000Z\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE:mailto:bob@example.com\r\nEND:VEVENT\r\n");
        assert!(cancelled_for(&old, &moved, BOB).is_empty());
    }

    #[test]
    fn documents_without_meetings_cancel_nothing() {
        let empty = Document::parse("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").unwrap();
        let unbalanced = Document::parse("END:VEVENT\r\nBEGIN:VEVENT\r\nEXDATE:x\r\n").unwrap();
        for doc in [&empty, &unbalanced] {
            assert!(cancelled_for(doc, doc, BOB).is_empty());
            assert!(cancel_instances(doc, BOB, &[id("x")]).is_none());
            let mut copy = doc.clone();
            let _ = apply_cancel(&mut copy, &[id("x")]);
        }
    }
}
