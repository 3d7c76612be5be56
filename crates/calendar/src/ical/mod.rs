//! iCalendar resources as CalDAV stores them (RFC 4791 §4.1): parsing and validation.
//!
//! Parsing is `calcard`'s; this module adds the CalDAV rules on top: one VCALENDAR per
//! resource, one component type, one UID shared by every component (the master and its
//! RECURRENCE-ID overrides), no METHOD property, bounded size; the text must be well
//! formed line by line ([`structure`], as calcard recovers from damage) and its times
//! placeable (every TZID known, DTEND not before DTSTART, [`zones`]). Expansion into instances
//! lives in [`expand`], text helpers used by filters in [`text`].

pub mod calendar_data;
pub mod expand;
pub mod structure;
pub mod text;
pub mod zones;

use calcard::icalendar::{ICalendar, ICalendarComponentType, ICalendarProperty};
use calcard::{Entry, Parser};

/// Components a calendar resource may hold (VTIMEZONE rides along and is not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComponentKind {
    Event,
    Todo,
    Journal,
    FreeBusy,
}

impl ComponentKind {
    /// The iCalendar name, as used in `supported-calendar-component-set` and comp-filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "VEVENT",
            Self::Todo => "VTODO",
            Self::Journal => "VJOURNAL",
            Self::FreeBusy => "VFREEBUSY",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Event, Self::Todo, Self::Journal, Self::FreeBusy]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
    }

    fn from_component(kind: &ICalendarComponentType) -> Option<Self> {
        match kind {
            ICalendarComponentType::VEvent => Some(Self::Event),
            ICalendarComponentType::VTodo => Some(Self::Todo),
            ICalendarComponentType::VJournal => Some(Self::Journal),
            ICalendarComponentType::VFreebusy => Some(Self::FreeBusy),
            _ => None,
        }
    }
}

/// Limits applied before and while parsing untrusted iCalendar text.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// CalDAV `max-resource-size`; CalendarServer ships 1 MB.
    pub max_resource_bytes: usize,
    /// Components per resource (master + overrides + alarms + timezones).
    pub max_components: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_resource_bytes: 1024 * 1024,
            max_components: 2_000,
        }
    }
}

/// Why a body is not acceptable calendar data; each maps to a CalDAV precondition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcalError {
    #[error("calendar resource is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("calendar resource holds {count} components, the limit is {limit}")]
    TooManyComponents { count: usize, limit: usize },
    #[error("not iCalendar data: {0}")]
    Malformed(String),
    #[error("more than one VCALENDAR object in one resource")]
    MultipleObjects,
    #[error("the VCALENDAR holds no VEVENT, VTODO, VJOURNAL or VFREEBUSY")]
    NoComponent,
    #[error("a resource may hold one component type, found {first} and {second}")]
    MixedComponents {
        first: &'static str,
        second: &'static str,
    },
    #[error("{kind} without a UID")]
    MissingUid { kind: &'static str },
    #[error("components with different UIDs `{first}` and `{second}` in one resource")]
    MultipleUids { first: String, second: String },
    #[error("METHOD is not allowed in a stored calendar resource (RFC 4791 §4.1)")]
    MethodNotAllowed,
    #[error("component {uid}: {reason}")]
    InvalidDates { uid: String, reason: String },
    #[error("{0}")]
    Structure(structure::StructureError),
    #[error("body is not UTF-8: {0}")]
    NotUtf8(String),
    #[error(
        "TZID `{tzid}` on {property} of {component} is neither defined by a VTIMEZONE in the \
         resource nor an IANA time zone"
    )]
    UnknownTimezone {
        tzid: String,
        property: String,
        component: String,
    },
    #[error("VTIMEZONE `{tzid}` has no STANDARD or DAYLIGHT observance with DTSTART, TZOFFSETFROM and TZOFFSETTO")]
    EmptyTimezone { tzid: String },
    #[error("two VTIMEZONE definitions of `{tzid}` disagree about its offsets")]
    ConflictingTimezones { tzid: String },
}

