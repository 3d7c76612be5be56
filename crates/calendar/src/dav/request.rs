//! WebDAV/CalDAV request bodies: PROPFIND, PROPPATCH, MKCALENDAR/extended MKCOL and the
//! REPORTs (calendar-query, calendar-multiget, free-busy-query, sync-collection).

use super::xml::{self, Element, XmlError, NS_CALDAV, NS_DAV};
use crate::ical::calendar_data::{CompSelection, CompSpec, PropSelection, PropSpec};
use crate::ical::expand::{parse_utc, TimeRange};
use crate::query::{Collation, CompFilter, Filter, MatchType, ParamFilter, PropFilter, TextMatch};

/// A property name: namespace URI and local name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PropName {
    pub ns: String,
    pub name: String,
}

impl PropName {
    pub fn new(ns: &str, name: &str) -> Self {
        Self {
            ns: ns.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    fn of(element: &Element) -> Self {
        Self {
            ns: element.ns.clone(),
            name: element.name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("expected <{expected}> as the body's root, found <{found}>")]
    UnexpectedRoot {
        expected: &'static str,
        found: String,
    },
    #[error("<{element}> is missing")]
    Missing { element: &'static str },
    #[error("time-range `{value}` is not a UTC date-time like 20260101T000000Z")]
    InvalidTimeRange { value: String },
    #[error("collation `{0}` is not supported")]
    UnsupportedCollation(String),
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    #[error("invalid calendar-data request: {0}")]
    InvalidCalendarData(String),
    #[error("REPORT `{0}` is not supported")]
    UnsupportedReport(String),
}

/// PROPFIND body (RFC 4918 §9.1); an empty body means allprop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Propfind {
    AllProp,
    PropName,
    Prop(Vec<PropName>),
}

pub fn parse_propfind(body: &[u8]) -> Result<Propfind, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Propfind::AllProp);
    }
    let root = xml::parse(body)?;
    expect_root(&root, NS_DAV, "propfind")?;
    if root.child(NS_DAV, "propname").is_some() {
        return Ok(Propfind::PropName);
    }
    if let Some(prop) = root.child(NS_DAV, "prop") {
        return Ok(Propfind::Prop(
            prop.children.iter().map(PropName::of).collect(),
        ));
    }
    Ok(Propfind::AllProp)
}

/// One PROPPATCH instruction, in document order (RFC 4918 §9.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropUpdate {
    Set(PropName, Element),
    Remove(PropName),
}

pub fn parse_proppatch(body: &[u8]) -> Result<Vec<PropUpdate>, RequestError> {
    let root = xml::parse(body)?;
    expect_root(&root, NS_DAV, "propertyupdate")?;
    Ok(updates(&root))
}

fn updates(root: &Element) -> Vec<PropUpdate> {
    let mut out = Vec::new();
    for action in &root.children {
        let set = action.is(NS_DAV, "set");
        if !set && !action.is(NS_DAV, "remove") {
            continue;
        }
        for prop in action.children_named(NS_DAV, "prop") {
            for value in &prop.children {
                out.push(if set {
                    PropUpdate::Set(PropName::of(value), value.clone())
                } else {
                    PropUpdate::Remove(PropName::of(value))
                });
            }
        }
    }
    out
}

/// MKCALENDAR (RFC 4791 §5.3.1) or extended MKCOL (RFC 5689) body: properties to set.
pub fn parse_mkcalendar(body: &[u8]) -> Result<Vec<PropUpdate>, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let root = xml::parse(body)?;
    if !(root.is(NS_CALDAV, "mkcalendar") || root.is(NS_DAV, "mkcol")) {
        return Err(RequestError::UnexpectedRoot {
            expected: "mkcalendar",
            found: root.name,
        });
    }
    Ok(updates(&root))
}

