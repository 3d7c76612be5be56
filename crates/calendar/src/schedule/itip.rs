//! iTIP messages (RFC 5546) for CalDAV implicit scheduling (RFC 6638 §3-4): who organizes
//! a stored meeting and who attends each instance, and the REQUEST, CANCEL and REPLY
//! messages derived from it; REPLYs applied back to the organizer's copy.
//!
//! Pure text work over [`Document`]; which addresses are local and where messages go is
//! the driver's business ([`crate::http`]). Recurring meetings are handled per component:
//! the master and each RECURRENCE-ID override carry their own ATTENDEE list and PARTSTATs.

use super::lines::{Document, Line, Span};
use std::collections::BTreeSet;

/// RFC 6638 §3.2.9 / RFC 5546 §3.6 request-status codes used as SCHEDULE-STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleStatus {
    /// 1.0: queued for another system (iMIP); not delivered yet.
    Pending,
    /// 1.2: delivered to a Serval user's inbox and calendar.
    Delivered,
    /// 2.0: a REPLY or free-busy answer processed.
    Success,
    /// 3.7: the address names nobody Serval knows and is not a mail address.
    InvalidCalendarUser,
    /// 5.3: the recipient exists but none of their calendars takes this component.
    NoSchedulingSupport,
}

impl ScheduleStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Pending => "1.0",
            Self::Delivered => "1.2",
            Self::Success => "2.0",
            Self::InvalidCalendarUser => "3.7",
            Self::NoSchedulingSupport => "5.3",
        }
    }

    /// `code;description` as in a REQUEST-STATUS value or `request-status` element.
    pub fn request_status(self) -> &'static str {
        match self {
            Self::Pending => "1.0;Pending",
            Self::Delivered => "1.2;Delivered",
            Self::Success => "2.0;Success",
            Self::InvalidCalendarUser => "3.7;Invalid calendar user",
            Self::NoSchedulingSupport => "5.3;No scheduling support for user",
        }
    }
}

/// An ATTENDEE of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    pub address: String,
    /// PARTSTAT, upper-cased; `NEEDS-ACTION` when absent (RFC 5545 default).
    pub partstat: String,
    /// SCHEDULE-AGENT=CLIENT (or NONE): the client schedules this one, the server must not.
    pub client_scheduled: bool,
}

/// The master or one RECURRENCE-ID override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// The raw RECURRENCE-ID value; `None` for the master.
    pub recurrence_id: Option<String>,
    pub attendees: Vec<Attendee>,
}

/// The scheduling view of a stored calendar object with an ORGANIZER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub uid: String,
    /// `VEVENT` or `VTODO`.
    pub component: String,
    pub organizer: String,
    /// SCHEDULE-AGENT=CLIENT on the ORGANIZER: the client does all scheduling.
    pub organizer_client_scheduled: bool,
    pub occurrences: Vec<Occurrence>,
}

/// Components iTIP schedules (RFC 6638 §3.1: VEVENT and VTODO).
fn is_schedulable(name: &str) -> bool {
    name == "VEVENT" || name == "VTODO"
}

/// Canonical form for comparing calendar user addresses: `mailto:` addresses are
/// case-insensitive; other URIs compare as written, minus a trailing slash difference.
pub fn normalize_address(address: &str) -> String {
    let trimmed = address.trim();
    match trimmed.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mailto:") => {
            format!("mailto:{}", trimmed.get(7..).unwrap_or("").to_lowercase())
        }
        _ => trimmed.trim_end_matches('/').to_owned(),
    }
}

pub fn same_address(a: &str, b: &str) -> bool {
    normalize_address(a) == normalize_address(b)
}

fn client_scheduled(line: &Line) -> bool {
    line.param("SCHEDULE-AGENT")
        .is_some_and(|a| !a.eq_ignore_ascii_case("SERVER"))
}

