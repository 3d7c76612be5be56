//! PROPFIND and PROPPATCH: live properties of principals, homes, calendars and objects,
//! dead properties of calendars, and the calendar-proxy group-member-set.

use super::principals::{group_principal, proxy_group, user_principal};
use super::{
    blocking, header_str, rights, xml_response, AppState, Caller, DavError, Request2, Rights,
};
use crate::dav::request::{parse_propfind, parse_proppatch, PropName, PropUpdate, Propfind};
use crate::dav::response::{Multistatus, PropValue};
use crate::dav::xml::{escape, Element, NS_CALDAV, NS_CALSERVER, NS_DAV};
use crate::ical::ComponentKind;
use crate::paths::{self, Target};
use crate::store::schedule::INBOX;
use crate::store::{Collection, ObjectMeta};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;

/// A resource and its live properties (calendar-data is added by the caller when asked).
pub(crate) struct Described {
    pub href: String,
    pub props: Vec<(PropName, PropValue)>,
}

pub(super) fn p(ns: &str, name: &str, value: PropValue) -> (PropName, PropValue) {
    (PropName::new(ns, name), value)
}

pub(super) fn text(value: impl Into<String>) -> PropValue {
    PropValue::Text(value.into())
}

/// Chooses the requested properties: found ones and 404 ones.
pub(crate) fn select(
    described: &Described,
    request: &Propfind,
) -> (Vec<(PropName, PropValue)>, Vec<PropName>) {
    match request {
        Propfind::AllProp => (described.props.clone(), Vec::new()),
        Propfind::PropName => (
            described
                .props
                .iter()
                .map(|(n, _)| (n.clone(), PropValue::Empty))
                .collect(),
            Vec::new(),
        ),
        Propfind::Prop(names) => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for name in names {
                match described.props.iter().find(|(n, _)| n == name) {
                    Some(entry) => found.push(entry.clone()),
                    None => missing.push(name.clone()),
                }
            }
            (found, missing)
        }
    }
}

fn privileges(rights: Rights) -> PropValue {
    let mut xml = String::from("<D:privilege><D:read/></D:privilege><D:privilege><D:read-current-user-privilege-set/></D:privilege><D:privilege><C:read-free-busy/></D:privilege>");
    if rights >= Rights::Write {
        xml.push_str("<D:privilege><D:write/></D:privilege><D:privilege><D:write-properties/></D:privilege><D:privilege><D:write-content/></D:privilege><D:privilege><D:bind/></D:privilege><D:privilege><D:unbind/></D:privilege>");
    }
    PropValue::Xml(xml)
}

pub(super) fn common(caller: &Caller, rights: Rights) -> Vec<(PropName, PropValue)> {
    vec![
        p(
            NS_DAV,
            "current-user-principal",
            PropValue::Hrefs(vec![paths::user_principal(&caller.user.name)]),
        ),
        p(
            NS_DAV,
            "principal-collection-set",
            PropValue::Hrefs(vec!["/principals/".into()]),
        ),
        p(NS_DAV, "current-user-privilege-set", privileges(rights)),
    ]
}

fn plain_collection(href: &str, caller: &Caller) -> Described {
    let mut props = common(caller, Rights::Read);
    props.push(p(
        NS_DAV,
        "resourcetype",
        PropValue::Xml("<D:collection/>".into()),
    ));
    Described {
        href: href.to_owned(),
        props,
    }
}

fn home(caller: &Caller, owner: &str, rights: Rights) -> Described {
    let href = paths::home(owner);
    let mut props = common(caller, rights);
    props.extend([
        p(
            NS_DAV,
            "resourcetype",
            PropValue::Xml("<D:collection/>".into()),
        ),
        p(
            NS_DAV,
            "owner",
            PropValue::Hrefs(vec![paths::user_principal(owner)]),
        ),
        p(NS_DAV, "displayname", text(owner)),
    ]);
    Described { href, props }
}