/// What a client asked for in `calendar-data` (RFC 4791 §9.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalendarDataRequest {
    pub expand: Option<TimeRange>,
    pub limit_recurrence_set: Option<TimeRange>,
    pub limit_freebusy_set: Option<TimeRange>,
    /// Partial retrieval (§9.6.1); `None` returns the whole object.
    pub comp: Option<CompSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    CalendarQuery {
        props: Propfind,
        data: CalendarDataRequest,
        filter: Filter,
        /// RFC 5323 §5.17 `DAV:limit/DAV:nresults`, as the client sent it.
        limit: Option<usize>,
    },
    CalendarMultiget {
        props: Propfind,
        data: CalendarDataRequest,
        hrefs: Vec<String>,
    },
    FreeBusyQuery {
        range: TimeRange,
    },
    SyncCollection {
        token: String,
        infinite_depth: bool,
        limit: Option<usize>,
        props: Propfind,
    },
    /// RFC 3253 §3.8: properties whose hrefs are replaced by the named resources' properties.
    ExpandProperty {
        props: Vec<ExpandProp>,
    },
    /// RFC 3744 §9.4: find principals whose properties contain the match texts.
    PrincipalPropertySearch {
        searches: Vec<PropertySearch>,
        any_of: bool,
        props: Vec<PropName>,
    },
}

/// One `DAV:property` of an expand-property request, with the properties wanted from the
/// resources it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandProp {
    pub name: PropName,
    pub children: Vec<ExpandProp>,
}

/// Nesting of expand-property we follow (Apple asks for two levels).
const MAX_EXPAND_DEPTH: usize = 3;

fn parse_expand_props(element: &Element, depth: usize) -> Vec<ExpandProp> {
    if depth > MAX_EXPAND_DEPTH {
        return Vec::new();
    }
    element
        .children_named(NS_DAV, "property")
        .filter_map(|p| {
            let name = p.attr("name")?;
            let ns = p.attr("namespace").unwrap_or(NS_DAV);
            Some(ExpandProp {
                name: PropName::new(ns, name),
                children: parse_expand_props(p, depth + 1),
            })
        })
        .collect()
}

/// One `DAV:property-search`: the properties to look in and the text to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySearch {
    pub props: Vec<PropName>,
    pub needle: String,
}

pub fn parse_report(body: &[u8]) -> Result<Report, RequestError> {
    let root = xml::parse(body)?;
    if root.is(NS_CALDAV, "calendar-query") {
        let (props, data) = report_props(&root)?;
        let limit = nresults(&root);
        let filter_el = root
            .child(NS_CALDAV, "filter")
            .ok_or(RequestError::Missing { element: "filter" })?;
        let root_filter =
            filter_el
                .child(NS_CALDAV, "comp-filter")
                .ok_or(RequestError::Missing {
                    element: "comp-filter",
                })?;
        let root = parse_comp_filter(root_filter)?;
        if !root.name.eq_ignore_ascii_case("VCALENDAR") {
            return Err(RequestError::InvalidFilter(format!(
                "the top comp-filter must be VCALENDAR, not {}",
                root.name
            )));
        }
        return Ok(Report::CalendarQuery {
            props,
            data,
            filter: Filter { root },
            limit,
        });
    }
    if root.is(NS_CALDAV, "calendar-multiget") {
        let (props, data) = report_props(&root)?;
        let hrefs = root
            .children_named(NS_DAV, "href")
            .map(Element::text_content)
            .collect();
        return Ok(Report::CalendarMultiget { props, data, hrefs });
    }
    if root.is(NS_CALDAV, "free-busy-query") {
        let range = root
            .child(NS_CALDAV, "time-range")
            .ok_or(RequestError::Missing {
                element: "time-range",
            })?;
        return Ok(Report::FreeBusyQuery {
            range: parse_time_range(range)?,
        });
    }
    if root.is(NS_DAV, "sync-collection") {
        let token = root
            .child(NS_DAV, "sync-token")
            .map(Element::text_content)
            .unwrap_or_default();
        let infinite_depth = root
            .child(NS_DAV, "sync-level")
            .is_some_and(|l| l.text_content() == "infinite");
        let limit = nresults(&root);
        let props = match root.child(NS_DAV, "prop") {
            Some(prop) => Propfind::Prop(prop.children.iter().map(PropName::of).collect()),
            None => Propfind::Prop(vec![PropName::new(NS_DAV, "getetag")]),
        };
        return Ok(Report::SyncCollection {
            token,
            infinite_depth,
            limit,
            props,
        });
    }
    if root.is(NS_DAV, "expand-property") {
        return Ok(Report::ExpandProperty {
            props: parse_expand_props(&root, 0),
        });
    }
    if root.is(NS_DAV, "principal-property-search") {
        let searches = root
            .children_named(NS_DAV, "property-search")
            .map(|search| PropertySearch {
                props: search
                    .child(NS_DAV, "prop")
                    .map(|p| p.children.iter().map(PropName::of).collect())
                    .unwrap_or_default(),
                needle: search
                    .child(NS_DAV, "match")
                    .map(Element::text_content)
                    .unwrap_or_default(),
            })
            .collect();
        let any_of = root.attr("test") == Some("anyof");
        // python caldav writes the wanted properties beside an empty <prop/>, not inside it;
        // both spellings are read.
        let mut props: Vec<PropName> = root
            .child(NS_DAV, "prop")
            .map(|p| p.children.iter().map(PropName::of).collect())
            .unwrap_or_default();
        props.extend(
            root.children
                .iter()
                .filter(|c| {
                    !(c.ns == NS_DAV
                        && matches!(
                            c.name.as_str(),
                            "prop" | "property-search" | "apply-to-principal-collection-set"
                        ))
                })
                .map(PropName::of),
        );
        return Ok(Report::PrincipalPropertySearch {
            searches,
            any_of,
            props,
        });
    }
    Err(RequestError::UnsupportedReport(format!(
        "{{{}}}{}",
        root.ns, root.name
    )))
}

