//! REPORT: calendar-query, calendar-multiget, free-busy-query (RFC 4791 §7), sync-collection
//! (RFC 6578).

use super::objects::load_collection;
use super::props::{self, parse_sync_token, select, sync_token};
use super::{blocking, xml_response, AppState, Caller, DavError, Request2, Rights};
use crate::dav::request::{parse_report, CalendarDataRequest, PropName, Propfind, Report};
use crate::dav::response::{Multistatus, PropValue};
use crate::dav::xml::{NS_CALDAV, NS_DAV};
use crate::ical::calendar_data::{limit_freebusy_set, limit_recurrence_set, select_parts};
use crate::ical::expand::{expand, write_expanded, Expansion, MAX_EXPANSION_STEPS};
use crate::ical::{CalendarObject, ParseLimits};
use crate::paths::{self, Target};
use crate::query::freebusy::{merge_busy, write_vfreebusy, BusyPeriod};
use crate::store::{Change, Collection, StoredObject};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Above this many changes, sync-collection lists the calendar once instead of
/// looking each change up.
const BULK_SYNC_LOOKUP: usize = 500;

/// Most objects one calendar-query returns with calendar-data; more answers 507
/// number-of-matches-within-limits. CalendarServer's MaxQueryWithDataResults was 1,000, but a
/// busy shared calendar can hold more than that in the month a client asks for, and clients show
/// a truncated answer as missing events; 5,000 still bounds a response to a few MB. Queries for
/// hrefs and ETags alone are not capped: that is how clients list a whole calendar.
pub const MAX_QUERY_WITH_DATA_RESULTS: usize = 5_000;

/// The number of matches a calendar-query may return: the client's `nresults`, and
/// never more than [`MAX_QUERY_WITH_DATA_RESULTS`] when calendar data is sent.
fn query_result_cap(nresults: Option<usize>, wants_data: bool) -> Option<usize> {
    let server_cap = wants_data.then_some(MAX_QUERY_WITH_DATA_RESULTS);
    match (nresults, server_cap) {
        (Some(client), Some(server)) => Some(client.min(server)),
        (client, server) => client.or(server),
    }
}

/// Hrefs per multiget (CalendarServer's MaxMultigetWithDataHrefs).
const MAX_MULTIGET_HREFS: usize = 5_000;

