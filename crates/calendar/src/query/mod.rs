//! The CalDAV calendar-query filter (RFC 4791 §9.7) and its evaluation.
//!
//! A filter is evaluated against a parsed object plus its expansion, so time-range
//! tests see recurrences, overrides and time zones. [`Filter::index_plan`] tells the store
//! when its instance index alone answers the query (the common "events in this month"
//! case) so no object needs parsing.

pub mod freebusy;

use crate::ical::expand::{Expansion, TimeRange};
use crate::ical::text::{parameter_texts, property_text};
use crate::ical::ComponentKind;
use calcard::icalendar::{ICalendar, ICalendarComponent, ICalendarValue};
use std::collections::HashSet;

/// `CALDAV:filter`: always rooted at a VCALENDAR comp-filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub root: CompFilter,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompFilter {
    pub name: String,
    pub is_not_defined: bool,
    pub time_range: Option<TimeRange>,
    pub prop_filters: Vec<PropFilter>,
    pub comp_filters: Vec<CompFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropFilter {
    pub name: String,
    pub is_not_defined: bool,
    pub time_range: Option<TimeRange>,
    pub text_match: Option<TextMatch>,
    pub param_filters: Vec<ParamFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParamFilter {
    pub name: String,
    pub is_not_defined: bool,
    pub text_match: Option<TextMatch>,
}

/// RFC 4790 collations CalDAV requires (RFC 4791 §7.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Collation {
    #[default]
    AsciiCasemap,
    Octet,
}

impl Collation {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "i;ascii-casemap" => Some(Self::AsciiCasemap),
            "i;octet" => Some(Self::Octet),
            _ => None,
        }
    }
}

/// How the needle must occur (RFC 4791 only knows substring; `match-type` comes from
/// RFC 6352 and clients such as python `caldav` send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchType {
    #[default]
    Contains,
    Equals,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextMatch {
    pub needle: String,
    pub collation: Collation,
    pub match_type: MatchType,
    pub negate: bool,
}

impl TextMatch {
    pub fn matches(&self, haystack: &str) -> bool {
        let found = match self.collation {
            Collation::Octet => match_with(haystack, &self.needle, self.match_type),
            Collation::AsciiCasemap => match_with(
                &haystack.to_ascii_lowercase(),
                &self.needle.to_ascii_lowercase(),
                self.match_type,
            ),
        };
        found != self.negate
    }
}

fn match_with(haystack: &str, needle: &str, match_type: MatchType) -> bool {
    match match_type {
        MatchType::Contains => haystack.contains(needle),
        MatchType::Equals => haystack == needle,
        MatchType::StartsWith => haystack.starts_with(needle),
        MatchType::EndsWith => haystack.ends_with(needle),
    }
}

/// What the store's instance index can do for a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPlan {
    /// Restrict to objects of this kind (from the VCALENDAR's single child comp-filter).
    pub kind: Option<ComponentKind>,
    /// Restrict to objects with an instance overlapping this range.
    pub time_range: Option<TimeRange>,
    /// The index answers the whole filter: no need to parse candidates.
    pub exact: bool,
}

impl Filter {
    /// A filter matching every object of one kind.
    pub fn for_kind(kind: ComponentKind) -> Self {
        Self {
            root: CompFilter {
                name: "VCALENDAR".into(),
                comp_filters: vec![CompFilter {
                    name: kind.as_str().into(),
                    ..CompFilter::default()
                }],
                ..CompFilter::default()
            },
        }
    }

    /// How far the instance index answers this filter.
    pub fn index_plan(&self) -> IndexPlan {
        let root = &self.root;
        let root_simple =
            !root.is_not_defined && root.time_range.is_none() && root.prop_filters.is_empty();
        match root.comp_filters.as_slice() {
            [child] if root_simple && !child.is_not_defined => {
                let kind = ComponentKind::from_name(&child.name);
                let exact = kind.is_some()
                    && child.prop_filters.is_empty()
                    && child.comp_filters.is_empty();
                IndexPlan {
                    kind,
                    time_range: child.time_range,
                    exact,
                }
            }
            [] if root_simple => IndexPlan {
                kind: None,
                time_range: None,
                exact: true,
            },
            _ => IndexPlan {
                kind: None,
                time_range: None,
                exact: false,
            },
        }
    }

