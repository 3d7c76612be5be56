//! VTIMEZONE definitions: what offsets they describe, and an IANA zone that keeps them.
//!
//! calcard places local times by TZID name (IANA, Windows and a few vendor names, or the
//! VTIMEZONE's `X-LIC-LOCATION`), following CalConnect's advice to trust names over
//! definitions. A definition under a name it does not know (`TZID:Office Time`, as some
//! exporters and scripts write) would be read as floating time and land hours off. Here the
//! definition's own onsets are computed (the YEARLY BYMONTH/BYDAY rules and RDATEs every
//! real VTIMEZONE uses) and matched against the IANA zones; the parsed copy then carries the
//! match as `X-LIC-LOCATION`, so calcard's recurrence expansion follows it. The stored text
//! stays the client's. No crate evaluates VTIMEZONE rules, hence this module.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarEntry, ICalendarFrequency,
    ICalendarProperty, ICalendarValue,
};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Weekday};

/// Onsets are computed up to this year; rules past it are the same rules.
const LAST_YEAR: i32 = 2037;
/// Matching looks at the years clients' definitions are written for (Outlook's begin in
/// 1601 with today's rules, so older years would never match any zone's history).
const MATCH_FROM_YEAR: i32 = 2010;

/// A change of offset: from this UTC second on, `offset` seconds east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Onset {
    pub at: i64,
    pub offset: i32,
}

/// The onsets a VTIMEZONE describes, sorted; empty when it holds no usable observance.
pub fn onsets(ical: &ICalendar, vtimezone: &ICalendarComponent) -> Vec<Onset> {
    let mut onsets = Vec::new();
    for id in &vtimezone.component_ids {
        let Some(observance) = usize::try_from(*id)
            .ok()
            .and_then(|i| ical.components.get(i))
        else {
            continue;
        };
        if matches!(
            observance.component_type,
            ICalendarComponentType::Standard | ICalendarComponentType::Daylight
        ) {
            observance_onsets(observance, &mut onsets);
        }
    }
    onsets.sort();
    onsets.dedup();
    onsets
}

fn observance_onsets(observance: &ICalendarComponent, out: &mut Vec<Onset>) {
    let (Some(start), Some(from), Some(to)) = (
        local_value(observance, &ICalendarProperty::Dtstart),
        offset_value(observance, &ICalendarProperty::Tzoffsetfrom),
        offset_value(observance, &ICalendarProperty::Tzoffsetto),
    ) else {
        return;
    };
    let onset_at = |local: NaiveDateTime| Onset {
        at: local.and_utc().timestamp() - i64::from(from),
        offset: to,
    };
    out.push(onset_at(start));
    for entry in observance
        .entries
        .iter()
        .filter(|e| e.name == ICalendarProperty::Rdate)
    {
        for value in &entry.values {
            if let Some(local) = as_local(value) {
                out.push(onset_at(local));
            }
        }
    }
    let Some(rule) = observance
        .entries
        .iter()
        .find_map(|e| match (&e.name, e.values.first()) {
            (ICalendarProperty::Rrule, Some(ICalendarValue::RecurrenceRule(rule))) => Some(rule),
            _ => None,
        })
    else {
        return;
    };
    if rule.freq != ICalendarFrequency::Yearly || rule.interval.is_some_and(|i| i > 1) {
        return;
    }
    let until = rule.until.as_ref().and_then(|u| {
        let local = u.to_date_time()?;
        // UNTIL is UTC when it says so, else local time in the offset before the onset.
        Some(match local.offset {
            Some(_) => local.date_time.and_utc().timestamp(),
            None => local.date_time.and_utc().timestamp() - i64::from(from),
        })
    });
    let month = rule
        .bymonth
        .first()
        .map_or(start.month(), |m| u32::from(m.month()));
    let mut count = 0u32;
    for year in start.year()..=LAST_YEAR.max(start.year()) {
        if rule.count.is_some_and(|c| count >= c) {
            break;
        }
        let Some(day) = rule_day(year, month, rule, start.day()) else {
            continue;
        };
        let local = day.and_time(start.time());
        if local < start {
            continue;
        }
        let onset = onset_at(local);
        if until.is_some_and(|u| onset.at > u) {
            break;
        }
        out.push(onset);
        count += 1;
    }
}