/// `sync-token` of a collection at `revision`; tokens name the collection so one from
/// another calendar is refused.
pub(crate) fn sync_token(collection: &Collection) -> String {
    format!(
        "http://serval.invalid/ns/sync/{}-{}",
        collection.id, collection.revision
    )
}

/// Revision in a token of this collection, if it is one.
pub(crate) fn parse_sync_token(collection: &Collection, token: &str) -> Option<i64> {
    let rest = token.strip_prefix("http://serval.invalid/ns/sync/")?;
    let (id, revision) = rest.split_once('-')?;
    (id.parse::<i64>().ok()? == collection.id).then_some(())?;
    revision.parse().ok()
}

const SUPPORTED_REPORTS: &str = "<D:supported-report><D:report><C:calendar-query/></D:report></D:supported-report><D:supported-report><D:report><C:calendar-multiget/></D:report></D:supported-report><D:supported-report><D:report><C:free-busy-query/></D:report></D:supported-report><D:supported-report><D:report><D:sync-collection/></D:report></D:supported-report>";

pub(crate) fn calendar(
    caller: &Caller,
    collection: &Collection,
    rights: Rights,
    max_resource_size: usize,
) -> Described {
    let href = paths::collection(&collection.owner, &collection.name);
    let mut props = common(caller, rights);
    let comps: String = collection
        .components
        .iter()
        .map(|k| format!("<C:comp name=\"{}\"/>", k.as_str()))
        .collect();
    props.extend([
        p(
            NS_DAV,
            "resourcetype",
            PropValue::Xml(if collection.shared_from.is_some() {
                "<D:collection/><C:calendar/><CS:shared/>".into()
            } else {
                "<D:collection/><C:calendar/>".into()
            }),
        ),
        p(
            NS_DAV,
            "owner",
            PropValue::Hrefs(vec![paths::user_principal(
                collection
                    .shared_from
                    .as_deref()
                    .unwrap_or(&collection.owner),
            )]),
        ),
        p(
            NS_CALSERVER,
            "getctag",
            text(collection.revision.to_string()),
        ),
        p(NS_DAV, "sync-token", text(sync_token(collection))),
        p(
            NS_DAV,
            "supported-report-set",
            PropValue::Xml(SUPPORTED_REPORTS.into()),
        ),
        p(
            NS_CALDAV,
            "supported-calendar-component-set",
            PropValue::Xml(comps),
        ),
        p(
            NS_CALDAV,
            "supported-calendar-data",
            PropValue::Xml(
                "<C:calendar-data content-type=\"text/calendar\" version=\"2.0\"/>".into(),
            ),
        ),
        p(
            NS_CALDAV,
            "max-resource-size",
            text(max_resource_size.to_string()),
        ),
    ]);
    if collection.name == INBOX && collection.shared_from.is_none() {
        // RFC 6638 §2.2: the inbox is not a calendar; it names where invitations land.
        for (name, value) in &mut props {
            if name.is(NS_DAV, "resourcetype") {
                *value = PropValue::Xml(super::outbox::INBOX_RESOURCETYPE.into());
            }
        }
        props.push(p(
            NS_CALDAV,
            "schedule-default-calendar-URL",
            PropValue::Hrefs(vec![paths::collection(
                &collection.owner,
                super::scheduling::DEFAULT_CALENDAR,
            )]),
        ));
    }
    match &collection.shared_from {
        Some(real_owner) => props.push(p(
            NS_CALSERVER,
            "organizer",
            PropValue::Xml(format!(
                "<D:href>{}</D:href><CS:common-name>{}</CS:common-name>",
                escape(&paths::user_principal(real_owner)),
                escape(real_owner)
            )),
        )),
        None if rights == Rights::Owner => props.push(p(
            NS_CALSERVER,
            "allowed-sharing-modes",
            PropValue::Xml("<CS:can-be-shared/>".into()),
        )),
        None => {}
    }
    for (name, value) in &collection.props {
        props.push((name.clone(), stored_to_value(value)));
    }
    Described { href, props }
}

