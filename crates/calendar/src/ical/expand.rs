//! Recurrence expansion: a calendar object's instances as UTC intervals.
//!
//! calcard does the RFC 5545 work (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides incl.
//! RANGE=THISANDFUTURE, VTIMEZONE and IANA TZIDs); this module bounds it, turns instances
//! into plain UTC seconds with their free-busy status, and writes RFC 4791 §9.6.5
//! `expand` output. Floating times (no TZID, and all-day DATE values) are read as UTC;
//! the calendar's `calendar-timezone` is not applied yet.

use calcard::common::timezone::Tz;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarParameterName,
    ICalendarProperty, ICalendarStatus, ICalendarTransparency, ICalendarValue,
};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// A half-open UTC interval in Unix seconds; a missing bound is open (RFC 4791 §9.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl TimeRange {
    pub fn new(start: i64, end: i64) -> Self {
        Self {
            start: Some(start),
            end: Some(end),
        }
    }

    /// RFC 4791 §9.9 overlap: a zero-length instance matches when it starts inside the range.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        let before_end = self.end.is_none_or(|range_end| start < range_end);
        let after_start = match self.start {
            None => true,
            Some(range_start) if end > start => end > range_start,
            Some(range_start) => start >= range_start,
        };
        before_end && after_start
    }
}

/// How an instance counts for free-busy (RFC 5545 §3.2.9 FBTYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BusyStatus {
    /// TRANSP:TRANSPARENT or STATUS:CANCELLED, or not an event.
    Free,
    Busy,
    Tentative,
    Unavailable,
}

impl BusyStatus {
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Free => 0,
            Self::Busy => 1,
            Self::Tentative => 2,
            Self::Unavailable => 3,
        }
    }

    pub fn from_i64(value: i64) -> Self {
        match value {
            1 => Self::Busy,
            2 => Self::Tentative,
            3 => Self::Unavailable,
            _ => Self::Free,
        }
    }

    /// FBTYPE parameter value, `None` for free time.
    pub fn fbtype(self) -> Option<&'static str> {
        match self {
            Self::Free => None,
            Self::Busy => Some("BUSY"),
            Self::Tentative => Some("BUSY-TENTATIVE"),
            Self::Unavailable => Some("BUSY-UNAVAILABLE"),
        }
    }
}

/// One occurrence of a calendar object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    /// UTC Unix seconds.
    pub start: i64,
    pub end: i64,
    /// Index into `ICalendar::components` of the component this instance comes from
    /// (the master, or the override that replaced it).
    pub comp_id: u32,
    /// RECURRENCE-ID in UTC seconds; `None` for a non-recurring object.
    pub recurrence_id: Option<i64>,
    /// Start was a floating time or a DATE (all-day).
    pub floating: bool,
    pub all_day: bool,
    /// A VTODO without dates: spans [`UNDATED_START`, `UNDATED_END`).
    pub undated: bool,
    /// Seconds to add to `start`/`end` to get back the floating local time, after
    /// [`apply_floating_zone`] moved them to the calendar's zone (0 otherwise).
    pub local_shift: i64,
    pub busy: BusyStatus,
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the span of an undated VTODO.
pub const UNDATED_START: i64 = -62_135_596_800;
pub const UNDATED_END: i64 = 253_402_300_799;

/// The instances of an object, and how far they are known to be complete.
#[derive(Debug, Clone, Default)]
pub struct Expansion {
    /// Sorted by start.
    pub instances: Vec<Instance>,
    /// `None`: every instance is listed. `Some(t)`: the recurrence goes on (or hit the
    /// step cap) and instances are complete only for starts before `t`.
    pub complete_until: Option<i64>,
}

/// The zone of a `calendar-timezone` property (a VCALENDAR holding one VTIMEZONE), used
/// for floating times (RFC 4791 §5.2.2).
pub fn zone_of_calendar_timezone(text: &str) -> Option<Tz> {
    let mut parser = calcard::Parser::new(text);
    let calcard::Entry::ICalendar(ical) = parser.entry() else {
        return None;
    };
    let tzid = ical.timezones().find_map(|tz| {
        tz.property(&ICalendarProperty::Tzid)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_text())
    })?;
    // The resolver understands IANA names and custom VTIMEZONE rules alike.
    let zone = ical.build_tz_resolver().resolve(tzid)?;
    (!zone.is_floating()).then_some(zone)
}