impl Meeting {
    /// `None` when the object has no ORGANIZER (a plain event: nothing to schedule).
    pub fn of(doc: &Document) -> Option<Self> {
        let mut uid = None;
        let mut organizer: Option<&Line> = None;
        let mut component = None;
        let mut occurrences = Vec::new();
        for (name, span) in doc.components() {
            if !is_schedulable(&name) {
                continue;
            }
            component.get_or_insert(name);
            if uid.is_none() {
                uid = doc.property(span, "UID").map(|l| l.value.clone());
            }
            if organizer.is_none() {
                organizer = doc.property(span, "ORGANIZER");
            }
            occurrences.push(Occurrence {
                recurrence_id: doc.property(span, "RECURRENCE-ID").map(|l| l.value.clone()),
                attendees: attendees(doc, span),
            });
        }
        let organizer = organizer?;
        Some(Self {
            uid: uid?,
            component: component?,
            organizer: organizer.value.clone(),
            organizer_client_scheduled: client_scheduled(organizer),
            occurrences,
        })
    }

    /// Attendees the server schedules: every one in any occurrence, except the organizer
    /// and those marked SCHEDULE-AGENT=CLIENT; normalized and deduplicated.
    pub fn server_scheduled_attendees(&self) -> BTreeSet<String> {
        if self.organizer_client_scheduled {
            return BTreeSet::new();
        }
        self.occurrences
            .iter()
            .flat_map(|o| &o.attendees)
            .filter(|a| !a.client_scheduled && !same_address(&a.address, &self.organizer))
            .map(|a| normalize_address(&a.address))
            .collect()
    }

    /// The attendee's PARTSTAT per occurrence (RECURRENCE-ID, PARTSTAT) where listed.
    pub fn partstats_of(
        &self,
        is_attendee: &dyn Fn(&str) -> bool,
    ) -> Vec<(Option<String>, String)> {
        self.occurrences
            .iter()
            .filter_map(|o| {
                o.attendees
                    .iter()
                    .find(|a| is_attendee(&a.address))
                    .map(|a| (o.recurrence_id.clone(), a.partstat.clone()))
            })
            .collect()
    }

    /// The first attendee address `is_attendee` accepts, as written in the object.
    pub fn attendee_address(&self, is_attendee: &dyn Fn(&str) -> bool) -> Option<String> {
        self.occurrences
            .iter()
            .flat_map(|o| &o.attendees)
            .find(|a| is_attendee(&a.address))
            .map(|a| a.address.clone())
    }
}

fn attendees(doc: &Document, span: Span) -> Vec<Attendee> {
    doc.own_lines(span)
        .into_iter()
        .filter_map(|i| doc.lines.get(i))
        .filter(|l| l.name == "ATTENDEE")
        .map(|l| Attendee {
            address: l.value.clone(),
            partstat: l
                .param("PARTSTAT")
                .unwrap_or("NEEDS-ACTION")
                .to_ascii_uppercase(),
            client_scheduled: client_scheduled(l),
        })
        .collect()
}

fn lists_attendee(doc: &Document, span: Span, attendee: &str) -> bool {
    doc.own_lines(span)
        .into_iter()
        .filter_map(|i| doc.lines.get(i))
        .any(|l| l.name == "ATTENDEE" && same_address(&l.value, attendee))
}

/// Parameters only the server manages; stripped from what attendees receive and store
/// (RFC 6638 §3.2.9-10).
fn strip_server_params(doc: &mut Document) {
    for line in &mut doc.lines {
        if line.name == "ATTENDEE" || line.name == "ORGANIZER" {
            line.remove_param("SCHEDULE-STATUS");
            line.remove_param("SCHEDULE-FORCE-SEND");
        }
    }
}

/// The object as an attendee's calendar keeps it: no METHOD, no server parameters.
pub fn calendar_copy(doc: &Document) -> Document {
    let mut copy = doc.clone();
    copy.set_method(None);
    strip_server_params(&mut copy);
    copy
}

