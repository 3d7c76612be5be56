//! iCalendar bodies as a PUT delivers them: parse, validate, expand, write `expand` output,
//! and evaluate a filter. Nothing may panic; expanded output must parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serval_calendar::ical::expand::{expand, write_expanded, TimeRange};
use serval_calendar::ical::{CalendarObject, ComponentKind, ParseLimits};
use serval_calendar::query::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = ParseLimits::default();
    let Ok(object) = CalendarObject::parse(text, &limits) else { return };
    // Fewer steps than production keep each run fast; the code paths are the same.
    let expansion = expand(&object.ical, 2_000);
    let _ = Filter::for_kind(ComponentKind::Event).matches(&object.ical, &expansion);
    let out = write_expanded(&object.ical, &expansion, TimeRange::default(), 100);
    let _ = CalendarObject::parse(&out, &ParseLimits { max_resource_bytes: usize::MAX, ..limits });
});