fn report_props(root: &Element) -> Result<(Propfind, CalendarDataRequest), RequestError> {
    let mut data = CalendarDataRequest::default();
    let props = if root.child(NS_DAV, "allprop").is_some() {
        Propfind::AllProp
    } else if root.child(NS_DAV, "propname").is_some() {
        Propfind::PropName
    } else if let Some(prop) = root.child(NS_DAV, "prop") {
        if let Some(cd) = prop.child(NS_CALDAV, "calendar-data") {
            if let Some(expand) = cd.child(NS_CALDAV, "expand") {
                data.expand = Some(parse_time_range(expand)?);
            }
            if let Some(limit) = cd.child(NS_CALDAV, "limit-recurrence-set") {
                data.limit_recurrence_set = Some(parse_time_range(limit)?);
            }
            if let Some(limit) = cd.child(NS_CALDAV, "limit-freebusy-set") {
                data.limit_freebusy_set = Some(parse_time_range(limit)?);
            }
            if let Some(comp) = cd.child(NS_CALDAV, "comp") {
                let spec = parse_comp_spec(comp)?;
                if spec.name != "VCALENDAR" {
                    return Err(RequestError::InvalidCalendarData(format!(
                        "the outer <comp> names {}, not VCALENDAR",
                        spec.name
                    )));
                }
                data.comp = Some(spec);
            }
        }
        Propfind::Prop(prop.children.iter().map(PropName::of).collect())
    } else {
        Propfind::AllProp
    };
    Ok((props, data))
}

/// `DAV:limit/DAV:nresults` (RFC 5323 §5.17, reused by RFC 6578 §6.6); CardDAV's
/// spelling in its own namespace is read too, since clients share that code.
fn nresults(root: &Element) -> Option<usize> {
    root.child(NS_DAV, "limit")
        .or_else(|| root.child(NS_CALDAV, "limit"))
        .and_then(|l| {
            l.child(NS_DAV, "nresults")
                .or_else(|| l.child(NS_CALDAV, "nresults"))
        })
        .and_then(|n| n.text_content().trim().parse::<usize>().ok())
}

/// One `C:comp` element (RFC 4791 §9.6.1): `(allprop | prop*), (allcomp | comp*)`.
/// Recursion follows the XML nesting, which `xml::parse` bounds at `MAX_XML_DEPTH`.
fn parse_comp_spec(element: &Element) -> Result<CompSpec, RequestError> {
    let name = element
        .attr("name")
        .ok_or(RequestError::Missing {
            element: "comp name",
        })?
        .to_ascii_uppercase();
    if element.children.is_empty() {
        return Ok(CompSpec::whole(&name));
    }
    let props = if element.child(NS_CALDAV, "allprop").is_some() {
        PropSelection::All
    } else {
        let mut wanted = Vec::new();
        for prop in element.children_named(NS_CALDAV, "prop") {
            let name = prop.attr("name").ok_or(RequestError::Missing {
                element: "prop name",
            })?;
            wanted.push(PropSpec {
                name: name.to_ascii_uppercase(),
                novalue: prop.attr("novalue").is_some_and(|v| v == "yes"),
            });
        }
        PropSelection::Named(wanted)
    };
    let comps = if element.child(NS_CALDAV, "allcomp").is_some() {
        CompSelection::All
    } else {
        element
            .children_named(NS_CALDAV, "comp")
            .map(parse_comp_spec)
            .collect::<Result<Vec<_>, _>>()
            .map(CompSelection::Named)?
    };
    Ok(CompSpec { name, props, comps })
}