/// The REQUEST for one attendee: the components listing them (plus time zones).
/// `None` when no component lists them.
pub fn request_for(doc: &Document, attendee: &str) -> Option<Document> {
    let mut message = calendar_copy(doc);
    // Instances the attendee was taken off: without their override, the master's rule
    // would bring them back in the attendee's copy, so the master excludes them instead.
    let excluded: Vec<Line> = message
        .components()
        .into_iter()
        .filter(|(name, span)| is_schedulable(name) && !lists_attendee(&message, *span, attendee))
        .filter_map(|(_, span)| message.property(span, "RECURRENCE-ID"))
        .map(|rid| Line {
            name: "EXDATE".into(),
            params: rid
                .params
                .iter()
                .filter(|(n, _)| n != "RANGE")
                .cloned()
                .collect(),
            value: rid.value.clone(),
        })
        .collect();
    let mut any = false;
    message.retain_components(|name, span, d| {
        if !is_schedulable(name) {
            return true;
        }
        let keep = lists_attendee(d, span, attendee);
        any |= keep;
        keep
    });
    if !excluded.is_empty() {
        let master = message.components().into_iter().find(|(name, span)| {
            is_schedulable(name) && message.property(*span, "RECURRENCE-ID").is_none()
        });
        if let Some((_, span)) = master {
            for (offset, exdate) in excluded.into_iter().enumerate() {
                message.lines.insert(span.end + offset, exdate);
            }
        }
    }
    message.set_method(Some("REQUEST"));
    any.then_some(message)
}

/// The CANCEL telling an attendee the meeting (every component they were in) is off.
pub fn cancel_for(doc: &Document, attendee: &str) -> Option<Document> {
    let mut message = request_for(doc, attendee)?;
    message.set_method(Some("CANCEL"));
    set_component_property(&mut message, "STATUS", "CANCELLED");
    Some(message)
}

/// The REPLY an attendee sends: each component with only the attendee's own ATTENDEE.
pub fn reply_from(doc: &Document, attendee: &str) -> Option<Document> {
    let mut message = calendar_copy(doc);
    let mut any = false;
    message.retain_components(|name, span, d| {
        if !is_schedulable(name) {
            return true;
        }
        let keep = lists_attendee(d, span, attendee);
        any |= keep;
        keep
    });
    message
        .lines
        .retain(|l| l.name != "ATTENDEE" || same_address(&l.value, attendee));
    message.set_method(Some("REPLY"));
    any.then_some(message)
}

/// Sets (or adds) a property on every schedulable component.
fn set_component_property(doc: &mut Document, name: &str, value: &str) {
    for (comp, span) in doc.components().into_iter().rev() {
        if !is_schedulable(&comp) {
            continue;
        }
        let own = doc.own_lines(span);
        match own
            .iter()
            .copied()
            .find(|&i| doc.lines.get(i).is_some_and(|l| l.name == name))
        {
            Some(i) => {
                if let Some(line) = doc.lines.get_mut(i) {
                    line.value = value.to_owned();
                    line.params.clear();
                }
            }
            None => doc.lines.insert(span.end, Line::new(name, value)),
        }
    }
}

/// Sets a parameter on the attendee's ATTENDEE lines in components `which` accepts
/// (by RECURRENCE-ID; `None` is the master); returns whether anything changed.
fn set_attendee_param(
    doc: &mut Document,
    attendee: &str,
    param: &str,
    value: &str,
    which: &dyn Fn(Option<&str>) -> bool,
) -> bool {
    let mut changed = false;
    for (comp, span) in doc.components() {
        if !is_schedulable(&comp) {
            continue;
        }
        let rid = doc.property(span, "RECURRENCE-ID").map(|l| l.value.clone());
        if !which(rid.as_deref()) {
            continue;
        }
        for i in doc.own_lines(span) {
            if let Some(line) = doc.lines.get_mut(i) {
                if line.name == "ATTENDEE"
                    && same_address(&line.value, attendee)
                    && line.param(param) != Some(value)
                {
                    line.set_param(param, value);
                    changed = true;
                }
            }
        }
    }
    changed
}

