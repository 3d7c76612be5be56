//! iCalendar bodies as a PUT delivers them: parse, validate, expand, write `expand` output,
//! and evaluate a filter; and the RFC 6638 iTIP paths (content lines, REQUEST/CANCEL/REPLY,
//! Schedule-Tag, free-busy requests), which also see unvalidated outbox POSTs. Nothing may
//! panic; expanded output must parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serval_calendar::ical::expand::{expand, write_expanded, TimeRange};
use serval_calendar::ical::{CalendarObject, ComponentKind, ParseLimits};
use serval_calendar::query::Filter;
use serval_calendar::schedule::itip;
use serval_calendar::schedule::lines::Document;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    scheduling(text);
    let limits = ParseLimits::default();
    let Ok(object) = CalendarObject::parse(text, &limits) else {
        return;
    };
    // Fewer steps than production keep each run fast; the code paths are the same.
    let expansion = expand(&object.ical, 2_000);
    let _ = Filter::for_kind(ComponentKind::Event).matches(&object.ical, &expansion);
    let out = write_expanded(&object.ical, &expansion, TimeRange::default(), 100);
    let _ = CalendarObject::parse(
        &out,
        &ParseLimits {
            max_resource_bytes: usize::MAX,
            ..limits
        },
    );
});

fn scheduling(text: &str) {
    let _ = itip::schedule_tag(text);
    let Ok(doc) = Document::parse(text) else {
        return;
    };
    let _ = itip::FreeBusyRequest::of(&doc);
    let Some(meeting) = itip::Meeting::of(&doc) else {
        return;
    };
    for attendee in meeting.server_scheduled_attendees() {
        let _ = itip::request_for(&doc, &attendee);
        let _ = itip::cancel_for(&doc, &attendee);
        if let Some(reply) = itip::reply_from(&doc, &attendee) {
            let mut organizer_copy = doc.clone();
            let _ = itip::apply_reply(&mut organizer_copy, &reply, &attendee);
        }
    }
}