fn parse_time_range(element: &Element) -> Result<TimeRange, RequestError> {
    let bound = |name: &str| -> Result<Option<i64>, RequestError> {
        match element.attr(name) {
            None => Ok(None),
            Some(value) => {
                parse_utc(value)
                    .map(Some)
                    .ok_or_else(|| RequestError::InvalidTimeRange {
                        value: value.to_owned(),
                    })
            }
        }
    };
    let range = TimeRange {
        start: bound("start")?,
        end: bound("end")?,
    };
    if range.start.is_none() && range.end.is_none() {
        return Err(RequestError::InvalidTimeRange {
            value: "neither start nor end".into(),
        });
    }
    if let (Some(start), Some(end)) = (range.start, range.end) {
        if end <= start {
            return Err(RequestError::InvalidTimeRange {
                value: "end is not after start".into(),
            });
        }
    }
    Ok(range)
}

fn parse_comp_filter(element: &Element) -> Result<CompFilter, RequestError> {
    let name = element
        .attr("name")
        .ok_or(RequestError::InvalidFilter(
            "comp-filter without name".into(),
        ))?
        .to_owned();
    let mut filter = CompFilter {
        name,
        ..CompFilter::default()
    };
    for child in &element.children {
        if child.ns != NS_CALDAV {
            continue;
        }
        match child.name.as_str() {
            "is-not-defined" => filter.is_not_defined = true,
            "time-range" => filter.time_range = Some(parse_time_range(child)?),
            "prop-filter" => filter.prop_filters.push(parse_prop_filter(child)?),
            "comp-filter" => filter.comp_filters.push(parse_comp_filter(child)?),
            _ => {}
        }
    }
    Ok(filter)
}

fn parse_prop_filter(element: &Element) -> Result<PropFilter, RequestError> {
    let name = element
        .attr("name")
        .ok_or(RequestError::InvalidFilter(
            "prop-filter without name".into(),
        ))?
        .to_owned();
    let mut filter = PropFilter {
        name,
        ..PropFilter::default()
    };
    for child in &element.children {
        if child.ns != NS_CALDAV {
            continue;
        }
        match child.name.as_str() {
            "is-not-defined" => filter.is_not_defined = true,
            "time-range" => filter.time_range = Some(parse_time_range(child)?),
            "text-match" => filter.text_match = Some(parse_text_match(child)?),
            "param-filter" => {
                let name = child
                    .attr("name")
                    .ok_or(RequestError::InvalidFilter(
                        "param-filter without name".into(),
                    ))?
                    .to_owned();
                let mut param = ParamFilter {
                    name,
                    ..ParamFilter::default()
                };
                param.is_not_defined = child.child(NS_CALDAV, "is-not-defined").is_some();
                if let Some(tm) = child.child(NS_CALDAV, "text-match") {
                    param.text_match = Some(parse_text_match(tm)?);
                }
                filter.param_filters.push(param);
            }
            _ => {}
        }
    }
    Ok(filter)
}

fn parse_text_match(element: &Element) -> Result<TextMatch, RequestError> {
    let collation = match element.attr("collation") {
        None => Collation::default(),
        Some(name) => Collation::from_name(name)
            .ok_or_else(|| RequestError::UnsupportedCollation(name.to_owned()))?,
    };
    let match_type = match element.attr("match-type") {
        None | Some("contains") => MatchType::Contains,
        Some("equals") => MatchType::Equals,
        Some("starts-with") => MatchType::StartsWith,
        Some("ends-with") => MatchType::EndsWith,
        Some(other) => return Err(RequestError::InvalidFilter(format!("match-type `{other}`"))),
    };
    let negate = matches!(element.attr("negate-condition"), Some("yes"));
    Ok(TextMatch {
        needle: element.text_content(),
        collation,
        match_type,
        negate,
    })
}