pub(super) async fn report(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    req: &Request2,
) -> Result<Response, DavError> {
    let report = parse_report(&req.body)?;
    // Principal search is answered wherever it is sent (python caldav uses its base URL).
    let report = match report {
        Report::PrincipalPropertySearch {
            searches,
            any_of,
            props,
        } => return principal_search(state, caller, searches, any_of, props).await,
        Report::ExpandProperty { props } => {
            return expand_property(state, caller, target, props).await
        }
        other => other,
    };
    let Target::Collection { owner, calendar } = target else {
        return Err(DavError::dav(
            StatusCode::FORBIDDEN,
            "supported-report",
            "REPORTs are answered on calendar collections",
        ));
    };
    let (collection, rights) =
        load_collection(state, caller, owner, calendar, Rights::Read).await?;
    let zone = super::floating_zone(&collection);
    match report {
        Report::PrincipalPropertySearch {
            searches,
            any_of,
            props,
        } => principal_search(state, caller, searches, any_of, props).await,
        Report::ExpandProperty { props } => expand_property(state, caller, target, props).await,
        Report::CalendarQuery {
            props,
            data,
            filter,
            limit,
        } => {
            let plan = filter.index_plan();
            let id = collection.id;
            let candidates = blocking(state, move |store| {
                store.query(id, plan.kind, plan.time_range)
            })
            .await?;
            let max_instances = state.config.max_instances;
            let shapes_by_instance = data.expand.is_some() || data.limit_recurrence_set.is_some();
            let needs_parse =
                move |needs_check: bool| !plan.exact || needs_check || shapes_by_instance;
            let wants_data = matches!(&props, Propfind::Prop(names) if names.iter().any(|n| n.is(NS_CALDAV, "calendar-data")));
            let cap = query_result_cap(limit, wants_data);
            let collection_href = paths::collection(owner, calendar);
            let body = tokio::task::spawn_blocking({
                let caller_name = caller.user.name.clone();
                let identities = caller.identities.clone();
                move || {
                    let caller = super::Caller {
                        user: placeholder_user(&caller_name),
                        identities,
                    };
                    let mut ms = Multistatus::new();
                    let mut n_matches = 0usize;
                    for (object, needs_check) in candidates {
                        let parsed = if needs_parse(needs_check) {
                            let Some((parsed, expansion)) = parse_stored(&object, zone) else {
                                continue;
                            };
                            if !filter.matches(&parsed.ical, &expansion) {
                                continue;
                            }
                            Some((parsed, expansion))
                        } else {
                            None
                        };
                        if cap.is_some_and(|cap| n_matches >= cap) {
                            // RFC 5323 §5.17: what fits, then a 507 for the collection saying
                            // the answer is incomplete, so the client narrows its query.
                            ms.status_with_error(
                                &collection_href,
                                "507 Insufficient Storage",
                                "number-of-matches-within-limits",
                            );
                            break;
                        }
                        n_matches += 1;
                        write_object(
                            &mut ms,
                            &caller,
                            &collection,
                            rights,
                            &object,
                            &props,
                            &data,
                            parsed.as_ref().map(|(p, e)| (p, e)),
                            max_instances,
                        );
                    }
                    ms.finish()
                }
            })
            .await
            .map_err(|e| DavError::Internal(e.to_string()))?;
            Ok(xml_response(StatusCode::MULTI_STATUS, body))
        }
        Report::CalendarMultiget { props, data, hrefs } => {
            if hrefs.len() > MAX_MULTIGET_HREFS {
                return Err(DavError::BadRequest(format!(
                    "{} hrefs, the limit is {MAX_MULTIGET_HREFS}",
                    hrefs.len()
                )));
            }
            // All lookups in one blocking call: hrefs outside this calendar are simply 404.
            let (id, owner_name, calendar_name) = (collection.id, owner.clone(), calendar.clone());
            let store = state.store.clone();
            let found = tokio::task::spawn_blocking(
                move || -> Result<Vec<(String, Option<StoredObject>)>, DavError> {
                    // The object name of each href in this calendar, looked up in one go.
                    let names: Vec<Option<String>> = hrefs
                        .iter()
                        .map(|href| {
                            let path = href
                                .find("://")
                                .and_then(|i| href.get(i + 3..))
                                .and_then(|r| r.find('/').and_then(|j| r.get(j..)))
                                .unwrap_or(href);
                            match paths::parse(path) {
                                Some(Target::Object {
                                    owner: o,
                                    calendar: c,
                                    object,
                                }) if o == owner_name && c == calendar_name => Some(object),
                                _ => None,
                            }
                        })
                        .collect();
                    let wanted: Vec<String> = names.iter().flatten().cloned().collect();
                    let mut objects = store.objects_at(id, &wanted)?.into_iter();
                    Ok(hrefs
                        .into_iter()
                        .zip(names)
                        .map(|(href, name)| (href, name.and_then(|_| objects.next().flatten())))
                        .collect())
                },
            )
            .await
            .map_err(|e| DavError::Internal(e.to_string()))??;
            let mut ms = Multistatus::new();
            for (href, object) in found {
                match object {
                    Some(object) => {
                        let parsed = if data.expand.is_some() || data.limit_recurrence_set.is_some()
                        {
                            parse_stored(&object, zone)
                        } else {
                            None
                        };
                        write_object(
                            &mut ms,
                            caller,
                            &collection,
                            rights,
                            &object,
                            &props,
                            &data,
                            parsed.as_ref().map(|(p, e)| (p, e)),
                            state.config.max_instances,
                        );
                    }
                    None => ms.status(&href, "404 Not Found"),
                }
            }
            Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
        }
        Report::FreeBusyQuery { range } => {
            let id = collection.id;
            let (mut periods, reexpand) =
                blocking(state, move |store| store.busy(&[id], range)).await?;
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
            let merged = merge_busy(periods, range);
            let mut r = write_vfreebusy(&merged, range, super::now()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/calendar; charset=utf-8"),
            );
            Ok(r)
        }
        Report::SyncCollection {
            token,
            infinite_depth,
            limit,
            props,
        } => {
            if infinite_depth {
                // Calendars hold no sub-collections; RFC 6578 §3.3 lets us refuse infinite depth.
                return Err(DavError::dav(
                    StatusCode::FORBIDDEN,
                    "sync-traversal-supported",
                    "sync-level infinite",
                ));
            }
            let revision = if token.is_empty() {
                0
            } else {
                parse_sync_token(&collection, &token).ok_or_else(|| {
                    DavError::dav(
                        StatusCode::FORBIDDEN,
                        "valid-sync-token",
                        "unknown sync token",
                    )
                })?
            };
            let id = collection.id;
            let (mut changes, current) =
                blocking(state, move |store| store.changes_since(id, revision))
                    .await?
                    .ok_or_else(|| {
                        DavError::dav(
                            StatusCode::FORBIDDEN,
                            "valid-sync-token",
                            "unknown sync token",
                        )
                    })?;
            if token.is_empty() {
                // An initial sync lists members; what was deleted before is nobody's business.
                changes.retain(|c| !c.deleted);
            }
            // RFC 6578 §3.6: a truncated answer carries a 507 for the collection and a token
            // for where it stopped, so the client continues from there.
            let mut token_revision = current;
            let truncated = limit.is_some_and(|limit| changes.len() > limit);
            if let Some(limit) = limit.filter(|_| truncated) {
                changes.truncate(limit);
                token_revision = changes.last().map_or(revision, |c| c.revision);
            }
            let wants_data = matches!(&props, Propfind::Prop(names) if names.iter().any(|n| n.is(NS_CALDAV, "calendar-data")));
            let store = state.store.clone();
            let objects = tokio::task::spawn_blocking(
                move || -> Result<Vec<(Change, Option<StoredObject>)>, DavError> {
                    // A few changes are looked up one by one; many (an initial sync) in one
                    // listing of the calendar, which is cheaper past a few hundred.
                    let bulk = !wants_data && changes.len() > BULK_SYNC_LOOKUP;
                    let metas: std::collections::HashMap<String, crate::store::ObjectMeta> = if bulk
                    {
                        store
                            .objects(id)?
                            .into_iter()
                            .map(|m| (m.href.clone(), m))
                            .collect()
                    } else {
                        std::collections::HashMap::new()
                    };
                    let looked_up: Vec<String> = if wants_data || !bulk {
                        changes
                            .iter()
                            .filter(|c| !c.deleted)
                            .map(|c| c.href.clone())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let mut found = store.objects_at(id, &looked_up)?.into_iter();
                    let mut out = Vec::with_capacity(changes.len());
                    for change in changes {
                        let object = if change.deleted {
                            None
                        } else if wants_data || !bulk {
                            found.next().flatten()
                        } else {
                            metas.get(&change.href).map(|meta| StoredObject {
                                meta: meta.clone(),
                                uid: String::new(),
                                data: String::new(),
                            })
                        };
                        out.push((change, object));
                    }
                    Ok(out)
                },
            )
            .await
            .map_err(|e| DavError::Internal(e.to_string()))??;
            let mut ms = Multistatus::new();
            for (change, object) in objects {
                match object {
                    Some(object) => write_object(
                        &mut ms,
                        caller,
                        &collection,
                        rights,
                        &object,
                        &props,
                        &CalendarDataRequest::default(),
                        None,
                        0,
                    ),
                    None => ms.status(
                        &paths::object(owner, calendar, &change.href),
                        "404 Not Found",
                    ),
                }
            }
            if truncated {
                ms.status(
                    &paths::collection(owner, calendar),
                    "507 Insufficient Storage",
                );
            }
            ms.sync_token(&sync_token(&Collection {
                revision: token_revision,
                ..collection.clone()
            }));
            Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
        }
    }
}

/// Describes a principal resource (user, proxy group, group) for expand-property.
async fn describe_principal(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
) -> Result<super::props::Described, DavError> {
    match target {
        Target::User(name) => super::principals::user_principal(state, caller, name).await,
        Target::ProxyGroup { owner, write } => {
            super::principals::proxy_group(state, caller, owner, *write).await
        }
        Target::Group(name) => super::principals::group_principal(state, caller, name).await,
        _ => Err(DavError::dav(
            StatusCode::FORBIDDEN,
            "supported-report",
            "expand-property is answered on principals",
        )),
    }
}

/// RFC 3253 §3.8 expand-property on principals: what Apple Calendar uses to list whose
/// delegate the user is (calendar-proxy-*-for) and the members of proxy groups.
async fn expand_property(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    props: Vec<crate::dav::request::ExpandProp>,
) -> Result<Response, DavError> {
    let described = describe_principal(state, caller, target).await?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for wanted in &props {
        let Some((_, value)) = described.props.iter().find(|(n, _)| *n == wanted.name) else {
            missing.push(wanted.name.clone());
            continue;
        };
        let value = match (value, wanted.children.is_empty()) {
            (PropValue::Hrefs(hrefs), false) => {
                let mut inner = String::new();
                for href in hrefs {
                    // Only principals expand; anything else (or anything hidden) is skipped.
                    let Some(next) = paths::parse(href) else {
                        continue;
                    };
                    let Ok(resource) = Box::pin(describe_principal(state, caller, &next)).await
                    else {
                        continue;
                    };
                    let names: Vec<PropName> =
                        wanted.children.iter().map(|c| c.name.clone()).collect();
                    let (nested_found, nested_missing) = select(&resource, &Propfind::Prop(names));
                    crate::dav::response::write_response(
                        &mut inner,
                        &resource.href,
                        &nested_found,
                        &nested_missing,
                    );
                }
                PropValue::Xml(inner)
            }
            (other, _) => other.clone(),
        };
        found.push((wanted.name.clone(), value));
    }
    let mut ms = Multistatus::new();
    ms.response(&described.href, &found, &missing);
    Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
}

/// Most principals one search returns (an office directory; CalendarServer caps at 500).
const MAX_PRINCIPAL_RESULTS: usize = 500;

/// Principal search over the directory: any signed-in user may look people up (to pick
/// delegates or attendees); it shows names and addresses, never calendar data.
async fn principal_search(
    state: &Arc<AppState>,
    caller: &Caller,
    searches: Vec<crate::dav::request::PropertySearch>,
    any_of: bool,
    mut props: Vec<PropName>,
) -> Result<Response, DavError> {
    let directory = state.directory.clone();
    let users = tokio::task::spawn_blocking(move || directory.list_users())
        .await
        .map_err(|e| DavError::Internal(e.to_string()))?
        .map_err(|e| DavError::Internal(e.to_string()))?;
    if props.is_empty() {
        props = vec![
            PropName::new(NS_DAV, "displayname"),
            PropName::new(NS_CALDAV, "calendar-home-set"),
            PropName::new(NS_CALDAV, "calendar-user-address-set"),
            PropName::new(NS_DAV, "principal-URL"),
        ];
    }
    let request = Propfind::Prop(props);
    let mut ms = Multistatus::new();
    let matching = users.into_iter().filter(|user| {
        let hit = |search: &crate::dav::request::PropertySearch| {
            let needle = search.needle.to_lowercase();
            let fields = [
                user.name.as_str(),
                user.full_name.as_str(),
                user.email.as_str(),
            ];
            fields.iter().any(|f| f.to_lowercase().contains(&needle))
        };
        match (searches.is_empty(), any_of) {
            (true, _) => true,
            (false, true) => searches.iter().any(hit),
            (false, false) => searches.iter().all(hit),
        }
    });
    for user in matching.take(MAX_PRINCIPAL_RESULTS) {
        let described = super::principals::user_principal(state, caller, &user.name).await?;
        let (found, missing) = select(&described, &request);
        ms.response(&described.href, &found, &missing);
    }
    Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
}

fn placeholder_user(name: &str) -> serval_core::directory::User {
    serval_core::directory::User {
        name: name.to_owned(),
        full_name: String::new(),
        email: String::new(),
        kind: serval_core::directory::PrincipalKind::Person,
        created_at: 0,
        has_password: true,
    }
}

fn parse_stored(
    object: &StoredObject,
    zone: Option<calcard::common::timezone::Tz>,
) -> Option<(CalendarObject, Expansion)> {
    // Stored objects passed validation once; a failure here means a limit changed since.
    let parsed = CalendarObject::parse(
        &object.data,
        &ParseLimits {
            max_resource_bytes: usize::MAX,
            ..ParseLimits::default()
        },
    )
    .ok()?;
    let mut expansion = expand(&parsed.ical, MAX_EXPANSION_STEPS);
    if let Some(zone) = zone {
        crate::ical::expand::apply_floating_zone(&mut expansion, zone);
    }
    Some((parsed, expansion))
}

#[allow(clippy::too_many_arguments)]
fn write_object(
    ms: &mut Multistatus,
    caller: &Caller,
    collection: &Collection,
    rights: Rights,
    object: &StoredObject,
    props: &Propfind,
    data: &CalendarDataRequest,
    parsed: Option<(&CalendarObject, &Expansion)>,
    max_instances: usize,
) {
    let mut described = props::object(
        caller,
        &collection.owner,
        &collection.name,
        &object.meta,
        rights,
    );
    let wants_data = matches!(props, Propfind::Prop(names) if names.iter().any(|n| n.is(NS_CALDAV, "calendar-data")));
    if wants_data {
        described.props.push((
            PropName::new(NS_CALDAV, "calendar-data"),
            PropValue::Text(calendar_data(object, data, parsed, max_instances)),
        ));
    }
    let (found, missing) = select(&described, props);
    let found: Vec<_> = match props {
        Propfind::Prop(_) => found,
        _ => found
            .into_iter()
            .filter(|(n, _)| !n.is(NS_DAV, "current-user-principal"))
            .collect(),
    };
    ms.response(&described.href, &found, &missing);
}

/// The object's text shaped by the RFC 4791 §9.6 options: `expand` or
/// `limit-recurrence-set` first (both need the parsed object), then
/// `limit-freebusy-set`, then partial retrieval.
fn calendar_data(
    object: &StoredObject,
    data: &CalendarDataRequest,
    parsed: Option<(&CalendarObject, &Expansion)>,
    max_instances: usize,
) -> String {
    let mut text = match (data.expand, data.limit_recurrence_set, parsed) {
        (Some(range), _, Some((obj, expansion))) => {
            write_expanded(&obj.ical, expansion, range, max_instances)
        }
        (None, Some(range), Some((obj, expansion))) => {
            let root_children = obj
                .ical
                .components
                .first()
                .map(|root| root.component_ids.as_slice())
                .unwrap_or(&[]);
            limit_recurrence_set(&object.data, expansion, root_children, range)
        }
        _ => object.data.clone(),
    };
    if let Some(range) = data.limit_freebusy_set {
        text = limit_freebusy_set(&text, range);
    }
    if let Some(spec) = &data.comp {
        text = select_parts(&text, spec);
    }
    text
}