/// SCHEDULE-STATUS on the attendee in every component of the organizer's copy.
pub fn set_schedule_status(doc: &mut Document, attendee: &str, status: ScheduleStatus) -> bool {
    set_attendee_param(doc, attendee, "SCHEDULE-STATUS", status.code(), &|_| true)
}

/// PARTSTAT of the attendee in every component (a room's automatic answer).
pub fn set_partstat(doc: &mut Document, attendee: &str, partstat: &str) -> bool {
    set_attendee_param(doc, attendee, "PARTSTAT", partstat, &|_| true)
}

/// Applies an attendee's REPLY to the organizer's copy: each replied component's PARTSTAT
/// goes to the organizer's component with the same RECURRENCE-ID (the master when the
/// organizer has no such override). Returns whether the copy changed.
pub fn apply_reply(organizer_copy: &mut Document, reply: &Document, attendee: &str) -> bool {
    let Some(answer) = Meeting::of(reply) else {
        return false;
    };
    let overrides: BTreeSet<String> = Meeting::of(organizer_copy)
        .map(|m| {
            m.occurrences
                .into_iter()
                .filter_map(|o| o.recurrence_id)
                .collect()
        })
        .unwrap_or_default();
    let mut changed = false;
    for occurrence in &answer.occurrences {
        let Some(partstat) = occurrence
            .attendees
            .iter()
            .find(|a| same_address(&a.address, attendee))
            .map(|a| a.partstat.clone())
        else {
            continue;
        };
        let target = occurrence
            .recurrence_id
            .clone()
            .filter(|rid| overrides.contains(rid));
        changed |= set_attendee_param(organizer_copy, attendee, "PARTSTAT", &partstat, &|rid| {
            rid.map(str::to_owned) == target
        });
    }
    changed
}

/// Whether two versions of a meeting differ only in what scheduling itself writes
/// (DTSTAMP, PARTSTAT, SCHEDULE-STATUS): then no new REQUEST is due.
pub fn same_for_attendees(a: &Document, b: &Document) -> bool {
    fn reduced(doc: &Document) -> Document {
        let mut d = calendar_copy(doc);
        d.lines.retain(|l| l.name != "DTSTAMP");
        for line in &mut d.lines {
            line.remove_param("PARTSTAT");
        }
        d
    }
    reduced(a) == reduced(b)
}

/// Schedule-Tag (RFC 6638 §3.2.10) of a stored meeting: a digest of what the organizer
/// decides, leaving out DTSTAMP, PARTSTAT and the server's parameters, so applying an
/// attendee's REPLY to the organizer's copy keeps the tag while an organizer's change, or
/// a new REQUEST delivered to an attendee, changes it. `None` without an ORGANIZER.
pub fn schedule_tag(text: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    let doc = Document::parse(text).ok()?;
    Meeting::of(&doc)?;
    let mut reduced = calendar_copy(&doc);
    reduced.lines.retain(|l| l.name != "DTSTAMP");
    for line in &mut reduced.lines {
        line.remove_param("PARTSTAT");
    }
    let digest = Sha256::digest(reduced.to_text().as_bytes());
    Some(format!(
        "\"{}\"",
        hex::encode(digest.get(..12).unwrap_or(&digest))
    ))
}

/// A VFREEBUSY request POSTed to an outbox (RFC 6638 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeBusyRequest {
    pub organizer: String,
    pub attendees: Vec<String>,
    pub dtstart: String,
    pub dtend: String,
    pub uid: Option<String>,
}