pub(crate) fn object(
    caller: &Caller,
    owner: &str,
    calendar: &str,
    meta: &ObjectMeta,
    rights: Rights,
) -> Described {
    let href = paths::object(owner, calendar, &meta.href);
    let mut props = common(caller, rights);
    props.extend([
        p(NS_DAV, "resourcetype", PropValue::Xml(String::new())),
        p(NS_DAV, "getetag", text(meta.etag.clone())),
        p(NS_DAV, "getcontenttype", text(content_type(meta.kind))),
        p(NS_DAV, "getcontentlength", text(meta.size.to_string())),
        p(NS_DAV, "getlastmodified", text(http_date(meta.modified_at))),
    ]);
    Described { href, props }
}

/// For an owner's calendar with sharees: `CS:invite` and the `shared-owner` resourcetype.
async fn add_share_props(
    state: &Arc<AppState>,
    collection: &Collection,
    described: &mut Described,
) -> Result<(), DavError> {
    let id = collection.id;
    let shares = blocking(state, move |store| store.shares_of(id)).await?;
    if shares.is_empty() {
        return Ok(());
    }
    for (name, value) in &mut described.props {
        if name.is(NS_DAV, "resourcetype") {
            *value = PropValue::Xml("<D:collection/><C:calendar/><CS:shared-owner/>".into());
        }
    }
    described.props.push(p(
        NS_CALSERVER,
        "invite",
        super::sharing::invite_property(&shares),
    ));
    Ok(())
}

pub(crate) fn content_type(kind: ComponentKind) -> String {
    format!(
        "text/calendar; charset=utf-8; component={}",
        kind.as_str().to_ascii_lowercase()
    )
}

pub(crate) fn http_date(unix: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)
        .map(|d| d.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

/// Dead property values are stored as `t:TEXT` or `x:XML`.
fn stored_to_value(stored: &str) -> PropValue {
    match stored.split_at_checked(2) {
        Some(("x:", xml)) => PropValue::Xml(xml.to_owned()),
        Some(("t:", text)) => PropValue::Text(text.to_owned()),
        _ => PropValue::Text(stored.to_owned()),
    }
}

pub(crate) fn value_to_stored(element: &Element) -> String {
    if element.children.is_empty() {
        format!("t:{}", element.text.trim())
    } else {
        let mut out = String::from("x:");
        for child in &element.children {
            write_element(child, &mut out);
        }
        out
    }
}

fn write_element(element: &Element, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "<X:{} xmlns:X=\"{}\"",
        element.name,
        escape(&element.ns)
    );
    for (name, value) in &element.attrs {
        if name != "xmlns" && name != "X" {
            let _ = write!(out, " {}=\"{}\"", name, escape(value));
        }
    }
    out.push('>');
    out.push_str(&escape(&element.text));
    for child in &element.children {
        write_element(child, out);
    }
    let _ = write!(out, "</X:{}>", element.name);
}

/// Properties a client may not set on a calendar.
fn is_protected(name: &PropName) -> bool {
    (name.ns == NS_DAV
        && matches!(
            name.name.as_str(),
            "resourcetype"
                | "getetag"
                | "sync-token"
                | "owner"
                | "current-user-privilege-set"
                | "supported-report-set"
                | "getcontentlength"
                | "getcontenttype"
                | "getlastmodified"
                | "current-user-principal"
        ))
        || (name.ns == NS_CALSERVER && name.name == "getctag")
        || (name.ns == NS_CALDAV
            && matches!(
                name.name.as_str(),
                "supported-calendar-data"
                    | "max-resource-size"
                    | "supported-calendar-component-set"
            ))
}

fn depth(req: &Request2) -> u8 {
    match header_str(&req.headers, "Depth").map(str::trim) {
        Some("0") => 0,
        _ => 1, // "1" and "infinity" (answered as 1: homes and calendars are two levels deep)
    }
}