/// A validated calendar resource.
#[derive(Debug, Clone)]
pub struct CalendarObject {
    pub ical: ICalendar,
    pub uid: String,
    pub kind: ComponentKind,
}

impl CalendarObject {
    /// Parses and validates one stored calendar resource.
    pub fn parse(text: &str, limits: &ParseLimits) -> Result<Self, IcalError> {
        if text.len() > limits.max_resource_bytes {
            return Err(IcalError::TooLarge {
                size: text.len(),
                limit: limits.max_resource_bytes,
            });
        }
        structure::check(text).map_err(|error| match error.fault {
            structure::StructureFault::SecondCalendar => IcalError::MultipleObjects,
            _ => IcalError::Structure(error),
        })?;
        let mut parser = Parser::new(text);
        let ical = match parser.entry() {
            Entry::ICalendar(ical) => ical,
            Entry::Eof => return Err(IcalError::Malformed("empty body".into())),
            Entry::InvalidLine(line) => {
                return Err(IcalError::Malformed(format!(
                    "invalid line `{}`",
                    truncate(&line, 80)
                )))
            }
            Entry::VCard(_) => return Err(IcalError::Malformed("vCard, not iCalendar".into())),
            Entry::TooManyComponents => {
                return Err(IcalError::TooManyComponents {
                    count: usize::MAX,
                    limit: limits.max_components,
                })
            }
            other => return Err(IcalError::Malformed(format!("{other:?}"))),
        };
        match parser.entry() {
            Entry::Eof => {}
            Entry::ICalendar(_) => return Err(IcalError::MultipleObjects),
            other => {
                return Err(IcalError::Malformed(format!(
                    "trailing data: {}",
                    truncate(&format!("{other:?}"), 80)
                )))
            }
        }
        Self::validate(ical, limits)
    }

    fn validate(mut ical: ICalendar, limits: &ParseLimits) -> Result<Self, IcalError> {
        if ical.components.len() > limits.max_components {
            return Err(IcalError::TooManyComponents {
                count: ical.components.len(),
                limit: limits.max_components,
            });
        }
        let root = ical.components.first().ok_or(IcalError::NoComponent)?;
        if root.component_type != ICalendarComponentType::VCalendar {
            return Err(IcalError::Malformed(format!(
                "top-level {} instead of VCALENDAR",
                root.component_type.as_str()
            )));
        }
        if root
            .entries
            .iter()
            .any(|e| e.name == ICalendarProperty::Method)
        {
            return Err(IcalError::MethodNotAllowed);
        }
        let mut kind: Option<ComponentKind> = None;
        let mut uid: Option<String> = None;
        for child_id in &root.component_ids {
            let Some(child) = usize::try_from(*child_id)
                .ok()
                .and_then(|i| ical.components.get(i))
            else {
                continue;
            };
            let Some(child_kind) = ComponentKind::from_component(&child.component_type) else {
                continue;
            };
            match kind {
                None => kind = Some(child_kind),
                Some(k) if k != child_kind => {
                    return Err(IcalError::MixedComponents {
                        first: k.as_str(),
                        second: child_kind.as_str(),
                    })
                }
                Some(_) => {}
            }
            let child_uid = child.uid().ok_or(IcalError::MissingUid {
                kind: child_kind.as_str(),
            })?;
            match &uid {
                None => uid = Some(child_uid.to_owned()),
                Some(u) if u != child_uid => {
                    return Err(IcalError::MultipleUids {
                        first: u.clone(),
                        second: child_uid.to_owned(),
                    })
                }
                Some(_) => {}
            }
        }
        let kind = kind.ok_or(IcalError::NoComponent)?;
        let uid = uid.ok_or(IcalError::MissingUid {
            kind: kind.as_str(),
        })?;
        check_timezones(&mut ical)?;
        pin_ambiguous_local_times(&mut ical);
        // A VEVENT without DTSTART, or with an unreadable DTSTART/DTEND/RRULE, cannot be
        // placed in time; calcard reports those while expanding.
        let probe = ical.expand_dates(calcard::common::timezone::Tz::Floating, 1);
        if let Some(error) = probe.errors.first() {
            return Err(IcalError::InvalidDates {
                uid,
                reason: error.error.to_string(),
            });
        }
        check_end_after_start(&ical, &uid)?;
        Ok(Self { ical, uid, kind })
    }