/// The day a YEARLY rule picks in `year`: BYDAY (`-1SU`, `2SU`), optionally within
/// BYMONTHDAY (`BYMONTHDAY=8,9,...,14;BYDAY=SU`, as older Outlook writes), or a fixed day.
fn rule_day(
    year: i32,
    month: u32,
    rule: &calcard::icalendar::ICalendarRecurrenceRule,
    default_day: u32,
) -> Option<NaiveDate> {
    let Some(by_day) = rule.byday.first() else {
        let day = rule
            .bymonthday
            .first()
            .map_or(default_day, |d| u32::from(d.unsigned_abs()));
        return NaiveDate::from_ymd_opt(year, month, day);
    };
    let weekday = weekday(by_day.weekday);
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let days_in_month = (1..=31)
        .take_while(|d| NaiveDate::from_ymd_opt(year, month, *d).is_some())
        .count() as u32;
    let matching: Vec<NaiveDate> = (1..=days_in_month)
        .filter_map(|d| first.with_day(d))
        .filter(|d| d.weekday() == weekday)
        .filter(|d| {
            rule.bymonthday.is_empty()
                || rule.bymonthday.iter().any(|&md| {
                    let md = i64::from(md);
                    let day = i64::from(d.day());
                    md == day || md < 0 && i64::from(days_in_month) + 1 + md == day
                })
        })
        .collect();
    match by_day.ordwk {
        None | Some(0) => matching.first().copied(),
        Some(n) if n > 0 => matching.get(usize::try_from(n - 1).ok()?).copied(),
        Some(n) => matching
            .len()
            .checked_sub(usize::try_from(-n).ok()?)
            .and_then(|i| matching.get(i))
            .copied(),
    }
}

fn weekday(day: calcard::icalendar::ICalendarWeekday) -> Weekday {
    use calcard::icalendar::ICalendarWeekday as W;
    match day {
        W::Monday => Weekday::Mon,
        W::Tuesday => Weekday::Tue,
        W::Wednesday => Weekday::Wed,
        W::Thursday => Weekday::Thu,
        W::Friday => Weekday::Fri,
        W::Saturday => Weekday::Sat,
        W::Sunday => Weekday::Sun,
    }
}

fn entry<'a>(comp: &'a ICalendarComponent, name: &ICalendarProperty) -> Option<&'a ICalendarEntry> {
    comp.entries.iter().find(|e| &e.name == name)
}

fn local_value(comp: &ICalendarComponent, name: &ICalendarProperty) -> Option<NaiveDateTime> {
    as_local(entry(comp, name)?.values.first()?)
}

fn as_local(value: &ICalendarValue) -> Option<NaiveDateTime> {
    let ICalendarValue::PartialDateTime(dt) = value else {
        return None;
    };
    Some(dt.to_date_time()?.date_time)
}

fn offset_value(comp: &ICalendarComponent, name: &ICalendarProperty) -> Option<i32> {
    let ICalendarValue::PartialDateTime(dt) = entry(comp, name)?.values.first()? else {
        return None;
    };
    let seconds = i32::from(dt.tz_hour?) * 3600 + i32::from(dt.tz_minute.unwrap_or(0)) * 60;
    Some(if dt.tz_minus { -seconds } else { seconds })
}