pub(super) async fn propfind(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    req: &Request2,
) -> Result<Response, DavError> {
    let request = parse_propfind(&req.body)?;
    let depth = depth(req);
    let mut listing: Vec<Described> = Vec::new();
    match target {
        Target::Root | Target::Principals | Target::Calendars => {
            listing.push(plain_collection(&req.path, caller));
        }
        Target::UserPrincipals => {
            listing.push(plain_collection("/principals/users/", caller));
            if depth > 0 {
                listing.push(user_principal(state, caller, &caller.user.name).await?);
            }
        }
        Target::GroupPrincipals => listing.push(plain_collection("/principals/groups/", caller)),
        Target::Homes => {
            listing.push(plain_collection("/calendars/users/", caller));
            if depth > 0 {
                listing.push(home(caller, &caller.user.name, Rights::Owner));
            }
        }
        Target::User(name) => {
            listing.push(user_principal(state, caller, name).await?);
            if depth > 0 && *name == caller.user.name {
                listing.push(proxy_group(state, caller, name, false).await?);
                listing.push(proxy_group(state, caller, name, true).await?);
            }
        }
        Target::ProxyGroup { owner, write } => {
            listing.push(proxy_group(state, caller, owner, *write).await?)
        }
        Target::Group(name) => listing.push(group_principal(state, caller, name).await?),
        Target::Home(owner) => {
            let rights = rights(state, caller, owner).await?;
            if rights == Rights::None {
                return Err(DavError::NotFound);
            }
            listing.push(home(caller, owner, rights));
            if depth > 0 {
                let owner_name = owner.clone();
                let mut collections =
                    blocking(state, move |store| store.collections(&owner_name)).await?;
                let only_inbox = collections.iter().all(|c| c.name == INBOX);
                if only_inbox && rights == Rights::Owner {
                    // Like CalendarServer: a home starts with one calendar so clients have somewhere to write.
                    let owner_name = owner.clone();
                    let props = vec![(
                        PropName::new(NS_DAV, "displayname"),
                        "t:Calendar".to_owned(),
                    )];
                    let now = super::now();
                    blocking(state, move |store| {
                        store.create_collection(
                            &owner_name,
                            "calendar",
                            &[ComponentKind::Event, ComponentKind::Todo],
                            &props,
                            now,
                        )
                    })
                    .await?;
                    let owner_name = owner.clone();
                    collections =
                        blocking(state, move |store| store.collections(&owner_name)).await?;
                }
                for collection in &collections {
                    let mut described =
                        calendar(caller, collection, rights, state.config.max_resource_size);
                    if rights == Rights::Owner {
                        add_share_props(state, collection, &mut described).await?;
                    }
                    listing.push(described);
                }
                if rights >= Rights::Write && !owner.starts_with("group:") {
                    listing.push(super::outbox::describe_outbox(caller, owner, rights));
                }
                if rights == Rights::Owner {
                    // Calendars others shared with this user and they accepted.
                    let sharee = owner.clone();
                    let mounted = blocking(state, move |store| {
                        let mut mounted = Vec::new();
                        for share in store.shares_for(&sharee)? {
                            let Some(mount) = share.mount.clone() else {
                                continue;
                            };
                            if let Some(found) = super::objects::resolve_collection(
                                store,
                                &sharee,
                                &mount,
                                Rights::Owner,
                            )? {
                                mounted.push(found);
                            }
                        }
                        Ok(mounted)
                    })
                    .await?;
                    for (collection, share_rights) in &mounted {
                        listing.push(calendar(
                            caller,
                            collection,
                            *share_rights,
                            state.config.max_resource_size,
                        ));
                    }
                }
            }
        }
        Target::Collection {
            owner,
            calendar: name,
        } => {
            let (collection, rights) =
                super::objects::load_collection(state, caller, owner, name, Rights::Read).await?;
            let mut described =
                calendar(caller, &collection, rights, state.config.max_resource_size);
            if rights == Rights::Owner && collection.shared_from.is_none() {
                add_share_props(state, &collection, &mut described).await?;
            }
            listing.push(described);
            if depth > 0 {
                let wants_data = matches!(&request, Propfind::Prop(names) if names.iter().any(|n| n.is(NS_CALDAV, "calendar-data")));
                let id = collection.id;
                if wants_data {
                    let objects = blocking(state, move |store| store.query(id, None, None)).await?;
                    for (obj, _) in objects {
                        let mut d = object(caller, owner, name, &obj.meta, rights);
                        d.props.push(p(NS_CALDAV, "calendar-data", text(obj.data)));
                        listing.push(d);
                    }
                } else {
                    for meta in blocking(state, move |store| store.objects(id)).await? {
                        listing.push(object(caller, owner, name, &meta, rights));
                    }
                }
            }
        }
        Target::Object {
            owner,
            calendar: name,
            object: obj_name,
        } => {
            let (collection, rights) =
                super::objects::load_collection(state, caller, owner, name, Rights::Read).await?;
            let id = collection.id;
            let href = obj_name.clone();
            let stored = blocking(state, move |store| store.object(id, &href))
                .await?
                .ok_or(DavError::NotFound)?;
            let mut d = object(caller, owner, name, &stored.meta, rights);
            d.props
                .push(p(NS_CALDAV, "calendar-data", text(stored.data)));
            listing.push(d);
        }
        Target::WellKnown => return Err(DavError::NotFound),
    }
    let mut ms = Multistatus::new();
    for described in &listing {
        let (found, missing) = select(described, &request);
        // calendar-data is only returned when asked for by name.
        let found: Vec<_> = match &request {
            Propfind::Prop(_) => found,
            _ => found
                .into_iter()
                .filter(|(n, _)| !n.is(NS_CALDAV, "calendar-data"))
                .collect(),
        };
        ms.response(&described.href, &found, &missing);
    }
    Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
}