    /// Does the object match? `expansion` must be the object's own.
    pub fn matches(&self, ical: &ICalendar, expansion: &Expansion) -> bool {
        let Some(root) = ical.components.first() else {
            return false;
        };
        if !root
            .component_type
            .as_str()
            .eq_ignore_ascii_case(&self.root.name)
        {
            return self.root.is_not_defined;
        }
        if self.root.is_not_defined {
            return false;
        }
        let context = Context { ical, expansion };
        context.component_matches(root, 0, &self.root)
    }
}

struct Context<'a> {
    ical: &'a ICalendar,
    expansion: &'a Expansion,
}

/// Properties a VCALENDAR itself carries (RFC 5545 §3.7, RFC 7986 §5); prop-filters on
/// VCALENDAR naming anything else are read as searches over its components.
fn is_vcalendar_property(name: &str) -> bool {
    const OWN: [&str; 8] = [
        "VERSION",
        "PRODID",
        "CALSCALE",
        "METHOD",
        "NAME",
        "REFRESH-INTERVAL",
        "SOURCE",
        "COLOR",
    ];
    OWN.iter().any(|own| own.eq_ignore_ascii_case(name))
        || name.to_ascii_uppercase().starts_with("X-WR-")
}

/// REPEATs of one alarm considered (RFC 5545 puts no bound; clients use a handful).
const MAX_ALARM_REPEATS: i64 = 100;

/// Nesting of comp-filters we evaluate (VCALENDAR > VEVENT > VALARM is 3).
const MAX_FILTER_DEPTH: usize = 8;

