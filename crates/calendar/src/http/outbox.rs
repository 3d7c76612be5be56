//! Scheduling outbox and inbox resources (RFC 6638 §2): PROPFIND of the outbox (which
//! stores nothing), the inbox's resourcetype and default-calendar property, and free-busy
//! lookups POSTed to the outbox (§5), answered per recipient from the instance index with
//! busy time only: never a title, location or anything else of the event.

use super::props::{common, p, Described};
use super::scheduling::{addresses_of, is_address_of, resolve, Recipient, DEFAULT_CALENDAR};
use super::{rights, xml_response, AppState, Caller, DavError, Request2, Rights};
use crate::dav::response::PropValue;
use crate::dav::xml::{escape, NS_CALDAV, NS_DAV};
use crate::ical::expand::{expand, format_utc, parse_utc, TimeRange, MAX_EXPANSION_STEPS};
use crate::ical::{CalendarObject, ParseLimits};
use crate::paths;
use crate::query::freebusy::{merge_busy, BusyPeriod};
use crate::schedule::itip::{self, FreeBusyRequest, ScheduleStatus};
use crate::schedule::lines::Document;
use crate::store::schedule::{INBOX, OUTBOX};
use axum::http::StatusCode;
use axum::response::Response;
use std::fmt::Write;
use std::sync::Arc;

/// Longest free-busy window answered in one POST (CalendarServer caps it too): bounds the
/// re-expansion of open-ended rules.
pub const MAX_FREEBUSY_SPAN_SECS: i64 = 2 * 366 * 86_400;

/// Resourcetype of a user's inbox collection.
pub(crate) const INBOX_RESOURCETYPE: &str = "<D:collection/><C:schedule-inbox/>";

/// Properties of a principal that point at its scheduling collections.
pub(crate) fn principal_props(owner: &str) -> Vec<(crate::dav::request::PropName, PropValue)> {
    vec![
        p(
            NS_CALDAV,
            "schedule-inbox-URL",
            PropValue::Hrefs(vec![paths::collection(owner, INBOX)]),
        ),
        p(
            NS_CALDAV,
            "schedule-outbox-URL",
            PropValue::Hrefs(vec![paths::collection(owner, OUTBOX)]),
        ),
        p(
            NS_CALDAV,
            "schedule-default-calendar-URL",
            PropValue::Hrefs(vec![paths::collection(owner, DEFAULT_CALENDAR)]),
        ),
    ]
}

/// The outbox as PROPFIND shows it.
pub(crate) fn describe_outbox(caller: &Caller, owner: &str, rights: Rights) -> Described {
    let mut props = common(caller, rights);
    props.extend([
        p(
            NS_DAV,
            "resourcetype",
            PropValue::Xml("<D:collection/><C:schedule-outbox/>".into()),
        ),
        p(
            NS_DAV,
            "owner",
            PropValue::Hrefs(vec![paths::user_principal(owner)]),
        ),
        p(NS_DAV, "displayname", super::props::text("Outbox")),
    ]);
    Described {
        href: paths::collection(owner, OUTBOX),
        props,
    }
}

/// The outbox's own PROPFIND (depth 0 and 1 alike: it has no members).
pub(super) async fn propfind(
    state: &Arc<AppState>,
    caller: &Caller,
    owner: &str,
    req: &Request2,
) -> Result<Response, DavError> {
    let rights = rights(state, caller, owner).await?;
    if rights == Rights::None || owner.starts_with("group:") {
        return Err(DavError::NotFound);
    }
    let request = crate::dav::request::parse_propfind(&req.body)?;
    let described = describe_outbox(caller, owner, rights);
    let (found, missing) = super::props::select(&described, &request);
    let mut ms = crate::dav::response::Multistatus::new();
    ms.response(&described.href, &found, &missing);
    Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
}