pub(super) async fn proppatch(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    req: &Request2,
) -> Result<Response, DavError> {
    let updates = parse_proppatch(&req.body)?;
    match target {
        Target::Collection {
            owner,
            calendar: name,
        } => {
            let (collection, rights) =
                super::objects::load_collection(state, caller, owner, name, Rights::Read).await?;
            // On a calendar shared with the caller the view properties are theirs (see
            // `sharee_props`); everything else is the owner's calendar and needs write.
            let mounted = collection.shared_from.is_some();
            if !mounted && rights < Rights::Write {
                return Err(DavError::Forbidden);
            }
            let changes: Vec<(PropName, Option<String>)> = updates
                .iter()
                .map(|u| match u {
                    PropUpdate::Set(n, v) => (n.clone(), Some(value_to_stored(v))),
                    PropUpdate::Remove(n) => (n.clone(), None),
                })
                .collect();
            let names: Vec<PropName> = changes.iter().map(|(n, _)| n.clone()).collect();
            let href = paths::collection(owner, name);
            let mut ms = Multistatus::new();
            let split = match super::sharee_props::split(
                changes,
                mounted,
                rights >= Rights::Write,
                is_protected,
            ) {
                Ok(split) => split,
                Err(refused) => {
                    ms.propstat_status(&href, &refused.forbidden, "403 Forbidden");
                    if !refused.failed.is_empty() {
                        ms.propstat_status(&href, &refused.failed, "424 Failed Dependency");
                    }
                    return Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()));
                }
            };
            let id = collection.id;
            if !split.owner.is_empty() || !mounted {
                let timezone_changed = split
                    .owner
                    .iter()
                    .any(|(n, _)| n.is(NS_CALDAV, "calendar-timezone"));
                let owner_changes = split.owner;
                blocking(state, move |store| store.set_props(id, &owner_changes)).await?;
                if timezone_changed {
                    reindex_for_timezone(state, &collection).await?;
                }
            }
            if !split.own.is_empty() {
                let (sharee, own) = (owner.clone(), split.own);
                let stored = blocking(state, move |store| {
                    store.set_sharee_props(id, &sharee, &own)
                })
                .await?;
                if !stored {
                    // The share was withdrawn since the calendar was resolved.
                    return Err(DavError::NotFound);
                }
            }
            ms.propstat_status(&href, &names, "200 OK");
            Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
        }
        Target::ProxyGroup { owner, write } => {
            if caller.user.name != *owner {
                return Err(DavError::NotFound);
            }
            let mut names = Vec::new();
            for update in &updates {
                match update {
                    PropUpdate::Set(n, value) if n.is(NS_DAV, "group-member-set") => {
                        let mut delegates = Vec::new();
                        for href in value.children_named(NS_DAV, "href") {
                            let href = href.text_content();
                            let principal = paths::principal_from_href(&href).ok_or_else(|| {
                                DavError::BadRequest(format!("`{href}` is not a principal"))
                            })?;
                            if principal == *owner {
                                return Err(DavError::Conflict(
                                    "an owner cannot be their own delegate",
                                ));
                            }
                            delegates.push(principal);
                        }
                        check_principals_exist(state, &delegates).await?;
                        let (owner_name, write) = (owner.clone(), *write);
                        blocking(state, move |store| {
                            store.set_delegates(&owner_name, write, &delegates)
                        })
                        .await?;
                        names.push(n.clone());
                    }
                    PropUpdate::Set(n, _) | PropUpdate::Remove(n) => {
                        let mut ms = Multistatus::new();
                        ms.propstat_status(
                            &paths::proxy_group(owner, *write),
                            std::slice::from_ref(n),
                            "403 Forbidden",
                        );
                        return Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()));
                    }
                }
            }
            let mut ms = Multistatus::new();
            ms.propstat_status(&paths::proxy_group(owner, *write), &names, "200 OK");
            Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
        }
        Target::Home(owner) | Target::User(owner) => {
            // Nothing on homes or principals is writable; answer per RFC 4918 with 403s.
            if rights(state, caller, owner).await? == Rights::None {
                return Err(DavError::NotFound);
            }
            let names: Vec<PropName> = updates
                .iter()
                .map(|u| match u {
                    PropUpdate::Set(n, _) | PropUpdate::Remove(n) => n.clone(),
                })
                .collect();
            let mut ms = Multistatus::new();
            ms.propstat_status(&req.path, &names, "403 Forbidden");
            Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
        }
        _ => Err(DavError::MethodNotAllowed),
    }
}