fn expect_root(root: &Element, ns: &str, name: &'static str) -> Result<(), RequestError> {
    if root.is(ns, name) {
        Ok(())
    } else {
        Err(RequestError::UnexpectedRoot {
            expected: name,
            found: root.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_forms() {
        assert_eq!(parse_propfind(b"").unwrap(), Propfind::AllProp);
        assert_eq!(
            parse_propfind(b"<propfind xmlns='DAV:'><propname/></propfind>").unwrap(),
            Propfind::PropName
        );
        let Propfind::Prop(props) = parse_propfind(b"<A:propfind xmlns:A='DAV:' xmlns:B='http://calendarserver.org/ns/'><A:prop><B:getctag/><A:resourcetype/></A:prop></A:propfind>").unwrap() else { panic!() };
        assert_eq!(
            props,
            vec![
                PropName::new(xml::NS_CALSERVER, "getctag"),
                PropName::new(NS_DAV, "resourcetype")
            ]
        );
        assert!(parse_propfind(b"<foo xmlns='DAV:'/>").is_err());
    }

    #[test]
    fn proppatch_keeps_order() {
        let ups = parse_proppatch(b"<d:propertyupdate xmlns:d='DAV:' xmlns:i='http://apple.com/ns/ical/'><d:set><d:prop><d:displayname>Work</d:displayname><i:calendar-color>#FF0000</i:calendar-color></d:prop></d:set><d:remove><d:prop><i:calendar-order/></d:prop></d:remove></d:propertyupdate>").unwrap();
        assert_eq!(ups.len(), 3);
        assert!(
            matches!(&ups[0], PropUpdate::Set(n, v) if n.is(NS_DAV, "displayname") && v.text_content() == "Work")
        );
        assert!(
            matches!(&ups[2], PropUpdate::Remove(n) if n.is(xml::NS_APPLE_ICAL, "calendar-order"))
        );
    }

    #[test]
    fn calendar_query_with_expand_and_filter() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data><C:expand start="20260101T000000Z" end="20260201T000000Z"/></C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="20260101T000000Z" end="20260201T000000Z"/>
    <C:prop-filter name="SUMMARY"><C:text-match collation="i;octet" negate-condition="yes">x</C:text-match></C:prop-filter>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"#;
        let Report::CalendarQuery { data, filter, .. } = parse_report(body).unwrap() else {
            panic!()
        };
        assert_eq!(
            data.expand,
            Some(TimeRange::new(1_767_225_600, 1_769_904_000))
        );
        let event = &filter.root.comp_filters[0];
        assert_eq!(event.name, "VEVENT");
        assert_eq!(
            event.time_range,
            Some(TimeRange::new(1_767_225_600, 1_769_904_000))
        );
        let tm = event.prop_filters[0].text_match.as_ref().unwrap();
        assert!(tm.negate && tm.collation == Collation::Octet);
    }

    #[test]
    fn report_errors() {
        let bad_collation = br#"<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:filter><C:comp-filter name="VCALENDAR"><C:prop-filter name="X"><C:text-match collation="i;klingon">a</C:text-match></C:prop-filter></C:comp-filter></C:filter></C:calendar-query>"#;
        assert!(matches!(
            parse_report(bad_collation),
            Err(RequestError::UnsupportedCollation(_))
        ));
        let bad_range = br#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="tomorrow"/></C:free-busy-query>"#;
        assert!(matches!(
            parse_report(bad_range),
            Err(RequestError::InvalidTimeRange { .. })
        ));
        let not_vcalendar = br#"<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:filter><C:comp-filter name="VEVENT"/></C:filter></C:calendar-query>"#;
        assert!(matches!(
            parse_report(not_vcalendar),
            Err(RequestError::InvalidFilter(_))
        ));
        assert!(matches!(
            parse_report(b"<x xmlns='y'/>"),
            Err(RequestError::UnsupportedReport(_))
        ));
    }

    #[test]
    fn principal_property_search_in_both_spellings() {
        let body = br#"<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:property-search><D:prop><D:displayname/></D:prop><D:match>ann</D:match></D:property-search><D:prop/><C:calendar-home-set/><D:displayname/></D:principal-property-search>"#;
        let Report::PrincipalPropertySearch {
            searches,
            any_of,
            props,
        } = parse_report(body).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            searches,
            vec![PropertySearch {
                props: vec![PropName::new(NS_DAV, "displayname")],
                needle: "ann".into()
            }]
        );
        assert!(!any_of);
        assert_eq!(
            props,
            vec![
                PropName::new(NS_CALDAV, "calendar-home-set"),
                PropName::new(NS_DAV, "displayname")
            ]
        );
    }

    #[test]
    fn expand_property_nests() {
        let body = br#"<A:expand-property xmlns:A="DAV:"><A:property name="calendar-proxy-write-for" namespace="http://calendarserver.org/ns/"><A:property name="displayname"/><A:property name="calendar-user-address-set" namespace="urn:ietf:params:xml:ns:caldav"/></A:property></A:expand-property>"#;
        let Report::ExpandProperty { props } = parse_report(body).unwrap() else {
            panic!()
        };
        assert_eq!(
            props[0].name,
            PropName::new(xml::NS_CALSERVER, "calendar-proxy-write-for")
        );
        assert_eq!(props[0].children.len(), 2);
        assert_eq!(
            props[0].children[1].name,
            PropName::new(NS_CALDAV, "calendar-user-address-set")
        );
    }

    #[test]
    fn sync_collection_and_multiget() {
        let Report::SyncCollection { token, limit, .. } = parse_report(b"<d:sync-collection xmlns:d='DAV:'><d:sync-token>http://serval/sync/5</d:sync-token><d:sync-level>1</d:sync-level><d:limit><d:nresults>10</d:nresults></d:limit><d:prop><d:getetag/></d:prop></d:sync-collection>").unwrap() else { panic!() };
        assert_eq!((token.as_str(), limit), ("http://serval/sync/5", Some(10)));
        let Report::CalendarMultiget { hrefs, .. } = parse_report(b"<c:calendar-multiget xmlns:d='DAV:' xmlns:c='urn:ietf:params:xml:ns:caldav'><d:prop><d:getetag/></d:prop><d:href>/a.ics</d:href><d:href>/b.ics</d:href></c:calendar-multiget>").unwrap() else { panic!() };
        assert_eq!(hrefs, vec!["/a.ics", "/b.ics"]);
    }
}

/// One sharee in a `CS:share` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSet {
    /// `mailto:` address or principal URL.
    pub href: String,
    pub write: bool,
    pub summary: String,
}

