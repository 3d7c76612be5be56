//! Principal resources: users (with calendar-proxy-read-for/-write-for), their
//! calendar-proxy-read/-write groups (CalendarServer delegation) and directory groups.

use super::props::{common, p, text, Described};
use super::{blocking, AppState, Caller, DavError, Rights};
use crate::dav::response::PropValue;
use crate::dav::xml::{NS_CALDAV, NS_CALSERVER, NS_DAV};
use crate::paths;
use std::sync::Arc;

pub(crate) async fn user_principal(
    state: &Arc<AppState>,
    caller: &Caller,
    name: &str,
) -> Result<Described, DavError> {
    let directory = state.directory.clone();
    let lookup = name.to_owned();
    let (user, groups) = tokio::task::spawn_blocking(move || {
        let user = directory.user(&lookup).ok().flatten();
        let groups = directory.groups_of(&lookup).unwrap_or_default();
        (user, groups)
    })
    .await
    .map_err(|e| DavError::Internal(e.to_string()))?;
    let user = user.ok_or(DavError::NotFound)?;
    let href = paths::user_principal(&user.name);
    let mut props = common(
        caller,
        if caller.user.name == user.name {
            Rights::Owner
        } else {
            Rights::Read
        },
    );
    let mut addresses = Vec::new();
    if !user.email.is_empty() {
        addresses.push(format!("mailto:{}", user.email));
    }
    addresses.push(href.clone());
    props.extend([
        p(
            NS_DAV,
            "resourcetype",
            PropValue::Xml("<D:collection/><D:principal/>".into()),
        ),
        p(
            NS_DAV,
            "displayname",
            text(if user.full_name.is_empty() {
                user.name.clone()
            } else {
                user.full_name.clone()
            }),
        ),
        p(
            NS_DAV,
            "principal-URL",
            PropValue::Hrefs(vec![href.clone()]),
        ),
        p(NS_DAV, "owner", PropValue::Hrefs(vec![href.clone()])),
        p(
            NS_CALDAV,
            "calendar-home-set",
            PropValue::Hrefs(vec![paths::home(&user.name)]),
        ),
        p(
            NS_CALDAV,
            "calendar-user-address-set",
            PropValue::Hrefs(addresses),
        ),
        p(
            NS_CALDAV,
            "calendar-user-type",
            text(match user.kind {
                serval_core::directory::PrincipalKind::Person => "INDIVIDUAL",
                serval_core::directory::PrincipalKind::Room => "ROOM",
                serval_core::directory::PrincipalKind::Resource => "RESOURCE",
            }),
        ),
        p(
            NS_DAV,
            "supported-report-set",
            PropValue::Xml(
                "<D:supported-report><D:report><D:expand-property/></D:report></D:supported-report><D:supported-report><D:report><D:principal-property-search/></D:report></D:supported-report>".into(),
            ),
        ),
    ]);
    // RFC 6638 §2: where this user's scheduling inbox and outbox are.
    props.extend(super::outbox::principal_props(&user.name));
    // Delegation is only disclosed to the principal itself.
    if caller.user.name == user.name {
        let mut identities = vec![user.name.clone()];
        identities.extend(groups.iter().map(|g| format!("group:{g}")));
        let grants = blocking(state, move |store| store.delegations_to(&identities)).await?;
        let read_for: Vec<String> = grants
            .iter()
            .filter(|g| !g.write)
            .map(|g| paths::user_principal(&g.owner))
            .collect();
        let write_for: Vec<String> = grants
            .iter()
            .filter(|g| g.write)
            .map(|g| paths::user_principal(&g.owner))
            .collect();
        let mut membership: Vec<String> = grants
            .iter()
            .map(|g| paths::proxy_group(&g.owner, g.write))
            .collect();
        membership.extend(groups.iter().map(|g| paths::group_principal(g)));
        props.push(p(
            NS_CALSERVER,
            "notification-URL",
            PropValue::Hrefs(vec![paths::collection(
                &user.name,
                super::sharing::NOTIFICATION_COLLECTION,
            )]),
        ));
        props.extend([
            p(
                NS_CALSERVER,
                "calendar-proxy-read-for",
                PropValue::Hrefs(read_for),
            ),
            p(
                NS_CALSERVER,
                "calendar-proxy-write-for",
                PropValue::Hrefs(write_for),
            ),
            p(NS_DAV, "group-membership", PropValue::Hrefs(membership)),
        ]);
    }
    Ok(Described { href, props })
}

pub(super) async fn proxy_group(
    state: &Arc<AppState>,
    caller: &Caller,
    owner: &str,
    write: bool,
) -> Result<Described, DavError> {
    if caller.user.name != owner {
        return Err(DavError::NotFound);
    }
    let owner_name = owner.to_owned();
    let grants = blocking(state, move |store| store.delegates(&owner_name)).await?;
    let members: Vec<String> = grants
        .iter()
        .filter(|g| g.write == write)
        .map(|g| match g.delegate.strip_prefix("group:") {
            Some(group) => paths::group_principal(group),
            None => paths::user_principal(&g.delegate),
        })
        .collect();
    let kind = if write {
        "calendar-proxy-write"
    } else {
        "calendar-proxy-read"
    };
    let href = paths::proxy_group(owner, write);
    let mut props = common(caller, Rights::Owner);
    props.extend([
        p(
            NS_DAV,
            "resourcetype",
            PropValue::Xml(format!("<D:principal/><CS:{kind}/>")),
        ),
        p(NS_DAV, "displayname", text(kind)),
        p(
            NS_DAV,
            "principal-URL",
            PropValue::Hrefs(vec![href.clone()]),
        ),
        p(NS_DAV, "group-member-set", PropValue::Hrefs(members)),
    ]);
    Ok(Described { href, props })
}

pub(super) async fn group_principal(
    state: &Arc<AppState>,
    caller: &Caller,
    group: &str,
) -> Result<Described, DavError> {
    let directory = state.directory.clone();
    let lookup = group.to_owned();
    let members = tokio::task::spawn_blocking(move || directory.group_members(&lookup).ok())
        .await
        .map_err(|e| DavError::Internal(e.to_string()))?;
    // Membership is disclosed to members only; others learn nothing, not even existence.
    let members = members
        .filter(|m| m.contains(&caller.user.name))
        .ok_or(DavError::NotFound)?;
    let href = paths::group_principal(group);
    let mut props = common(caller, Rights::Read);
    props.extend([
        p(
            NS_DAV,
            "resourcetype",
            PropValue::Xml("<D:collection/><D:principal/>".into()),
        ),
        p(NS_DAV, "displayname", text(group)),
        p(
            NS_CALDAV,
            "calendar-home-set",
            PropValue::Hrefs(vec![paths::home(&format!("group:{group}"))]),
        ),
        p(
            NS_DAV,
            "principal-URL",
            PropValue::Hrefs(vec![href.clone()]),
        ),
        p(
            NS_DAV,
            "group-member-set",
            PropValue::Hrefs(members.iter().map(|m| paths::user_principal(m)).collect()),
        ),
    ]);
    Ok(Described { href, props })
}