impl Context<'_> {
    fn component_matches(
        &self,
        comp: &ICalendarComponent,
        depth: usize,
        filter: &CompFilter,
    ) -> bool {
        if depth > MAX_FILTER_DEPTH {
            return false;
        }
        filter.prop_filters.iter().all(|pf| {
            if depth == 0 && !is_vcalendar_property(&pf.name) {
                self.calendar_wide_prop_filter_matches(comp, pf)
            } else {
                self.prop_filter_matches(comp, pf)
            }
        }) && filter
            .comp_filters
            .iter()
            .all(|cf| self.child_filter_matches(comp, depth, cf))
    }

    /// A prop-filter on VCALENDAR naming a component property (SUMMARY, CATEGORIES, ...):
    /// clients such as python caldav send these to search without naming a component
    /// type, so it is tested against the calendar's components (RFC 4791 would test the
    /// VCALENDAR's own properties, which never hold these, and match nothing).
    fn calendar_wide_prop_filter_matches(
        &self,
        root: &ICalendarComponent,
        filter: &PropFilter,
    ) -> bool {
        let mut children = root
            .component_ids
            .iter()
            .filter_map(|id| {
                usize::try_from(*id)
                    .ok()
                    .and_then(|i| self.ical.components.get(i))
            })
            .filter(|c| c.component_type.has_time_ranges());
        if filter.is_not_defined {
            children.all(|c| self.prop_filter_matches(c, filter))
        } else {
            children.any(|c| self.prop_filter_matches(c, filter))
        }
    }

    /// A child comp-filter matches when some child of that name passes it (or, with
    /// is-not-defined, when none exists).
    fn child_filter_matches(
        &self,
        parent: &ICalendarComponent,
        depth: usize,
        filter: &CompFilter,
    ) -> bool {
        let children: Vec<(u32, &ICalendarComponent)> = parent
            .component_ids
            .iter()
            .filter_map(|id| {
                usize::try_from(*id)
                    .ok()
                    .and_then(|i| self.ical.components.get(i))
                    .map(|c| (*id, c))
            })
            .filter(|(_, c)| c.component_type.as_str().eq_ignore_ascii_case(&filter.name))
            .collect();
        if filter.is_not_defined {
            return children.is_empty();
        }
        let in_range: Option<HashSet<u32>> = filter.time_range.map(|range| {
            self.expansion
                .instances
                .iter()
                .filter(|i| range.overlaps(i.start, i.end))
                .map(|i| i.comp_id)
                .collect()
        });
        let parent_id = self
            .ical
            .components
            .iter()
            .position(|c| std::ptr::eq(c, parent))
            .and_then(|i| u32::try_from(i).ok());
        children.iter().any(|(id, child)| {
            let time_ok = match (&in_range, filter.name.eq_ignore_ascii_case("VALARM")) {
                (None, _) => true,
                (Some(_), true) => match (filter.time_range, parent_id) {
                    (Some(range), Some(parent_id)) => self.alarm_fires_in(parent_id, child, range),
                    _ => false,
                },
                (Some(set), false) => set.contains(id),
            };
            time_ok && self.component_matches(child, depth + 1, filter)
        })
    }

    /// RFC 4791 §9.9 for VALARM: does a trigger (or a REPEAT of it) of this alarm fall in
    /// `range` for some instance of the component holding it?
    fn alarm_fires_in(&self, parent_id: u32, alarm: &ICalendarComponent, range: TimeRange) -> bool {
        use calcard::icalendar::{
            ICalendarParameterName, ICalendarParameterValue, ICalendarProperty, ICalendarRelated,
        };
        let Some(trigger) = alarm.property(&ICalendarProperty::Trigger) else {
            return false;
        };
        let repeat = alarm
            .property(&ICalendarProperty::Repeat)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_integer())
            .unwrap_or(0)
            .clamp(0, MAX_ALARM_REPEATS);
        let every = alarm
            .property(&ICalendarProperty::Duration)
            .and_then(|e| match e.values.first() {
                Some(ICalendarValue::Duration(d)) => Some(d.as_seconds()),
                _ => None,
            })
            .unwrap_or(0);
        let fires: Vec<i64> = match trigger.values.first() {
            Some(ICalendarValue::Duration(offset)) => {
                let from_end = matches!(
                    trigger.parameter(&ICalendarParameterName::Related),
                    Some(ICalendarParameterValue::Related(ICalendarRelated::End))
                );
                self.expansion
                    .instances
                    .iter()
                    .filter(|i| i.comp_id == parent_id && !i.undated)
                    .map(|i| {
                        (if from_end { i.end } else { i.start }).saturating_add(offset.as_seconds())
                    })
                    .collect()
            }
            Some(ICalendarValue::PartialDateTime(at)) => at
                .to_date_time_with_tz(calcard::common::timezone::Tz::UTC)
                .map(|d| vec![d.timestamp()])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        fires.iter().any(|first| {
            (0..=repeat).any(|k| {
                let at = first.saturating_add(k.saturating_mul(every));
                range.overlaps(at, at)
            })
        })
    }

    fn prop_filter_matches(&self, comp: &ICalendarComponent, filter: &PropFilter) -> bool {
        let mut entries = comp
            .entries
            .iter()
            .filter(|e| e.name.as_str().eq_ignore_ascii_case(&filter.name))
            .peekable();
        if filter.is_not_defined {
            return entries.peek().is_none();
        }
        entries.any(|entry| {
            let time_ok = filter
                .time_range
                .is_none_or(|range| match entry.values.first() {
                    Some(ICalendarValue::PartialDateTime(dt)) => dt
                        .to_date_time_with_tz(calcard::common::timezone::Tz::UTC)
                        .is_some_and(|d| range.overlaps(d.timestamp(), d.timestamp())),
                    _ => false,
                });
            let text_ok = filter
                .text_match
                .as_ref()
                .is_none_or(|tm| tm.matches(&property_text(entry)));
            let params_ok = filter.param_filters.iter().all(|pf| {
                let values = parameter_texts(entry, &pf.name);
                if pf.is_not_defined {
                    values.is_empty()
                } else {
                    !values.is_empty()
                        && pf
                            .text_match
                            .as_ref()
                            .is_none_or(|tm| values.iter().any(|v| tm.matches(v)))
                }
            });
            time_ok && text_ok && params_ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::expand::{expand, parse_utc, MAX_EXPANSION_STEPS};
    use crate::ical::{CalendarObject, ParseLimits};

    fn object(body: &str) -> (CalendarObject, Expansion) {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{body}END:VCALENDAR\r\n"
        );
        let obj = CalendarObject::parse(&text, &ParseLimits::default()).unwrap();
        let expansion = expand(&obj.ical, MAX_EXPANSION_STEPS);
        (obj, expansion)
    }

    fn range(start: &str, end: &str) -> TimeRange {
        TimeRange::new(parse_utc(start).unwrap(), parse_utc(end).unwrap())
    }

    fn events_in(range: TimeRange) -> Filter {
        let mut filter = Filter::for_kind(ComponentKind::Event);
        filter.root.comp_filters[0].time_range = Some(range);
        filter
    }

    const WEEKLY_WITH_MOVED: &str = "BEGIN:VEVENT\r\nUID:w\r\nSUMMARY:Team\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:w\r\nSUMMARY:Team (moved)\r\nRECURRENCE-ID:20260112T100000Z\r\nDTSTART:20260114T100000Z\r\nDTEND:20260114T110000Z\r\nEND:VEVENT\r\n";

    #[test]
    fn time_range_sees_recurrences_and_moved_instance() {
        let (obj, exp) = object(WEEKLY_WITH_MOVED);
        // Week of Jan 12: the instance was moved to Wednesday the 14th.
        assert!(events_in(range("20260114T000000Z", "20260115T000000Z")).matches(&obj.ical, &exp));
        assert!(
            !events_in(range("20260112T000000Z", "20260113T000000Z")).matches(&obj.ical, &exp),
            "old slot is empty"
        );
        assert!(
            events_in(range("20260202T000000Z", "20260203T000000Z")).matches(&obj.ical, &exp),
            "5th instance"
        );
        assert!(
            !events_in(range("20260209T000000Z", "20260210T000000Z")).matches(&obj.ical, &exp),
            "COUNT=5 ends"
        );
    }

    #[test]
    fn text_match_casemap_negate_and_octet() {
        let (obj, exp) = object(WEEKLY_WITH_MOVED);
        let mut filter = Filter::for_kind(ComponentKind::Event);
        filter.root.comp_filters[0].prop_filters.push(PropFilter {
            name: "SUMMARY".into(),
            text_match: Some(TextMatch {
                needle: "TEAM".into(),
                ..TextMatch::default()
            }),
            ..PropFilter::default()
        });
        assert!(filter.matches(&obj.ical, &exp));
        filter.root.comp_filters[0].prop_filters[0]
            .text_match
            .as_mut()
            .unwrap()
            .collation = Collation::Octet;
        assert!(!filter.matches(&obj.ical, &exp));
        let tm = filter.root.comp_filters[0].prop_filters[0]
            .text_match
            .as_mut()
            .unwrap();
        tm.negate = true;
        assert!(filter.matches(&obj.ical, &exp));
        assert!(!filter.index_plan().exact);
    }

    #[test]
    fn prop_and_param_filters() {
        let (obj, exp) = object("BEGIN:VEVENT\r\nUID:p\r\nDTSTART:20260105T100000Z\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:a@example.com\r\nEND:VEVENT\r\n");
        let mut filter = Filter::for_kind(ComponentKind::Event);
        filter.root.comp_filters[0].prop_filters.push(PropFilter {
            name: "ATTENDEE".into(),
            text_match: Some(TextMatch {
                needle: "a@example".into(),
                ..TextMatch::default()
            }),
            param_filters: vec![ParamFilter {
                name: "PARTSTAT".into(),
                text_match: Some(TextMatch {
                    needle: "accepted".into(),
                    match_type: MatchType::Equals,
                    ..TextMatch::default()
                }),
                ..ParamFilter::default()
            }],
            ..PropFilter::default()
        });
        assert!(filter.matches(&obj.ical, &exp));
        filter.root.comp_filters[0].prop_filters[0].param_filters[0]
            .text_match
            .as_mut()
            .unwrap()
            .needle = "declined".into();
        assert!(!filter.matches(&obj.ical, &exp));
        let mut undefined = Filter::for_kind(ComponentKind::Event);
        undefined.root.comp_filters[0]
            .prop_filters
            .push(PropFilter {
                name: "LOCATION".into(),
                is_not_defined: true,
                ..PropFilter::default()
            });
        assert!(undefined.matches(&obj.ical, &exp));
    }

    #[test]
    fn kind_filter_and_index_plan() {
        let (obj, exp) = object(WEEKLY_WITH_MOVED);
        assert!(!Filter::for_kind(ComponentKind::Todo).matches(&obj.ical, &exp));
        let plan = events_in(range("20260101T000000Z", "20260201T000000Z")).index_plan();
        assert!(plan.exact);
        assert_eq!(plan.kind, Some(ComponentKind::Event));
    }

    #[test]
    fn alarm_time_range_uses_trigger_times() {
        let (obj, exp) = object("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=DAILY;COUNT=2\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n");
        let alarm_in = |start: &str, end: &str| {
            let mut filter = Filter::for_kind(ComponentKind::Event);
            filter.root.comp_filters[0].comp_filters.push(CompFilter {
                name: "VALARM".into(),
                time_range: Some(range(start, end)),
                ..CompFilter::default()
            });
            filter.matches(&obj.ical, &exp)
        };
        assert!(
            alarm_in("20260105T094000Z", "20260105T095000Z"),
            "09:45 on the first day"
        );
        assert!(
            alarm_in("20260106T094000Z", "20260106T095000Z"),
            "and on the second"
        );
        assert!(
            !alarm_in("20260105T095000Z", "20260105T110000Z"),
            "not during the event itself"
        );
    }

    #[test]
    fn component_property_filter_on_vcalendar_searches_components() {
        let (obj, exp) = object(WEEKLY_WITH_MOVED);
        let mut filter = Filter {
            root: CompFilter {
                name: "VCALENDAR".into(),
                ..CompFilter::default()
            },
        };
        filter.root.prop_filters.push(PropFilter {
            name: "SUMMARY".into(),
            text_match: Some(TextMatch {
                needle: "moved".into(),
                ..TextMatch::default()
            }),
            ..PropFilter::default()
        });
        assert!(filter.matches(&obj.ical, &exp));
        filter.root.prop_filters[0]
            .text_match
            .as_mut()
            .unwrap()
            .needle = "nowhere".into();
        assert!(!filter.matches(&obj.ical, &exp));
        let own = Filter {
            root: CompFilter {
                name: "VCALENDAR".into(),
                prop_filters: vec![PropFilter {
                    name: "VERSION".into(),
                    ..PropFilter::default()
                }],
                ..CompFilter::default()
            },
        };
        assert!(
            own.matches(&obj.ical, &exp),
            "VCALENDAR's own properties are still its own"
        );
    }

    #[test]
    fn all_day_event_matches_its_day_only() {
        let (obj, exp) = object("BEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20260301\r\nDTEND;VALUE=DATE:20260302\r\nEND:VEVENT\r\n");
        assert!(events_in(range("20260301T120000Z", "20260301T130000Z")).matches(&obj.ical, &exp));
        assert!(!events_in(range("20260302T000000Z", "20260303T000000Z")).matches(&obj.ical, &exp));
    }
}