    /// The object serialised back to text (CRLF, folded), as stored.
    pub fn to_ical_string(&self) -> String {
        self.ical.to_string()
    }
}

/// Every VTIMEZONE has observances and one meaning per TZID, and every TZID used is defined
/// or an IANA name; definitions under names calcard does not know get their IANA stand-in.
fn check_timezones(ical: &mut ICalendar) -> Result<(), IcalError> {
    let mut defined: Vec<(String, Vec<zones::Onset>)> = Vec::new();
    for vtimezone in ical.timezones() {
        let Some(tzid) = zones::tzid(vtimezone) else {
            return Err(IcalError::Malformed("VTIMEZONE without TZID".into()));
        };
        let onsets = zones::onsets(ical, vtimezone);
        if onsets.is_empty() {
            return Err(IcalError::EmptyTimezone { tzid: tzid.into() });
        }
        match defined.iter().find(|(id, _)| id == tzid) {
            Some((_, first)) if *first != onsets => {
                return Err(IcalError::ConflictingTimezones { tzid: tzid.into() })
            }
            Some(_) => {}
            None => defined.push((tzid.to_owned(), onsets)),
        }
    }
    zones::name_custom_zones(ical);
    let resolver = ical.build_owned_tz_resolver();
    for comp in &ical.components {
        if matches!(
            comp.component_type,
            ICalendarComponentType::VTimezone
                | ICalendarComponentType::Standard
                | ICalendarComponentType::Daylight
        ) {
            continue;
        }
        for entry in &comp.entries {
            let Some(tzid) = entry.tz_id() else { continue };
            let known =
                defined.iter().any(|(id, _)| id == tzid) || resolver.resolve(tzid).is_some();
            if !known {
                return Err(IcalError::UnknownTimezone {
                    tzid: tzid.to_owned(),
                    property: entry.name.as_str().to_owned(),
                    component: comp.component_type.as_str().to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// RFC 5545 §3.6.1/§3.6.2: DTEND (VEVENT) and DUE (VTODO) are not before DTSTART. Equal is
/// allowed: clients write zero-length events.
fn check_end_after_start(ical: &ICalendar, uid: &str) -> Result<(), IcalError> {
    let resolver = ical.build_owned_tz_resolver();
    let instant = |comp: &calcard::icalendar::ICalendarComponent, name: &ICalendarProperty| {
        let entry = comp.entries.iter().find(|e| &e.name == name)?;
        let calcard::icalendar::ICalendarValue::PartialDateTime(dt) = entry.values.first()? else {
            return None;
        };
        let zone = resolver.resolve_or_default(entry.tz_id());
        let local = dt.to_date_time()?;
        Some(match local.offset {
            Some(offset) => {
                local.date_time.and_utc().timestamp() - i64::from(offset.local_minus_utc())
            }
            None => {
                use chrono::TimeZone;
                match zone.from_local_datetime(&local.date_time).earliest() {
                    Some(placed) => placed.timestamp(),
                    None => local.date_time.and_utc().timestamp(),
                }
            }
        })
    };
    for comp in &ical.components {
        let end_name = match comp.component_type {
            ICalendarComponentType::VEvent => ICalendarProperty::Dtend,
            ICalendarComponentType::VTodo => ICalendarProperty::Due,
            _ => continue,
        };
        let (Some(start), Some(end)) = (
            instant(comp, &ICalendarProperty::Dtstart),
            instant(comp, &end_name),
        ) else {
            continue;
        };
        if end < start {
            return Err(IcalError::InvalidDates {
                uid: uid.to_owned(),
                reason: format!(
                    "{} is {} s before DTSTART in {}",
                    end_name.as_str(),
                    start - end,
                    comp.component_type.as_str()
                ),
            });
        }
    }
    Ok(())
}

/// Gives an explicit UTC offset to local times that a DST change makes ambiguous (the
/// repeated hour: the first occurrence, RFC 5545 §3.3.5) or nonexistent (the skipped hour:
/// the offset before the gap). calcard refuses such times; clients do create them. The
/// TZID stays, so recurrences still follow the zone. Only the parsed copy changes; the
/// stored text is the client's.
fn pin_ambiguous_local_times(ical: &mut ICalendar) {
    use chrono::{LocalResult, Offset, TimeDelta, TimeZone};
    let resolver = ical.build_owned_tz_resolver();
    for comp in &mut ical.components {
        if !comp.component_type.has_time_ranges() {
            continue;
        }
        for entry in &mut comp.entries {
            if !matches!(
                entry.name,
                ICalendarProperty::Dtstart
                    | ICalendarProperty::Dtend
                    | ICalendarProperty::RecurrenceId
                    | ICalendarProperty::Due
            ) {
                continue;
            }
            let Some(tz) = entry.tz_id().and_then(|tzid| resolver.resolve(tzid)) else {
                continue;
            };
            if tz.is_floating() {
                continue;
            }
            for value in &mut entry.values {
                let calcard::icalendar::ICalendarValue::PartialDateTime(dt) = value else {
                    continue;
                };
                if !dt.has_time() || dt.tz_hour.is_some() {
                    continue;
                }
                let Some(local) = dt.to_date_time().map(|r| r.date_time) else {
                    continue;
                };
                let offset = match tz.offset_from_local_datetime(&local) {
                    LocalResult::Single(_) => continue,
                    LocalResult::Ambiguous(earliest, _) => earliest.fix(),
                    LocalResult::None => match local
                        .checked_sub_signed(TimeDelta::hours(3))
                        .map(|before| tz.offset_from_local_datetime(&before))
                    {
                        Some(LocalResult::Single(o) | LocalResult::Ambiguous(o, _)) => o.fix(),
                        _ => continue,
                    },
                };
                let seconds = offset.local_minus_utc();
                let magnitude = seconds.unsigned_abs();
                dt.tz_minus = seconds < 0;
                dt.tz_hour = u8::try_from(magnitude / 3600).ok();
                dt.tz_minute = u8::try_from((magnitude % 3600) / 60).ok();
            }
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CalendarObject, IcalError> {
        CalendarObject::parse(text, &ParseLimits::default())
    }

    const SIMPLE: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:a@b\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:Hi\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn simple_event_parses_with_uid_and_kind() {
        let obj = parse(SIMPLE).unwrap();
        assert_eq!(obj.uid, "a@b");
        assert_eq!(obj.kind, ComponentKind::Event);
    }

    #[test]
    fn too_large_is_refused_before_parsing() {
        let limits = ParseLimits {
            max_resource_bytes: 10,
            ..ParseLimits::default()
        };
        assert!(matches!(
            CalendarObject::parse(SIMPLE, &limits),
            Err(IcalError::TooLarge { limit: 10, .. })
        ));
    }

    #[test]
    fn two_uids_are_refused() {
        let text = SIMPLE.replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:other\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
        assert!(matches!(parse(&text), Err(IcalError::MultipleUids { .. })));
    }

    #[test]
    fn mixed_components_are_refused() {
        let text = SIMPLE.replace(
            "END:VCALENDAR",
            "BEGIN:VTODO\r\nUID:a@b\r\nEND:VTODO\r\nEND:VCALENDAR",
        );
        assert!(matches!(
            parse(&text),
            Err(IcalError::MixedComponents { .. })
        ));
    }

    #[test]
    fn method_is_refused() {
        let text = SIMPLE.replace("VERSION:2.0", "VERSION:2.0\r\nMETHOD:REQUEST");
        assert_eq!(parse(&text).unwrap_err(), IcalError::MethodNotAllowed);
    }

    #[test]
    fn missing_uid_and_garbage_are_refused() {
        assert!(matches!(
            parse(&SIMPLE.replace("UID:a@b\r\n", "")),
            Err(IcalError::MissingUid { .. })
        ));
        assert!(parse("hello world").is_err());
        assert!(parse("").is_err());
        assert!(parse("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").is_err());
    }

    #[test]
    fn missing_dtstart_is_refused() {
        let text = SIMPLE.replace("DTSTART:20260105T100000Z\r\n", "");
        assert!(matches!(parse(&text), Err(IcalError::InvalidDates { .. })));
    }

    const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";

    fn zoned(tzid: &str, zones: &str) -> String {
        SIMPLE
            .replace(
                "PRODID:-//t//t//EN\r\n",
                &format!("PRODID:-//t//t//EN\r\n{zones}"),
            )
            .replace(
                "DTSTART:20260105T100000Z",
                &format!("DTSTART;TZID={tzid}:20260105T100000"),
            )
            .replace(
                "DTEND:20260105T110000Z",
                &format!("DTEND;TZID={tzid}:20260105T110000"),
            )
    }

    #[test]
    fn truncated_text_is_refused_with_its_line() {
        let cut = &SIMPLE[..SIMPLE.find("END:VEVENT").unwrap()];
        let error = parse(cut).unwrap_err();
        assert!(matches!(error, IcalError::Structure(_)), "{error:?}");
        assert!(
            error.to_string().contains("BEGIN:VEVENT at line 4"),
            "{error}"
        );
    }

    #[test]
    fn end_before_start_is_refused_and_equal_is_not() {
        let backwards = SIMPLE.replace("DTEND:20260105T110000Z", "DTEND:20260105T090000Z");
        let error = parse(&backwards).unwrap_err();
        assert!(
            error.to_string().contains("DTEND is 3600 s before DTSTART"),
            "{error}"
        );
        let zero = SIMPLE.replace("DTEND:20260105T110000Z", "DTEND:20260105T100000Z");
        parse(&zero).unwrap();
        // Zones count: 10:00 Berlin is 09:00Z, so an end at 09:30Z is after it.
        let zoned_start = zoned("Europe/Berlin", BERLIN).replace(
            "DTEND;TZID=Europe/Berlin:20260105T110000",
            "DTEND:20260105T093000Z",
        );
        parse(&zoned_start).unwrap();
        let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t\r\nDTSTART:20260105T100000Z\r\nDUE:20260104T100000Z\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
        assert!(parse(todo).unwrap_err().to_string().contains("DUE is"));
    }

    #[test]
    fn tzids_must_be_defined_or_iana() {
        parse(&zoned("Europe/Berlin", BERLIN)).unwrap();
        parse(&zoned("America/New_York", "")).unwrap();
        let error = parse(&zoned("Mars/Olympus_Mons", "")).unwrap_err();
        assert!(
            matches!(error, IcalError::UnknownTimezone { ref tzid, .. } if tzid == "Mars/Olympus_Mons"),
            "{error:?}"
        );
        assert!(error.to_string().contains("DTSTART of VEVENT"), "{error}");
        // A private name is fine when the resource defines it.
        let office = BERLIN.replace("TZID:Europe/Berlin", "TZID:Office Time");
        let obj = parse(&zoned("\"Office Time\"", &office)).unwrap();
        let resolver = obj.ical.build_owned_tz_resolver();
        assert!(resolver
            .resolve("Office Time")
            .is_some_and(|tz| !tz.is_floating()));
    }

    #[test]
    fn duplicate_timezones_must_agree() {
        parse(&zoned("Europe/Berlin", &format!("{BERLIN}{BERLIN}"))).unwrap();
        let other = BERLIN.replace("BYMONTH=10;BYDAY=-1SU", "BYMONTH=9;BYDAY=-1SU");
        let error = parse(&zoned("Europe/Berlin", &format!("{BERLIN}{other}"))).unwrap_err();
        assert_eq!(
            error,
            IcalError::ConflictingTimezones {
                tzid: "Europe/Berlin".into()
            }
        );
        let empty = "BEGIN:VTIMEZONE\r\nTZID:Nothing\r\nEND:VTIMEZONE\r\n";
        assert!(matches!(
            parse(&zoned("Nothing", empty)),
            Err(IcalError::EmptyTimezone { .. })
        ));
    }
}