/// Most recipients answered in one free-busy POST.
pub const MAX_FREEBUSY_ATTENDEES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreeBusyRequestError {
    #[error("METHOD must be REQUEST")]
    NotARequest,
    #[error("no VFREEBUSY component")]
    NoFreeBusy,
    #[error("VFREEBUSY lacks {0}")]
    Missing(&'static str),
    #[error("{count} attendees, the limit is {limit}")]
    TooManyAttendees { count: usize, limit: usize },
}

impl FreeBusyRequest {
    pub fn of(doc: &Document) -> Result<Self, FreeBusyRequestError> {
        let method = doc
            .lines
            .iter()
            .find(|l| l.name == "METHOD")
            .map(|l| l.value.trim().to_ascii_uppercase());
        if method.as_deref() != Some("REQUEST") {
            return Err(FreeBusyRequestError::NotARequest);
        }
        let (_, span) = doc
            .components()
            .into_iter()
            .find(|(name, _)| name == "VFREEBUSY")
            .ok_or(FreeBusyRequestError::NoFreeBusy)?;
        let get = |name: &'static str| {
            doc.property(span, name)
                .map(|l| l.value.clone())
                .ok_or(FreeBusyRequestError::Missing(name))
        };
        let attendees: Vec<String> = doc
            .own_lines(span)
            .into_iter()
            .filter_map(|i| doc.lines.get(i))
            .filter(|l| l.name == "ATTENDEE")
            .map(|l| l.value.clone())
            .collect();
        if attendees.is_empty() {
            return Err(FreeBusyRequestError::Missing("ATTENDEE"));
        }
        if attendees.len() > MAX_FREEBUSY_ATTENDEES {
            return Err(FreeBusyRequestError::TooManyAttendees {
                count: attendees.len(),
                limit: MAX_FREEBUSY_ATTENDEES,
            });
        }
        Ok(Self {
            organizer: get("ORGANIZER")?,
            attendees,
            dtstart: get("DTSTART")?,
            dtend: get("DTEND")?,
            uid: get("UID").ok(),
        })
    }
}