/// A new calendar-timezone moves floating events: their instances are indexed again.
/// Each object is rewritten only if its ETag is unchanged, so a concurrent PUT wins.
async fn reindex_for_timezone(
    state: &Arc<AppState>,
    collection: &Collection,
) -> Result<(), DavError> {
    let (id, owner, name) = (
        collection.id,
        collection.owner.clone(),
        collection.name.clone(),
    );
    let limits = crate::ical::ParseLimits {
        max_resource_bytes: usize::MAX,
        ..crate::ical::ParseLimits::default()
    };
    let (max_instances, now) = (state.config.max_instances, super::now());
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || -> Result<(), DavError> {
        let Some(updated) = store.collection(&owner, &name)? else {
            return Ok(());
        };
        let zone = super::floating_zone(&updated);
        for (object, _) in store.query(id, None, None)? {
            let Ok(new) = super::index_text(
                object.data.clone().into_bytes(),
                &limits,
                max_instances,
                now,
                zone,
            ) else {
                continue;
            };
            let condition = crate::store::PutCondition {
                if_match: Some(object.meta.etag.clone()),
                if_none_match_any: false,
            };
            store.put_object(id, &object.meta.href, &new, &condition, now)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| DavError::Internal(e.to_string()))?
}

async fn check_principals_exist(
    state: &Arc<AppState>,
    principals: &[String],
) -> Result<(), DavError> {
    let directory = state.directory.clone();
    let principals = principals.to_vec();
    let missing = tokio::task::spawn_blocking(move || {
        principals
            .into_iter()
            .find(|p| match p.strip_prefix("group:") {
                Some(group) => !directory.group_exists(group).unwrap_or(false),
                None => directory.user(p).ok().flatten().is_none(),
            })
    })
    .await
    .map_err(|e| DavError::Internal(e.to_string()))?;
    match missing {
        Some(name) => Err(DavError::BadRequest(format!("no principal `{name}`"))),
        None => Ok(()),
    }
}