/// Re-reads floating instances (no TZID, all-day) as local times in `zone` instead of UTC.
pub fn apply_floating_zone(expansion: &mut Expansion, zone: Tz) {
    use chrono::TimeZone;
    let shift = |seconds: i64| -> i64 {
        DateTime::<Utc>::from_timestamp(seconds, 0)
            .and_then(|utc| zone.from_local_datetime(&utc.naive_utc()).earliest())
            .map_or(seconds, |local| local.timestamp())
    };
    for instance in expansion
        .instances
        .iter_mut()
        .filter(|i| i.floating && !i.undated)
    {
        let local_start = instance.start;
        instance.start = shift(instance.start);
        instance.local_shift = local_start - instance.start;
        instance.end = shift(instance.end);
        instance.recurrence_id = instance.recurrence_id.map(shift);
    }
    expansion.instances.sort_by_key(|i| (i.start, i.comp_id));
}

/// Expansion steps per object: bounds CPU per PUT for rules like FREQ=MINUTELY with no end.
/// A daily rule from ten years ago still fits (3,650 steps).
pub const MAX_EXPANSION_STEPS: usize = 20_000;

/// Expands every instance of `ical` (at most `max_steps` rule steps).
pub fn expand(ical: &ICalendar, max_steps: usize) -> Expansion {
    // calcard pairs an override with its master only when their SEQUENCE values agree;
    // clients bump SEQUENCE on one and not the other, and RFC 5545 matches overrides by
    // UID and RECURRENCE-ID alone, so SEQUENCE is dropped from the copy we expand.
    let without_sequence;
    let source = if ical.components.iter().any(|c| c.is_recurrence_override()) {
        let mut copy = ical.clone();
        for comp in &mut copy.components {
            comp.entries
                .retain(|e| e.name != ICalendarProperty::Sequence);
        }
        without_sequence = copy;
        &without_sequence
    } else {
        ical
    };
    let raw = source.expand_dates(Tz::Floating, max_steps);
    let tz_resolver = ical.build_tz_resolver();
    let mut instances = Vec::with_capacity(raw.events.len());
    let mut recurring_masters = Vec::new();
    let mut open_ended = false;
    for (comp_id, comp) in ical.components.iter().enumerate() {
        // VTIMEZONE's STANDARD/DAYLIGHT rules recur forever but are not instances.
        if !comp.component_type.has_time_ranges() {
            continue;
        }
        if let Some(rule) = comp
            .entries
            .iter()
            .find_map(|e| match (&e.name, e.values.first()) {
                (ICalendarProperty::Rrule, Some(ICalendarValue::RecurrenceRule(rule))) => {
                    Some(rule)
                }
                _ => None,
            })
        {
            recurring_masters.push(comp_id);
            let bounded = rule.until.is_some()
                || rule
                    .count
                    .is_some_and(|c| usize::try_from(c).is_ok_and(|c| c < max_steps));
            open_ended |= !bounded;
        } else if comp
            .entries
            .iter()
            .any(|e| e.name == ICalendarProperty::Rdate)
        {
            recurring_masters.push(comp_id);
        }
    }
    for event in raw.events {
        let comp_id = event.comp_id;
        let Some(comp) = usize::try_from(comp_id)
            .ok()
            .and_then(|i| ical.components.get(i))
        else {
            continue;
        };
        // calcard reports rule instances of UTC events as floating (its default zone), so
        // floating is read from the component's own DTSTART.
        let all_day = dtstart_is_date(comp);
        let floating = all_day || dtstart_is_floating(comp);
        let (start, end) = event.timestamps();
        let recurrence_id = override_recurrence_id(comp, &tz_resolver).or_else(|| {
            usize::try_from(comp_id)
                .ok()
                .filter(|i| recurring_masters.contains(i))
                .map(|_| start)
        });
        instances.push(Instance {
            start,
            end: end.max(start),
            comp_id,
            recurrence_id,
            floating,
            all_day,
            undated: false,
            local_shift: 0,
            busy: busy_status(comp),
        });
    }
    // RFC 4791 §9.9: a VTODO with neither DTSTART, DUE, COMPLETED nor CREATED matches
    // every time range; it gets one instance spanning all representable time.
    for (comp_id, comp) in ical.components.iter().enumerate() {
        let Ok(comp_id) = u32::try_from(comp_id) else {
            break;
        };
        if comp.component_type == ICalendarComponentType::VTodo
            && !instances.iter().any(|i| i.comp_id == comp_id)
        {
            instances.push(Instance {
                start: UNDATED_START,
                end: UNDATED_END,
                comp_id,
                recurrence_id: None,
                floating: false,
                all_day: false,
                undated: true,
                local_shift: 0,
                busy: BusyStatus::Free,
            });
        }
    }
    instances.sort_by_key(|i| (i.start, i.comp_id));
    let complete_until = if open_ended {
        Some(instances.last().map_or(i64::MIN, |i| i.start))
    } else {
        None
    };
    Expansion {
        instances,
        complete_until,
    }
}