/// The VFREEBUSY REPLY for one attendee: busy periods only, never what they are
/// (`periods` are `(FBTYPE, "start/end")`, already formatted in UTC).
pub fn freebusy_reply(
    request: &FreeBusyRequest,
    attendee: &str,
    periods: &[(&str, String)],
    dtstamp: &str,
) -> String {
    let mut doc = Document { lines: Vec::new() };
    let mut push = |name: &str, value: &str| doc.lines.push(Line::new(name, value));
    push("BEGIN", "VCALENDAR");
    push("VERSION", "2.0");
    push("PRODID", "-//Serval//CalDAV//EN");
    push("METHOD", "REPLY");
    push("BEGIN", "VFREEBUSY");
    if let Some(uid) = &request.uid {
        push("UID", uid);
    }
    push("DTSTAMP", dtstamp);
    push("DTSTART", &request.dtstart);
    push("DTEND", &request.dtend);
    push("ORGANIZER", &request.organizer);
    push("ATTENDEE", attendee);
    for (fbtype, period) in periods {
        let mut line = Line::new("FREEBUSY", period);
        line.set_param("FBTYPE", fbtype);
        doc.lines.push(line);
    }
    doc.lines.push(Line::new("END", "VFREEBUSY"));
    doc.lines.push(Line::new("END", "VCALENDAR"));
    doc.to_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEETING: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\n\
BEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260112T090000Z\r\nDTEND:20260112T100000Z\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Planning\r\nORGANIZER;CN=Ann:mailto:ann@example.com\r\n\
ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:Bob@Example.com\r\n\
ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:carol@example.com\r\nATTENDEE:mailto:zed@elsewhere.org\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260119T090000Z\r\nDTSTART:20260121T090000Z\r\n\
DTEND:20260121T100000Z\r\nSUMMARY:Planning (moved)\r\nORGANIZER;CN=Ann:mailto:ann@example.com\r\n\
ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nATTENDEE:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn doc(text: &str) -> Document {
        Document::parse(text).unwrap()
    }

    #[test]
    fn meeting_lists_server_scheduled_attendees() {
        let m = Meeting::of(&doc(MEETING)).unwrap();
        assert_eq!(m.uid, "m1");
        assert_eq!(m.organizer, "mailto:ann@example.com");
        assert_eq!(m.occurrences.len(), 2);
        assert_eq!(
            m.server_scheduled_attendees()
                .into_iter()
                .collect::<Vec<_>>(),
            ["mailto:bob@example.com", "mailto:zed@elsewhere.org"]
        );
        let bob = |a: &str| same_address(a, "mailto:bob@example.com");
        assert_eq!(
            m.partstats_of(&bob),
            [
                (None, "NEEDS-ACTION".to_owned()),
                (
                    Some("20260119T090000Z".to_owned()),
                    "NEEDS-ACTION".to_owned()
                )
            ]
        );
    }

    #[test]
    fn organizer_scheduled_by_the_client_leaves_everyone_to_it() {
        let text = MEETING.replace(
            "ORGANIZER;CN=Ann:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP",
            "ORGANIZER;SCHEDULE-AGENT=CLIENT:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP",
        );
        let m = Meeting::of(&doc(&text)).unwrap();
        assert!(m.organizer_client_scheduled);
        assert!(m.server_scheduled_attendees().is_empty());
    }

    #[test]
    fn request_only_carries_the_components_an_attendee_is_in() {
        let zed = request_for(&doc(MEETING), "mailto:zed@elsewhere.org").unwrap();
        let text = zed.to_text();
        assert!(text.contains("METHOD:REQUEST\r\n"));
        assert!(!text.contains("RECURRENCE-ID"), "{text}");
        let bob = request_for(&doc(MEETING), "mailto:bob@example.com").unwrap();
        assert_eq!(bob.components().len(), 2);
        assert!(request_for(&doc(MEETING), "mailto:nobody@example.com").is_none());
    }

    #[test]
    fn an_attendee_taken_off_one_instance_gets_it_excluded() {
        let text = MEETING.replace(
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nATTENDEE:mailto:bob@example.com\r\nEND:VEVENT",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nEND:VEVENT",
        );
        let bob = request_for(&doc(&text), "mailto:bob@example.com").unwrap();
        assert_eq!(bob.components().len(), 1);
        let (_, master) = bob.components()[0];
        assert_eq!(
            bob.property(master, "EXDATE").map(|l| l.value.as_str()),
            Some("20260119T090000Z")
        );
        // Someone on every instance gets no EXDATE.
        let both = request_for(&doc(MEETING), "mailto:bob@example.com").unwrap();
        assert!(!both.to_text().contains("EXDATE"));
    }

    #[test]
    fn cancel_marks_components_cancelled() {
        let text = cancel_for(&doc(MEETING), "mailto:bob@example.com")
            .unwrap()
            .to_text();
        assert!(text.contains("METHOD:CANCEL\r\n"));
        assert_eq!(text.matches("STATUS:CANCELLED\r\n").count(), 2);
    }

    #[test]
    fn reply_for_one_instance_updates_only_that_override() {
        let mut attendee_copy = calendar_copy(&doc(MEETING));
        let bob = "mailto:bob@example.com";
        set_attendee_param(&mut attendee_copy, bob, "PARTSTAT", "DECLINED", &|rid| {
            rid == Some("20260119T090000Z")
        });
        set_attendee_param(&mut attendee_copy, bob, "PARTSTAT", "ACCEPTED", &|rid| {
            rid.is_none()
        });
        let reply = reply_from(&attendee_copy, bob).unwrap();
        let reply_text = reply.to_text();
        assert!(reply_text.contains("METHOD:REPLY"));
        assert!(
            !reply_text.contains("zed@"),
            "only bob's line: {reply_text}"
        );
        let mut organizer = doc(MEETING);
        assert!(apply_reply(&mut organizer, &reply, bob));
        let m = Meeting::of(&organizer).unwrap();
        let is_bob = |a: &str| same_address(a, bob);
        assert_eq!(
            m.partstats_of(&is_bob),
            [
                (None, "ACCEPTED".to_owned()),
                (Some("20260119T090000Z".to_owned()), "DECLINED".to_owned())
            ]
        );
        assert!(!apply_reply(&mut organizer, &reply, bob), "idempotent");
    }

    #[test]
    fn schedule_status_is_set_and_stripped_for_attendees() {
        let mut organizer = doc(MEETING);
        assert!(set_schedule_status(
            &mut organizer,
            "mailto:zed@elsewhere.org",
            ScheduleStatus::Pending
        ));
        assert!(organizer
            .to_text()
            .contains("ATTENDEE;SCHEDULE-STATUS=1.0:mailto:zed@elsewhere.org"));
        let copy = calendar_copy(&organizer).to_text();
        assert!(!copy.contains("SCHEDULE-STATUS"));
        assert!(same_for_attendees(&organizer, &doc(MEETING)));
        let moved = MEETING.replace("DTSTART:20260112T090000Z", "DTSTART:20260112T080000Z");
        assert!(!same_for_attendees(&organizer, &doc(&moved)));
    }

    #[test]
    fn schedule_tag_ignores_replies_but_not_organizer_changes() {
        let tag = schedule_tag(MEETING).unwrap();
        let mut replied = doc(MEETING);
        set_partstat(&mut replied, "mailto:bob@example.com", "ACCEPTED");
        set_schedule_status(
            &mut replied,
            "mailto:bob@example.com",
            ScheduleStatus::Success,
        );
        assert_eq!(schedule_tag(&replied.to_text()).unwrap(), tag);
        let moved = MEETING.replace("DTSTART:20260112T090000Z", "DTSTART:20260112T080000Z");
        assert_ne!(schedule_tag(&moved).unwrap(), tag);
        assert_eq!(schedule_tag("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"), None);
    }

    /// Every prefix of a real meeting (as a cut-off upload would deliver it) goes
    /// through every iTIP path without a panic.
    #[test]
    fn truncated_meetings_never_panic() {
        let bob = "mailto:bob@example.com";
        for end in (0..=MEETING.len()).filter(|&i| MEETING.is_char_boundary(i)) {
            let text = &MEETING[..end];
            let _ = schedule_tag(text);
            let Ok(d) = Document::parse(text) else {
                continue;
            };
            let _ = FreeBusyRequest::of(&d);
            let _ = Meeting::of(&d).map(|m| m.server_scheduled_attendees());
            let _ = cancel_for(&d, bob);
            if let Some(reply) = reply_from(&d, bob) {
                let mut organizer = doc(MEETING);
                apply_reply(&mut organizer, &reply, bob);
            }
        }
    }

    #[test]
    fn freebusy_request_parses_and_reply_has_no_titles() {
        let req = doc("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:fb1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260112T000000Z\r\nDTEND:20260113T000000Z\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE:mailto:bob@example.com\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n");
        let request = FreeBusyRequest::of(&req).unwrap();
        assert_eq!(request.attendees, ["mailto:bob@example.com"]);
        let reply = freebusy_reply(
            &request,
            "mailto:bob@example.com",
            &[("BUSY", "20260112T090000Z/20260112T100000Z".into())],
            "20260101T000000Z",
        );
        assert!(reply.contains("FREEBUSY;FBTYPE=BUSY:20260112T090000Z/20260112T100000Z\r\n"));
        assert!(reply.contains("METHOD:REPLY\r\n"));
        let not_request =
            doc("BEGIN:VCALENDAR\r\nBEGIN:VFREEBUSY\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n");
        assert_eq!(
            FreeBusyRequest::of(&not_request),
            Err(FreeBusyRequestError::NotARequest)
        );
    }
}