/// The instants at which a stand-in zone must agree with the definition: just before and
/// after each onset, midway between onsets, and at each January and July first.
fn sample_points(onsets: &[Onset]) -> Vec<(i64, i32)> {
    let from = NaiveDate::from_ymd_opt(MATCH_FROM_YEAR, 1, 1).map_or(0, |d| {
        d.and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp()
    });
    let offset_at = |t: i64| {
        onsets
            .iter()
            .rev()
            .find(|o| o.at <= t)
            .or(onsets.first())
            .map(|o| o.offset)
    };
    let mut instants = Vec::new();
    for pair in onsets.windows(2) {
        if pair[1].at >= from {
            instants.push(pair[1].at - 3600);
            instants.push(pair[1].at + 3600);
            instants.push(pair[0].at.max(from) / 2 + pair[1].at / 2);
        }
    }
    for year in MATCH_FROM_YEAR..=LAST_YEAR {
        for month in [1, 7] {
            if let Some(d) =
                NaiveDate::from_ymd_opt(year, month, 1).and_then(|d| d.and_hms_opt(12, 0, 0))
            {
                instants.push(d.and_utc().timestamp());
            }
        }
    }
    instants
        .into_iter()
        .filter(|&t| t >= from)
        .filter_map(|t| Some((t, offset_at(t)?)))
        .collect()
}

/// The IANA zone that agrees with the onsets at the most sample instants (all of them when
/// the definition is a real zone's current rules under another name).
pub fn stand_in_zone(onsets: &[Onset]) -> Option<chrono_tz::Tz> {
    if onsets.is_empty() {
        return None;
    }
    static CACHE: OnceLock<Mutex<HashMap<Vec<Onset>, chrono_tz::Tz>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(zone) = cache.lock().ok().and_then(|c| c.get(onsets).copied()) {
        return Some(zone);
    }
    let samples = sample_points(onsets);
    let agreeing = |zone: &chrono_tz::Tz| {
        samples
            .iter()
            .filter(|(t, offset)| {
                chrono::DateTime::from_timestamp(*t, 0).is_some_and(|utc| {
                    zone.offset_from_utc_datetime(&utc.naive_utc())
                        .fix()
                        .local_minus_utc()
                        == *offset
                })
            })
            .count()
    };
    let mut best: Option<(usize, chrono_tz::Tz)> = None;
    for zone in chrono_tz::TZ_VARIANTS {
        let score = agreeing(&zone);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, zone));
            if score == samples.len() {
                break;
            }
        }
    }
    let zone = best.map(|(_, zone)| zone)?;
    if let Ok(mut cache) = cache.lock() {
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(onsets.to_vec(), zone);
    }
    Some(zone)
}

/// Gives each VTIMEZONE whose TZID calcard cannot place the IANA zone its rules match, as
/// `X-LIC-LOCATION` on the parsed copy.
pub fn name_custom_zones(ical: &mut ICalendar) {
    let unplaced: Vec<(usize, chrono_tz::Tz)> = ical
        .components
        .iter()
        .enumerate()
        .filter(|(_, c)| c.component_type == ICalendarComponentType::VTimezone)
        .filter(|(_, c)| c.timezone().is_none())
        .filter_map(|(i, c)| Some((i, stand_in_zone(&onsets(ical, c))?)))
        .collect();
    for (index, zone) in unplaced {
        ical.components[index].entries.push(
            ICalendarEntry::new(ICalendarProperty::Other("X-LIC-LOCATION".into()))
                .with_value(zone.name().to_owned()),
        );
    }
}