fn dtstart_is_date(comp: &ICalendarComponent) -> bool {
    comp.entries.iter().any(|e| {
        e.name == ICalendarProperty::Dtstart
            && matches!(e.values.first(), Some(ICalendarValue::PartialDateTime(dt)) if !dt.has_time())
    })
}

/// DTSTART without TZID and without `Z`.
fn dtstart_is_floating(comp: &ICalendarComponent) -> bool {
    comp.entries.iter().any(|e| {
        e.name == ICalendarProperty::Dtstart
            && e.tz_id().is_none()
            && matches!(e.values.first(), Some(ICalendarValue::PartialDateTime(dt)) if dt.tz_hour.is_none())
    })
}

fn override_recurrence_id(
    comp: &ICalendarComponent,
    tz_resolver: &calcard::icalendar::timezone::TzResolver<&str>,
) -> Option<i64> {
    let entry = comp
        .entries
        .iter()
        .find(|e| e.name == ICalendarProperty::RecurrenceId)?;
    let Some(ICalendarValue::PartialDateTime(dt)) = entry.values.first() else {
        return None;
    };
    let tz = tz_resolver.resolve_or_default(entry.tz_id());
    dt.to_date_time_with_tz(tz).map(|d| d.timestamp())
}

/// Free-busy status of one VEVENT (RFC 4791 §7.10: TRANSP and STATUS decide).
pub fn busy_status(comp: &ICalendarComponent) -> BusyStatus {
    if comp.component_type != ICalendarComponentType::VEvent {
        return BusyStatus::Free;
    }
    if matches!(
        comp.transparency(),
        Some(ICalendarTransparency::Transparent)
    ) {
        return BusyStatus::Free;
    }
    match comp.status() {
        Some(ICalendarStatus::Cancelled) => BusyStatus::Free,
        Some(ICalendarStatus::Tentative) => BusyStatus::Tentative,
        _ => BusyStatus::Busy,
    }
}

/// UTC `YYYYMMDDTHHMMSSZ`.
pub fn format_utc(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0).map_or_else(
        || "19700101T000000Z".to_owned(),
        |d| d.format("%Y%m%dT%H%M%SZ").to_string(),
    )
}

/// Parses `YYYYMMDDTHHMMSSZ` (the only form CalDAV allows in time-range attributes).
pub fn parse_utc(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|d| d.and_utc().timestamp())
}

fn format_date(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map_or_else(|| "19700101".to_owned(), |d| d.format("%Y%m%d").to_string())
}

fn format_floating(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0).map_or_else(
        || "19700101T000000".to_owned(),
        |d| d.format("%Y%m%dT%H%M%S").to_string(),
    )
}

/// Properties replaced by explicit per-instance values in `expand` output.
fn is_recurrence_property(name: &ICalendarProperty) -> bool {
    matches!(
        name,
        ICalendarProperty::Dtstart
            | ICalendarProperty::Dtend
            | ICalendarProperty::Duration
            | ICalendarProperty::Due
            | ICalendarProperty::Rrule
            | ICalendarProperty::Rdate
            | ICalendarProperty::Exdate
            | ICalendarProperty::Exrule
            | ICalendarProperty::RecurrenceId
    )
}

