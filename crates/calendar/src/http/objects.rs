//! Resource methods: MKCALENDAR/MKCOL, GET/HEAD, PUT, DELETE, MOVE/COPY.

use super::props::{content_type, http_date, value_to_stored};
use super::{blocking, header_str, rights, AppState, Caller, DavError, Request2, Rights};
use crate::dav::request::{parse_mkcalendar, PropName, PropUpdate};
use crate::dav::xml::{NS_CALDAV, NS_DAV};
use crate::ical::expand::{
    apply_floating_zone, expand, zone_of_calendar_timezone, MAX_EXPANSION_STEPS,
};
use crate::ical::{CalendarObject, ComponentKind, IcalError, ParseLimits};
use crate::paths::{self, Target};
use crate::store::{
    Collection, DeleteOutcome, IndexedInstance, NewObject, PutCondition, PutOutcome,
};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use calcard::common::timezone::Tz;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How far ahead recurrences are indexed (CalendarServer's FreeBusyIndexExpandAheadDays);
/// queries beyond it re-expand the few open-ended objects on demand.
pub const INDEX_HORIZON_SECS: i64 = 365 * 86_400;

/// Loads a calendar the caller may use with at least `needed` rights; 404 otherwise, so
/// nobody learns that another user's calendar exists.
pub(crate) async fn load_collection(
    state: &Arc<AppState>,
    caller: &Caller,
    owner: &str,
    name: &str,
    needed: Rights,
) -> Result<(Collection, Rights), DavError> {
    let rights = rights(state, caller, owner).await?;
    if rights == Rights::None {
        return Err(DavError::NotFound);
    }
    let (owner_name, calendar) = (owner.to_owned(), name.to_owned());
    let (collection, rights) = blocking(state, move |store| {
        resolve_collection(store, &owner_name, &calendar, rights)
    })
    .await?
    .ok_or(DavError::NotFound)?;
    if rights < needed {
        return Err(DavError::Forbidden);
    }
    Ok((collection, rights))
}

/// The calendar at /calendars/users/OWNER/NAME/ for a caller with `home_rights` there:
/// the owner's own calendar, or (for the home's owner) a calendar shared with them and
/// mounted under NAME, seen with the access the share grants.
pub(crate) fn resolve_collection(
    store: &dyn crate::store::CalendarStore,
    owner: &str,
    name: &str,
    home_rights: Rights,
) -> Result<Option<(Collection, Rights)>, crate::store::StoreError> {
    if let Some(collection) = store.collection(owner, name)? {
        return Ok(Some((collection, home_rights)));
    }
    if home_rights != Rights::Owner {
        return Ok(None);
    }
    let Some((share, real)) = store.mounted_share(owner, name)? else {
        return Ok(None);
    };
    let rights = if share.write {
        Rights::Write
    } else {
        Rights::Read
    };
    // The sharee sees their own name, colour, ... over the owner's (see `sharee_props`).
    let own = store.sharee_props(real.id, owner)?;
    let mut mounted = Collection {
        owner: owner.to_owned(),
        name: name.to_owned(),
        shared_from: Some(real.owner.clone()),
        ..real
    };
    super::sharee_props::overlay(&mut mounted.props, own);
    Ok(Some((mounted, rights)))
}

/// The zone floating times of `collection` are read in: its `calendar-timezone`, if set.
pub(crate) fn floating_zone(collection: &Collection) -> Option<Tz> {
    let stored = collection.prop(crate::dav::xml::NS_CALDAV, "calendar-timezone")?;
    zone_of_calendar_timezone(stored.strip_prefix("t:").unwrap_or(stored))
}

/// Parses, validates and indexes a calendar object body (CPU work, off the async threads).
pub(crate) async fn index_body(
    state: &Arc<AppState>,
    body: Vec<u8>,
    floating_zone: Option<Tz>,
) -> Result<NewObject, DavError> {
    let limits = ParseLimits {
        max_resource_bytes: state.config.max_resource_size,
        ..ParseLimits::default()
    };
    let max_instances = state.config.max_instances;
    let now = super::now();
    tokio::task::spawn_blocking(move || {
        index_text(body, &limits, max_instances, now, floating_zone)
    })
    .await
    .map_err(|e| DavError::Internal(e.to_string()))?
}

pub(crate) fn index_text(
    body: Vec<u8>,
    limits: &ParseLimits,
    max_instances: usize,
    now: i64,
    floating_zone: Option<Tz>,
) -> Result<NewObject, DavError> {
    if body.len() > limits.max_resource_bytes {
        return Err(DavError::caldav(
            "max-resource-size",
            format!("{} bytes over {}", body.len(), limits.max_resource_bytes),
        ));
    }
    let text = String::from_utf8(body).map_err(|error| {
        let position =
            crate::ical::structure::utf8_error_position(error.as_bytes(), &error.utf8_error());
        DavError::caldav(
            "valid-calendar-data",
            IcalError::NotUtf8(position).to_string(),
        )
    })?;
    let object = CalendarObject::parse(&text, limits).map_err(|e| match e {
        IcalError::TooLarge { .. } => DavError::caldav("max-resource-size", e.to_string()),
        IcalError::Malformed(_)
        | IcalError::MultipleObjects
        | IcalError::TooManyComponents { .. }
        | IcalError::Structure(_)
        | IcalError::NotUtf8(_)
        | IcalError::UnknownTimezone { .. }
        | IcalError::EmptyTimezone { .. }
        | IcalError::ConflictingTimezones { .. }
        | IcalError::InvalidDates { .. } => DavError::caldav("valid-calendar-data", e.to_string()),
        _ => DavError::caldav("valid-calendar-object-resource", e.to_string()),
    })?;
    let mut expansion = expand(&object.ical, MAX_EXPANSION_STEPS);
    if let Some(zone) = floating_zone {
        apply_floating_zone(&mut expansion, zone);
    }
    let horizon = now.saturating_add(INDEX_HORIZON_SECS);
    let total = expansion.instances.len();
    // Instances are indexed up to the horizon; the cap keeps one pathological rule from
    // writing thousands of rows per PUT.
    let cap = max_instances.max(1).saturating_mul(4);
    let instances: Vec<IndexedInstance> = expansion
        .instances
        .iter()
        .filter(|i| i.start < horizon)
        .take(cap)
        .map(|i| IndexedInstance {
            start: i.start,
            end: i.end,
            busy: i.busy,
        })
        .collect();
    let indexed_until = if instances.len() < total || expansion.complete_until.is_some() {
        let last_indexed = instances.last().map_or(i64::MIN, |i| i.start);
        Some(if instances.len() == cap {
            last_indexed
        } else {
            horizon.min(expansion.complete_until.unwrap_or(horizon))
        })
    } else {
        None
    };
    let digest = Sha256::digest(text.as_bytes());
    let etag = format!("\"{}\"", hex::encode(digest.get(..16).unwrap_or(&digest)));
    Ok(NewObject {
        uid: object.uid,
        kind: object.kind,
        etag,
        data: text,
        instances,
        indexed_until,
    })
}

pub(super) async fn mkcalendar(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    req: &Request2,
) -> Result<Response, DavError> {
    let Target::Collection {
        owner,
        calendar: name,
    } = target
    else {
        return Err(DavError::MethodNotAllowed);
    };
    if rights(state, caller, owner).await? < Rights::Write {
        return Err(if rights(state, caller, owner).await? == Rights::None {
            DavError::NotFound
        } else {
            DavError::Forbidden
        });
    }
    if name == super::sharing::NOTIFICATION_COLLECTION
        || name.starts_with("shared-")
        || name == crate::store::schedule::INBOX
        || name == crate::store::schedule::OUTBOX
    {
        return Err(DavError::dav(
            StatusCode::FORBIDDEN,
            "resource-must-be-null",
            "this name is reserved",
        ));
    }
    let updates = parse_mkcalendar(&req.body)?;
    let mut components = vec![
        ComponentKind::Event,
        ComponentKind::Todo,
        ComponentKind::Journal,
    ];
    let mut props = Vec::new();
    let mut is_calendar = req.method.as_str() == "MKCALENDAR";
    for update in &updates {
        let PropUpdate::Set(name, value) = update else {
            continue;
        };
        if name.is(NS_DAV, "resourcetype") {
            is_calendar |= value.child(NS_CALDAV, "calendar").is_some();
        } else if name.is(NS_CALDAV, "supported-calendar-component-set") {
            let chosen: Vec<ComponentKind> = value
                .children_named(NS_CALDAV, "comp")
                .filter_map(|c| c.attr("name"))
                .filter_map(ComponentKind::from_name)
                .collect();
            if chosen.is_empty() {
                return Err(DavError::caldav(
                    "supported-calendar-component",
                    "no supported component named",
                ));
            }
            components = chosen;
        } else {
            props.push((
                PropName {
                    ns: name.ns.clone(),
                    name: name.name.clone(),
                },
                value_to_stored(value),
            ));
        }
    }
    if !is_calendar {
        // Plain collections inside a home are not supported: everything here is a calendar.
        return Err(DavError::dav(
            StatusCode::FORBIDDEN,
            "valid-resourcetype",
            "only calendar collections can be created",
        ));
    }
    let (owner_name, calendar, now) = (owner.clone(), name.clone(), super::now());
    let created = blocking(state, move |store| {
        store.create_collection(&owner_name, &calendar, &components, &props, now)
    })
    .await?;
    match created {
        Some(_) => Ok(StatusCode::CREATED.into_response()),
        None => Err(DavError::dav(
            StatusCode::METHOD_NOT_ALLOWED,
            "resource-must-be-null",
            "the calendar already exists",
        )),
    }
}

pub(super) async fn get(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    _req: &Request2,
) -> Result<Response, DavError> {
    match target {
        Target::Object {
            owner,
            calendar,
            object,
        } => {
            let (collection, _) =
                load_collection(state, caller, owner, calendar, Rights::Read).await?;
            let (id, href) = (collection.id, object.clone());
            let stored = blocking(state, move |store| store.object(id, &href))
                .await?
                .ok_or(DavError::NotFound)?;
            let schedule_tag = crate::schedule::itip::schedule_tag(&stored.data);
            let mut r = stored.data.into_response();
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&content_type(stored.meta.kind)) {
                h.insert(header::CONTENT_TYPE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&stored.meta.etag) {
                h.insert(header::ETAG, v);
            }
            if let Some(tag) = schedule_tag {
                if let Ok(v) = HeaderValue::from_str(&tag) {
                    h.insert("Schedule-Tag", v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&http_date(stored.meta.modified_at)) {
                h.insert(header::LAST_MODIFIED, v);
            }
            Ok(r)
        }
        Target::Collection { owner, calendar } => {
            load_collection(state, caller, owner, calendar, Rights::Read).await?;
            Err(DavError::MethodNotAllowed)
        }
        _ => Ok("Serval CalDAV server. Point a CalDAV client at this address.\n".into_response()),
    }
}

fn put_condition(req: &Request2) -> PutCondition {
    PutCondition {
        if_match: header_str(&req.headers, "If-Match").map(|v| v.trim().to_owned()),
        if_none_match_any: header_str(&req.headers, "If-None-Match")
            .is_some_and(|v| v.trim() == "*"),
    }
}

pub(super) async fn put(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    req: &Request2,
) -> Result<Response, DavError> {
    let Target::Object {
        owner,
        calendar,
        object,
    } = target
    else {
        return Err(DavError::MethodNotAllowed);
    };
    if let Some(ct) = header_str(&req.headers, "Content-Type") {
        if !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("text/calendar")
        {
            return Err(DavError::caldav(
                "supported-calendar-data",
                format!("Content-Type `{ct}`"),
            ));
        }
    }
    let rights = rights(state, caller, owner).await?;
    if rights == Rights::None {
        return Err(DavError::NotFound);
    }
    // One trip to the blocking pool for lookup, parse/index and write: each hop costs
    // more than the SQLite work at 1,000 PUT/s.
    let limits = ParseLimits {
        max_resource_bytes: state.config.max_resource_size,
        ..ParseLimits::default()
    };
    let (max_instances, now, condition) =
        (state.config.max_instances, super::now(), put_condition(req));
    let (owner_name, calendar_name, href, body) = (
        owner.clone(),
        calendar.clone(),
        object.clone(),
        req.body.to_vec(),
    );
    let store = state.store.clone();
    let scheduling_state = state.clone();
    // RFC 6638 §3.2.10: an attendee's client may insist it edits the version it saw.
    let schedule_tag_match =
        header_str(&req.headers, "If-Schedule-Tag-Match").map(|v| v.trim().to_owned());
    let (outcome, rescheduled, schedule_tag) = tokio::task::spawn_blocking(move || {
        let (collection, rights) =
            resolve_collection(store.as_ref(), &owner_name, &calendar_name, rights)?
                .ok_or(DavError::NotFound)?;
        if rights < Rights::Write {
            return Err(DavError::Forbidden);
        }
        let new = index_text(
            body,
            &limits,
            max_instances,
            now,
            floating_zone(&collection),
        )?;
        if !collection.components.contains(&new.kind) {
            return Err(DavError::caldav(
                "supported-calendar-component",
                format!("{} not accepted here", new.kind.as_str()),
            ));
        }
        // RFC 6638: the version being replaced decides who gets a CANCEL or a REPLY.
        let previous = store.object(collection.id, &href)?.map(|o| o.data);
        if let Some(expected) = &schedule_tag_match {
            let current = previous
                .as_deref()
                .and_then(crate::schedule::itip::schedule_tag);
            if current.as_deref() != Some(expected.as_str()) {
                return Err(DavError::PreconditionFailed);
            }
        }
        let schedule_tag = crate::schedule::itip::schedule_tag(&new.data);
        let outcome = store.put_object(collection.id, &href, &new, &condition, now)?;
        let rescheduled = match outcome {
            PutOutcome::Created { .. } | PutOutcome::Updated { .. } => schedule_after_write(
                &scheduling_state,
                now,
                &owner_name,
                &collection,
                &href,
                previous.as_deref(),
                Some(&new.data),
            ),
            _ => None,
        };
        Ok::<_, DavError>((outcome, rescheduled, schedule_tag))
    })
    .await
    .map_err(|e| DavError::Internal(e.to_string()))??;
    let (status, etag) = match outcome {
        PutOutcome::Created { etag } => (StatusCode::CREATED, etag),
        PutOutcome::Updated { etag } => (StatusCode::NO_CONTENT, etag),
        PutOutcome::PreconditionFailed => return Err(DavError::PreconditionFailed),
        PutOutcome::UidConflict { existing_href } => {
            return Err(DavError::Precondition {
                status: StatusCode::FORBIDDEN,
                ns: NS_CALDAV,
                element: "no-uid-conflict",
                inner: format!(
                    "<D:href>{}</D:href>",
                    crate::dav::xml::escape(&paths::object(owner, calendar, &existing_href))
                ),
                detail: "UID already used in this calendar".into(),
            })
        }
    };
    let mut r = status.into_response();
    // When scheduling rewrote the object (SCHEDULE-STATUS, a room's answer) the stored
    // text is not what the client sent, so no ETag (RFC 6638 §8.3 via RFC 4791 §5.3.4).
    if rescheduled.is_none() {
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
    }
    if let Some(v) = schedule_tag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        r.headers_mut().insert("Schedule-Tag", v);
    }
    Ok(r)
}

/// Implicit scheduling after a write; its failures are logged, never the PUT's: the
/// client's data is stored either way. Returns the new ETag of a rewritten object.
fn schedule_after_write(
    state: &AppState,
    now: i64,
    owner: &str,
    collection: &Collection,
    href: &str,
    previous: Option<&str>,
    current: Option<&str>,
) -> Option<String> {
    super::scheduling::Scheduler { state, now }
        .after_write(owner, collection, href, previous, current)
        .unwrap_or_else(|error| {
            tracing::error!(%owner, %href, %error, "implicit scheduling failed");
            None
        })
}

pub(super) async fn delete(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    req: &Request2,
) -> Result<Response, DavError> {
    match target {
        Target::Object {
            owner,
            calendar,
            object,
        } => {
            let (collection, _) =
                load_collection(state, caller, owner, calendar, Rights::Write).await?;
            let if_match = header_str(&req.headers, "If-Match").map(|v| v.trim().to_owned());
            let (id, href) = (collection.id, object.clone());
            let (outcome, previous) = blocking(state, move |store| {
                let previous = store.object(id, &href)?.map(|o| o.data);
                Ok((
                    store.delete_object(id, &href, if_match.as_deref())?,
                    previous,
                ))
            })
            .await?;
            match outcome {
                DeleteOutcome::Deleted => {
                    if let Some(previous) = previous {
                        // RFC 6638: an organizer's delete cancels, an attendee's declines.
                        let (state2, owner, href) = (state.clone(), owner.clone(), object.clone());
                        tokio::task::spawn_blocking(move || {
                            schedule_after_write(
                                &state2,
                                super::now(),
                                &owner,
                                &collection,
                                &href,
                                Some(&previous),
                                None,
                            )
                        })
                        .await
                        .map_err(|e| DavError::Internal(e.to_string()))?;
                    }
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                DeleteOutcome::NotFound => Err(DavError::NotFound),
                DeleteOutcome::PreconditionFailed => Err(DavError::PreconditionFailed),
            }
        }
        Target::Collection { owner, calendar } => {
            let (collection, rights) =
                load_collection(state, caller, owner, calendar, Rights::Read).await?;
            let id = collection.id;
            if collection.shared_from.is_some() {
                // Deleting a mounted share leaves the share, not the sharer's calendar.
                let sharee = owner.clone();
                blocking(state, move |store| store.remove_share(id, &sharee)).await?;
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            if rights < Rights::Write {
                return Err(DavError::Forbidden);
            }
            blocking(state, move |store| store.delete_collection(id)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(DavError::Forbidden),
    }
}

pub(super) async fn move_or_copy(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    req: &Request2,
) -> Result<Response, DavError> {
    let Target::Object {
        owner,
        calendar,
        object,
    } = target
    else {
        return Err(DavError::Forbidden);
    };
    let destination = header_str(&req.headers, "Destination")
        .ok_or(DavError::BadRequest("Destination header missing".into()))?;
    let dest_path = match destination.find("://") {
        Some(i) => destination
            .get(i + 3..)
            .and_then(|rest| rest.find('/').and_then(|j| rest.get(j..)))
            .unwrap_or("/"),
        None => destination,
    };
    let Some(Target::Object {
        owner: dest_owner,
        calendar: dest_calendar,
        object: dest_object,
    }) = paths::parse(dest_path)
    else {
        return Err(DavError::Forbidden);
    };
    if dest_owner != *owner {
        // MOVE/COPY stay within one home (cross-home moves would bypass scheduling later).
        return Err(DavError::Forbidden);
    }
    let is_move = req.method.as_str() == "MOVE";
    let (source_cal, _) = load_collection(
        state,
        caller,
        owner,
        calendar,
        if is_move { Rights::Write } else { Rights::Read },
    )
    .await?;
    let (dest_cal, _) =
        load_collection(state, caller, &dest_owner, &dest_calendar, Rights::Write).await?;
    let (sid, href) = (source_cal.id, object.clone());
    let stored = blocking(state, move |store| store.object(sid, &href))
        .await?
        .ok_or(DavError::NotFound)?;
    let overwrite =
        !header_str(&req.headers, "Overwrite").is_some_and(|v| v.trim().eq_ignore_ascii_case("F"));
    let new = index_body(state, stored.data.into_bytes(), floating_zone(&dest_cal)).await?;
    if is_move && sid == dest_cal.id {
        // Same calendar: the UID stays; drop the source first so no-uid-conflict does not fire.
        if !overwrite {
            let (id, h) = (dest_cal.id, dest_object.clone());
            if blocking(state, move |store| store.object(id, &h))
                .await?
                .is_some()
            {
                return Err(DavError::PreconditionFailed);
            }
        }
        let (id, h) = (sid, object.clone());
        blocking(state, move |store| store.delete_object(id, &h, None)).await?;
    }
    let condition = PutCondition {
        if_match: None,
        if_none_match_any: !overwrite,
    };
    let (did, dh, now) = (dest_cal.id, dest_object.clone(), super::now());
    let outcome = blocking(state, move |store| {
        store.put_object(did, &dh, &new, &condition, now)
    })
    .await?;
    let status = match outcome {
        PutOutcome::Created { .. } => StatusCode::CREATED,
        PutOutcome::Updated { .. } => StatusCode::NO_CONTENT,
        PutOutcome::PreconditionFailed => return Err(DavError::PreconditionFailed),
        PutOutcome::UidConflict { .. } => {
            return Err(DavError::caldav(
                "no-uid-conflict",
                "UID exists in the destination",
            ))
        }
    };
    if is_move && sid != dest_cal.id {
        let (id, h) = (sid, object.clone());
        blocking(state, move |store| store.delete_object(id, &h, None)).await?;
    }
    Ok(status.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ended_rule_is_indexed_to_the_horizon() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:d\r\nDTSTART:20260101T090000Z\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let now = crate::ical::expand::parse_utc("20260101T000000Z").unwrap();
        let new = index_text(
            text.as_bytes().to_vec(),
            &ParseLimits::default(),
            3000,
            now,
            None,
        )
        .unwrap();
        assert_eq!(new.instances.len(), 365);
        assert_eq!(new.indexed_until, Some(now + INDEX_HORIZON_SECS));
        assert!(new.etag.starts_with('"') && new.etag.len() == 34);
    }

    #[test]
    fn bad_bodies_map_to_caldav_preconditions() {
        let err =
            index_text(b"nonsense".to_vec(), &ParseLimits::default(), 10, 0, None).unwrap_err();
        assert!(matches!(
            err,
            DavError::Precondition {
                element: "valid-calendar-data",
                ..
            }
        ));
        let no_uid = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nDTSTART:20260101T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let err = index_text(
            no_uid.as_bytes().to_vec(),
            &ParseLimits::default(),
            10,
            0,
            None,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            DavError::Precondition {
                element: "valid-calendar-object-resource",
                ..
            }
        ));
    }
}