/// POST to an outbox: a VFREEBUSY REQUEST (RFC 6638 §5.1).
pub(super) async fn post(
    state: &Arc<AppState>,
    caller: &Caller,
    owner: &str,
    req: &Request2,
) -> Result<Response, DavError> {
    let rights = rights(state, caller, owner).await?;
    if rights == Rights::None || owner.starts_with("group:") {
        return Err(DavError::NotFound);
    }
    if rights < Rights::Write {
        return Err(DavError::Forbidden);
    }
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| DavError::caldav("valid-scheduling-message", "body is not UTF-8"))?;
    if text.len() > state.config.max_resource_size {
        return Err(DavError::caldav(
            "max-resource-size",
            "scheduling message too large",
        ));
    }
    let doc = Document::parse(text)
        .map_err(|e| DavError::caldav("valid-scheduling-message", e.to_string()))?;
    let request = FreeBusyRequest::of(&doc)
        .map_err(|e| DavError::caldav("valid-scheduling-message", e.to_string()))?;
    let (Some(start), Some(end)) = (parse_utc(&request.dtstart), parse_utc(&request.dtend)) else {
        return Err(DavError::caldav(
            "valid-scheduling-message",
            "DTSTART and DTEND must be UTC date-times",
        ));
    };
    if end <= start || end - start > MAX_FREEBUSY_SPAN_SECS {
        return Err(DavError::caldav(
            "valid-scheduling-message",
            format!("free-busy window must be positive and at most {MAX_FREEBUSY_SPAN_SECS} s"),
        ));
    }
    let state2 = state.clone();
    let owner_name = owner.to_owned();
    let now = super::now();
    let body = tokio::task::spawn_blocking(move || -> Result<String, DavError> {
        let owner_user = state2
            .directory
            .user(&owner_name)
            .ok()
            .flatten()
            .ok_or(DavError::NotFound)?;
        if !is_address_of(&owner_user, &request.organizer) {
            return Err(DavError::caldav(
                "organizer-allowed",
                format!("ORGANIZER is not one of {:?}", addresses_of(&owner_user)),
            ));
        }
        let range = TimeRange::new(start, end);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<C:schedule-response xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">");
        for attendee in &request.attendees {
            let answer = match resolve(&state2.directory, attendee) {
                Recipient::Local(user) => Some(busy_of(&state2, &user.name, range)?),
                Recipient::External(_) | Recipient::Invalid => None,
            };
            let _ = write!(
                out,
                "<C:response><C:recipient><D:href>{}</D:href></C:recipient>",
                escape(attendee)
            );
            match answer {
                Some(periods) => {
                    let formatted: Vec<(&str, String)> = periods
                        .iter()
                        .filter_map(|p| {
                            p.status.fbtype().map(|fbtype| {
                                (fbtype, format!("{}/{}", format_utc(p.start), format_utc(p.end)))
                            })
                        })
                        .collect();
                    let reply =
                        itip::freebusy_reply(&request, attendee, &formatted, &format_utc(now));
                    let _ = write!(
                        out,
                        "<C:request-status>{}</C:request-status><C:calendar-data>{}</C:calendar-data>",
                        ScheduleStatus::Success.request_status(),
                        escape(&reply)
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        "<C:request-status>{}</C:request-status>",
                        ScheduleStatus::InvalidCalendarUser.request_status()
                    );
                }
            }
            out.push_str("</C:response>");
        }
        out.push_str("</C:schedule-response>");
        Ok(out)
    })
    .await
    .map_err(|e| DavError::Internal(e.to_string()))??;
    Ok(xml_response(StatusCode::OK, body))
}

/// A user's merged busy time over all their calendars (the inbox excluded).
fn busy_of(state: &AppState, owner: &str, range: TimeRange) -> Result<Vec<BusyPeriod>, DavError> {
    let collections: Vec<_> = state
        .store
        .collections(owner)?
        .into_iter()
        .filter(|c| c.name != INBOX)
        .collect();
    let mut periods = Vec::new();
    for collection in &collections {
        let (found, reexpand) = state.store.busy(&[collection.id], range)?;
        periods.extend(found);
        let zone = super::objects::floating_zone(collection);
        for data in reexpand {
            if let Ok(object) = CalendarObject::parse(&data, &ParseLimits::default()) {
                let mut expansion = expand(&object.ical, MAX_EXPANSION_STEPS);
                if let Some(zone) = zone {
                    crate::ical::expand::apply_floating_zone(&mut expansion, zone);
                }
                periods.extend(expansion.instances.iter().map(|i| BusyPeriod {
                    start: i.start,
                    end: i.end,
                    status: i.busy,
                }));
            }
        }
    }
    Ok(merge_busy(periods, range))
}