/// RFC 4791 §9.6.5 `expand`: every instance overlapping `range` as its own component
/// with UTC DTSTART/DTEND and a RECURRENCE-ID, no RRULE/RDATE/EXDATE, no VTIMEZONE.
pub fn write_expanded(
    ical: &ICalendar,
    expansion: &Expansion,
    range: TimeRange,
    max_instances: usize,
) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("BEGIN:VCALENDAR\r\n");
    if let Some(root) = ical.components.first() {
        for entry in &root.entries {
            let _ = entry.write_to(&mut out);
        }
    }
    for instance in expansion
        .instances
        .iter()
        .filter(|i| range.overlaps(i.start, i.end))
        .take(max_instances)
    {
        let Some(comp) = usize::try_from(instance.comp_id)
            .ok()
            .and_then(|i| ical.components.get(i))
        else {
            continue;
        };
        if instance.undated {
            // Nothing to expand: the task is written as stored.
            write_component(ical, instance.comp_id, &mut out, 0);
            continue;
        }
        let name = comp.component_type.as_str();
        let _ = write!(out, "BEGIN:{name}\r\n");
        for entry in comp
            .entries
            .iter()
            .filter(|e| !is_recurrence_property(&e.name))
        {
            let _ = entry.write_to(&mut out);
        }
        let (start, end) = if instance.all_day {
            (
                format!(
                    ";VALUE=DATE:{}",
                    format_date(instance.start + instance.local_shift)
                ),
                format!(
                    ";VALUE=DATE:{}",
                    format_date(instance.end + instance.local_shift)
                ),
            )
        } else if instance.floating {
            (
                format!(
                    ":{}",
                    format_floating(instance.start + instance.local_shift)
                ),
                format!(":{}", format_floating(instance.end + instance.local_shift)),
            )
        } else {
            (
                format!(":{}", format_utc(instance.start)),
                format!(":{}", format_utc(instance.end)),
            )
        };
        let _ = write!(out, "DTSTART{start}\r\n");
        if comp.component_type == ICalendarComponentType::VEvent && instance.end > instance.start {
            let _ = write!(out, "DTEND{end}\r\n");
        }
        if let Some(rid) = instance.recurrence_id {
            let rid = if instance.all_day {
                format!(";VALUE=DATE:{}", format_date(rid + instance.local_shift))
            } else if instance.floating {
                format!(":{}", format_floating(rid + instance.local_shift))
            } else {
                format!(":{}", format_utc(rid))
            };
            let _ = write!(out, "RECURRENCE-ID{rid}\r\n");
        }
        for child in &comp.component_ids {
            write_component(ical, *child, &mut out, 0);
        }
        let _ = write!(out, "END:{name}\r\n");
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

/// Nesting allowed when writing sub-components (VALARM inside VEVENT is depth 1).
const MAX_WRITE_DEPTH: usize = 8;

fn write_component(ical: &ICalendar, comp_id: u32, out: &mut String, depth: usize) {
    if depth > MAX_WRITE_DEPTH {
        return;
    }
    let Some(comp) = usize::try_from(comp_id)
        .ok()
        .and_then(|i| ical.components.get(i))
    else {
        return;
    };
    let name = comp.component_type.as_str();
    let _ = write!(out, "BEGIN:{name}\r\n");
    for entry in &comp.entries {
        let _ = entry.write_to(out);
    }
    for child in &comp.component_ids {
        write_component(ical, *child, out, depth + 1);
    }
    let _ = write!(out, "END:{name}\r\n");
}

/// Unused-parameter guard so FBTYPE on VFREEBUSY is recognised when we add VAVAILABILITY.
#[allow(dead_code)]
fn fbtype_param(comp: &ICalendarComponent) -> Option<&str> {
    comp.entries.iter().find_map(|e| {
        e.parameter(&ICalendarParameterName::Fbtype)
            .and_then(|v| v.as_text())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::{CalendarObject, ParseLimits};

    fn instances(body: &str) -> Expansion {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{body}END:VCALENDAR\r\n"
        );
        let obj = CalendarObject::parse(&text, &ParseLimits::default()).unwrap();
        expand(&obj.ical, MAX_EXPANSION_STEPS)
    }

    fn utc(text: &str) -> i64 {
        parse_utc(text).unwrap()
    }

    const BERLIN_TZ: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

    #[test]
    fn weekly_berlin_event_keeps_local_time_across_dst() {
        // 2026-03-29 is the spring-forward Sunday in Europe/Berlin: 09:00 local is 08:00 UTC
        // before and 07:00 UTC after.
        let e = instances(&format!("{BERLIN_TZ}BEGIN:VEVENT\r\nUID:w\r\nDTSTART;TZID=Europe/Berlin:20260323T090000\r\nDTEND;TZID=Europe/Berlin:20260323T100000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT\r\n"));
        let starts: Vec<i64> = e.instances.iter().map(|i| i.start).collect();
        assert_eq!(
            starts,
            vec![
                utc("20260323T080000Z"),
                utc("20260330T070000Z"),
                utc("20260406T070000Z")
            ]
        );
        assert_eq!(e.instances[1].end - e.instances[1].start, 3600);
        assert_eq!(e.complete_until, None);
        assert_eq!(e.instances[1].recurrence_id, Some(utc("20260330T070000Z")));
        assert!(!e.instances[1].floating);
    }

    #[test]
    fn utc_rule_instances_are_not_floating() {
        let e = instances("BEGIN:VEVENT\r\nUID:m\r\nDTSTART:20260112T120000Z\r\nRRULE:FREQ=MONTHLY;COUNT=2\r\nEND:VEVENT\r\n");
        assert!(e.instances.iter().all(|i| !i.floating));
        let f = instances("BEGIN:VEVENT\r\nUID:f\r\nDTSTART:20260112T120000\r\nRRULE:FREQ=MONTHLY;COUNT=2\r\nEND:VEVENT\r\n");
        assert!(f.instances.iter().all(|i| i.floating));
    }

    #[test]
    fn iana_tzid_without_vtimezone_resolves() {
        let e = instances("BEGIN:VEVENT\r\nUID:x\r\nDTSTART;TZID=Europe/Berlin:20261026T090000\r\nDURATION:PT30M\r\nEND:VEVENT\r\n");
        // The day after fall-back (2026-10-25): CET, UTC+1.
        assert_eq!(e.instances[0].start, utc("20261026T080000Z"));
        assert_eq!(e.instances[0].end, utc("20261026T083000Z"));
        assert_eq!(e.instances[0].recurrence_id, None);
    }

    #[test]
    fn exdate_rdate_and_override_are_applied() {
        let e = instances(
            "BEGIN:VEVENT\r\nUID:r\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=DAILY;COUNT=4\r\nEXDATE:20260106T100000Z\r\nRDATE:20260110T150000Z\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:r\r\nRECURRENCE-ID:20260107T100000Z\r\nDTSTART:20260107T140000Z\r\nDTEND:20260107T143000Z\r\nSUMMARY:moved\r\nEND:VEVENT\r\n",
        );
        let got: Vec<(i64, i64, Option<i64>)> = e
            .instances
            .iter()
            .map(|i| (i.start, i.end, i.recurrence_id))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    utc("20260105T100000Z"),
                    utc("20260105T110000Z"),
                    Some(utc("20260105T100000Z"))
                ),
                (
                    utc("20260107T140000Z"),
                    utc("20260107T143000Z"),
                    Some(utc("20260107T100000Z"))
                ),
                (
                    utc("20260108T100000Z"),
                    utc("20260108T110000Z"),
                    Some(utc("20260108T100000Z"))
                ),
                (
                    utc("20260110T150000Z"),
                    utc("20260110T160000Z"),
                    Some(utc("20260110T150000Z"))
                ),
            ]
        );
        assert_eq!(
            e.instances[1].comp_id, 2,
            "the moved instance comes from the override"
        );
    }

    #[test]
    fn override_with_different_sequence_still_replaces_its_instance() {
        let e = instances(
            "BEGIN:VEVENT\r\nUID:s\r\nSEQUENCE:2\r\nDTSTART:20260112T120000Z\r\nDTEND:20260112T130000Z\r\nRRULE:FREQ=MONTHLY;COUNT=3\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:s\r\nSEQUENCE:5\r\nRECURRENCE-ID:20260212T120000Z\r\nDTSTART:20260213T120000Z\r\nDTEND:20260213T130000Z\r\nEND:VEVENT\r\n",
        );
        let starts: Vec<i64> = e.instances.iter().map(|i| i.start).collect();
        assert_eq!(
            starts,
            vec![
                utc("20260112T120000Z"),
                utc("20260213T120000Z"),
                utc("20260312T120000Z")
            ]
        );
    }

    #[test]
    fn undated_todo_spans_all_time() {
        let e = instances("BEGIN:VTODO\r\nUID:t\r\nSUMMARY:someday\r\nEND:VTODO\r\n");
        assert_eq!(e.instances.len(), 1);
        assert!(e.instances[0].undated);
        assert!(
            TimeRange::new(utc("20300101T000000Z"), utc("20300102T000000Z"))
                .overlaps(e.instances[0].start, e.instances[0].end)
        );
    }

    #[test]
    fn floating_times_follow_the_calendar_timezone() {
        let mut e =
            instances("BEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20260301\r\nEND:VEVENT\r\n");
        let zone = zone_of_calendar_timezone(&format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{BERLIN_TZ}END:VCALENDAR\r\n"
        ))
        .unwrap();
        apply_floating_zone(&mut e, zone);
        // Midnight in Berlin (CET) is 23:00 UTC the day before.
        assert_eq!(
            (e.instances[0].start, e.instances[0].end),
            (utc("20260228T230000Z"), utc("20260301T230000Z"))
        );
    }

    #[test]
    fn all_day_event_is_floating_one_day() {
        let e = instances("BEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20260301\r\nEND:VEVENT\r\n");
        assert_eq!(e.instances.len(), 1);
        let i = e.instances[0];
        assert!(i.all_day && i.floating);
        assert_eq!(
            (i.start, i.end),
            (utc("20260301T000000Z"), utc("20260302T000000Z"))
        );
    }

    #[test]
    fn open_ended_rule_is_capped_and_says_so() {
        let e = instances("BEGIN:VEVENT\r\nUID:o\r\nDTSTART:20260101T000000Z\r\nRRULE:FREQ=HOURLY\r\nEND:VEVENT\r\n");
        assert_eq!(e.instances.len(), MAX_EXPANSION_STEPS);
        assert_eq!(e.complete_until, Some(e.instances.last().unwrap().start));
    }

    #[test]
    fn transparent_and_cancelled_are_free() {
        let t = instances("BEGIN:VEVENT\r\nUID:t\r\nDTSTART:20260101T100000Z\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\n");
        assert_eq!(t.instances[0].busy, BusyStatus::Free);
        let c = instances("BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20260101T100000Z\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n");
        assert_eq!(c.instances[0].busy, BusyStatus::Free);
        let p = instances("BEGIN:VEVENT\r\nUID:p\r\nDTSTART:20260101T100000Z\r\nSTATUS:TENTATIVE\r\nEND:VEVENT\r\n");
        assert_eq!(p.instances[0].busy, BusyStatus::Tentative);
    }

    #[test]
    fn overlap_follows_rfc4791_table() {
        let r = TimeRange::new(100, 200);
        assert!(r.overlaps(150, 160));
        assert!(!r.overlaps(200, 300), "end is exclusive");
        assert!(
            !r.overlaps(50, 100),
            "an instance ending at range start does not overlap"
        );
        assert!(r.overlaps(100, 100), "zero-length at start matches");
        assert!(!r.overlaps(200, 200));
        assert!(TimeRange {
            start: Some(100),
            end: None
        }
        .overlaps(1000, 2000));
    }

    #[test]
    fn expand_output_lists_instances_in_utc_with_recurrence_id() {
        let text = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{BERLIN_TZ}BEGIN:VEVENT\r\nUID:w\r\nSUMMARY:Standup\r\nDTSTART;TZID=Europe/Berlin:20260323T090000\r\nDTEND;TZID=Europe/Berlin:20260323T100000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
        let obj = CalendarObject::parse(&text, &ParseLimits::default()).unwrap();
        let e = expand(&obj.ical, MAX_EXPANSION_STEPS);
        let out = write_expanded(
            &obj.ical,
            &e,
            TimeRange::new(utc("20260329T000000Z"), utc("20260410T000000Z")),
            100,
        );
        assert_eq!(out.matches("BEGIN:VEVENT").count(), 2);
        assert!(out.contains("DTSTART:20260330T070000Z\r\nDTEND:20260330T080000Z\r\nRECURRENCE-ID:20260330T070000Z\r\n"), "{out}");
        assert!(!out.contains("RRULE") && !out.contains("VTIMEZONE"));
        assert!(CalendarObject::parse(&out, &ParseLimits::default()).is_ok());
    }
}

#[cfg(test)]
mod dst_edge_tests {
    use super::*;
    use crate::ical::{CalendarObject, ParseLimits};

    fn first_instance(dtstart: &str) -> Instance {
        let text = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:e\r\nDTSTART;TZID=Europe/Berlin:{dtstart}\r\nDURATION:PT1H\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
        let object = CalendarObject::parse(&text, &ParseLimits::default()).expect("accepted");
        expand(&object.ical, 10).instances[0]
    }

    #[test]
    fn repeated_hour_takes_the_first_occurrence() {
        // 2026-10-25 02:30 happens twice in Berlin; the first is CEST (+02:00) = 00:30 UTC.
        assert_eq!(
            first_instance("20261025T023000").start,
            parse_utc("20261025T003000Z").unwrap()
        );
    }

    #[test]
    fn skipped_hour_uses_the_offset_before_the_gap() {
        // 2026-03-29 02:30 does not exist in Berlin; read with +01:00 it is 01:30 UTC.
        assert_eq!(
            first_instance("20260329T023000").start,
            parse_utc("20260329T013000Z").unwrap()
        );
    }
}