/// POST bodies of CalendarServer sharing (calendarserver-sharing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharePost {
    /// The owner invites (`set`) or uninvites (`remove`) sharees.
    Share {
        set: Vec<ShareSet>,
        remove: Vec<String>,
    },
    /// The sharee answers invitation `in_reply_to`.
    InviteReply {
        accepted: bool,
        in_reply_to: String,
        summary: String,
    },
}

pub fn parse_share_post(body: &[u8]) -> Result<SharePost, RequestError> {
    use super::xml::NS_CALSERVER;
    let root = xml::parse(body)?;
    if root.is(NS_CALSERVER, "share") {
        let set = root
            .children_named(NS_CALSERVER, "set")
            .map(|s| ShareSet {
                href: s
                    .child(NS_DAV, "href")
                    .map(Element::text_content)
                    .unwrap_or_default(),
                write: s.child(NS_CALSERVER, "read-write").is_some(),
                summary: s
                    .child(NS_CALSERVER, "summary")
                    .map(Element::text_content)
                    .unwrap_or_default(),
            })
            .collect();
        let remove = root
            .children_named(NS_CALSERVER, "remove")
            .filter_map(|r| r.child(NS_DAV, "href").map(Element::text_content))
            .collect();
        return Ok(SharePost::Share { set, remove });
    }
    if root.is(NS_CALSERVER, "invite-reply") {
        let accepted = root.child(NS_CALSERVER, "invite-accepted").is_some();
        if !accepted && root.child(NS_CALSERVER, "invite-declined").is_none() {
            return Err(RequestError::Missing {
                element: "invite-accepted or invite-declined",
            });
        }
        let in_reply_to = root
            .child(NS_CALSERVER, "in-reply-to")
            .map(Element::text_content)
            .ok_or(RequestError::Missing {
                element: "in-reply-to",
            })?;
        let summary = root
            .child(NS_CALSERVER, "summary")
            .map(Element::text_content)
            .unwrap_or_default();
        return Ok(SharePost::InviteReply {
            accepted,
            in_reply_to,
            summary,
        });
    }
    Err(RequestError::UnexpectedRoot {
        expected: "share or invite-reply",
        found: root.name,
    })
}