/// The TZID a VTIMEZONE defines.
pub fn tzid(vtimezone: &ICalendarComponent) -> Option<&str> {
    entry(vtimezone, &ICalendarProperty::Tzid)?
        .values
        .first()?
        .as_text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use calcard::{Entry, Parser};

    fn parse(text: &str) -> ICalendar {
        match Parser::new(text).entry() {
            Entry::ICalendar(ical) => ical,
            other => panic!("{other:?}"),
        }
    }

    fn zone_text(name: &str, standard: &str, daylight: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VTIMEZONE\r\nTZID:{name}\r\n{standard}{daylight}END:VTIMEZONE\r\nEND:VCALENDAR\r\n"
        )
    }

    const EU_STANDARD: &str = "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n";
    const EU_DAYLIGHT: &str = "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n";

    fn stand_in(text: &str) -> chrono_tz::Tz {
        let ical = parse(text);
        let vtimezone = ical.timezones().next().unwrap();
        stand_in_zone(&onsets(&ical, vtimezone)).unwrap()
    }

    fn offset_on(zone: chrono_tz::Tz, y: i32, m: u32, d: u32) -> i32 {
        let utc = NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        zone.offset_from_utc_datetime(&utc).fix().local_minus_utc()
    }

    #[test]
    fn eu_rules_under_a_private_name_get_a_zone_with_the_same_offsets() {
        let zone = stand_in(&zone_text("Serval Office Time", EU_STANDARD, EU_DAYLIGHT));
        assert_eq!(offset_on(zone, 2026, 1, 15), 3600);
        assert_eq!(offset_on(zone, 2026, 7, 15), 7200);
        // The 2026 changes: 29 March and 25 October, 01:00 UTC.
        let switch = |y, m, d, h| {
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
        };
        let fix = |t| zone.offset_from_utc_datetime(&t).fix().local_minus_utc();
        assert_eq!(fix(switch(2026, 3, 29, 0)), 3600);
        assert_eq!(fix(switch(2026, 3, 29, 2)), 7200);
        assert_eq!(fix(switch(2026, 10, 25, 0)), 7200);
        assert_eq!(fix(switch(2026, 10, 25, 2)), 3600);
    }

    #[test]
    fn outlook_style_monthday_rules_and_half_hour_dst_are_followed() {
        // US rules written the old Outlook way: the Sunday among the 8th..14th of March.
        let us = zone_text(
            "Custom Eastern",
            "BEGIN:STANDARD\r\nDTSTART:16011104T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\n",
            "BEGIN:DAYLIGHT\r\nDTSTART:16010311T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=8,9,10,11,12,13,14;BYDAY=SU\r\nEND:DAYLIGHT\r\n",
        );
        let zone = stand_in(&us);
        assert_eq!(offset_on(zone, 2026, 1, 15), -5 * 3600);
        assert_eq!(offset_on(zone, 2026, 3, 9), -4 * 3600, "after 8 March 2026");
        assert_eq!(offset_on(zone, 2026, 3, 7), -5 * 3600);
        // Lord Howe: +10:30, +11:00 in summer (first Sunday of October to first of April).
        let lord_howe = zone_text(
            "LHI",
            "BEGIN:STANDARD\r\nDTSTART:20080406T020000\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1030\r\nRRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\nEND:STANDARD\r\n",
            "BEGIN:DAYLIGHT\r\nDTSTART:20081005T020000\r\nTZOFFSETFROM:+1030\r\nTZOFFSETTO:+1100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nEND:DAYLIGHT\r\n",
        );
        let zone = stand_in(&lord_howe);
        assert_eq!(offset_on(zone, 2026, 1, 15), 11 * 3600);
        assert_eq!(offset_on(zone, 2026, 7, 15), 10 * 3600 + 1800);
        // Whatever alias is picked, it is Lord Howe's rules.
        assert_eq!(
            zone.offset_from_utc_datetime(
                &NaiveDate::from_ymd_opt(2026, 10, 3)
                    .unwrap()
                    .and_hms_opt(16, 0, 0)
                    .unwrap()
            )
            .fix()
            .local_minus_utc(),
            chrono_tz::Australia::Lord_Howe
                .offset_from_utc_datetime(
                    &NaiveDate::from_ymd_opt(2026, 10, 3)
                        .unwrap()
                        .and_hms_opt(16, 0, 0)
                        .unwrap()
                )
                .fix()
                .local_minus_utc()
        );
    }

    #[test]
    fn a_private_name_becomes_placeable_and_known_names_are_left_alone() {
        let mut ical = parse(&zone_text("Serval Office Time", EU_STANDARD, EU_DAYLIGHT));
        assert!(ical
            .build_owned_tz_resolver()
            .resolve("Serval Office Time")
            .is_none());
        name_custom_zones(&mut ical);
        let resolved = ical.build_owned_tz_resolver().resolve("Serval Office Time");
        assert!(resolved.is_some_and(|tz| !tz.is_floating()));
        let mut known = parse(&zone_text("Europe/Berlin", EU_STANDARD, EU_DAYLIGHT));
        let before = known.components.clone();
        name_custom_zones(&mut known);
        assert_eq!(known.components, before);
    }
}
