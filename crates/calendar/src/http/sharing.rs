//! CalendarServer sharing ("calendarserver-sharing", what Apple Calendar uses): the owner
//! POSTs `CS:share`, the sharee finds an invite in their notification collection and
//! POSTs `CS:invite-reply` to their home; an accepted calendar is mounted in the sharee's
//! home with the granted access. Notifications live at `/calendars/users/NAME/notification/`.

use super::{blocking, xml_response, AppState, Caller, DavError, Request2, Rights};
use crate::dav::request::PropName;
use crate::dav::request::{parse_share_post, SharePost};
use crate::dav::response::{Multistatus, PropValue};
use crate::dav::xml::{escape, NS_CALSERVER, NS_DAV};
use crate::paths::{self, Target};
use crate::store::{Share, ShareStatus};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The reserved name of the notification collection in every home.
pub const NOTIFICATION_COLLECTION: &str = "notification";

pub(super) async fn post(
    state: &Arc<AppState>,
    caller: &Caller,
    target: &Target,
    req: &Request2,
) -> Result<Response, DavError> {
    let body = parse_share_post(&req.body)?;
    match (target, body) {
        (Target::Collection { owner, calendar }, SharePost::Share { set, remove }) => {
            if *owner != caller.user.name {
                // Only owners share; delegates and sharees do not re-share.
                return Err(
                    if super::rights(state, caller, owner).await? == Rights::None {
                        DavError::NotFound
                    } else {
                        DavError::Forbidden
                    },
                );
            }
            let (owner_name, calendar_name) = (owner.clone(), calendar.clone());
            let collection = blocking(state, move |store| {
                store.collection(&owner_name, &calendar_name)
            })
            .await?
            .ok_or(DavError::NotFound)?;
            let mut updates = Vec::new();
            for invite in set {
                let sharee = resolve_user(state, &invite.href).await?;
                if sharee == caller.user.name {
                    return Err(DavError::Conflict(
                        "a calendar cannot be shared with its owner",
                    ));
                }
                updates.push((sharee, Some((invite.write, invite.summary))));
            }
            for href in remove {
                updates.push((resolve_user(state, &href).await?, None));
            }
            let (id, now) = (collection.id, super::now());
            blocking(state, move |store| {
                for (sharee, access) in &updates {
                    match access {
                        Some((write, summary)) => {
                            let uid = invitation_uid(id, sharee, now);
                            store.upsert_share(id, sharee, *write, &uid, summary, now)?;
                        }
                        None => {
                            store.remove_share(id, sharee)?;
                        }
                    }
                }
                Ok(())
            })
            .await?;
            Ok(StatusCode::OK.into_response())
        }
        (
            Target::Home(home),
            SharePost::InviteReply {
                accepted,
                in_reply_to,
                summary: _,
            },
        ) => {
            if *home != caller.user.name {
                return Err(DavError::NotFound);
            }
            let mount = mount_name(&in_reply_to);
            let (sharee, uid, mount_name) = (home.clone(), in_reply_to.clone(), mount.clone());
            let share = blocking(state, move |store| {
                store.reply_share(&sharee, &uid, accepted, &mount_name)
            })
            .await?
            .ok_or(DavError::NotFound)?;
            if !accepted {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            let href = paths::collection(home, share.mount.as_deref().unwrap_or(&mount));
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<CS:shared-as xmlns:D=\"DAV:\" xmlns:CS=\"http://calendarserver.org/ns/\"><D:href>{}</D:href></CS:shared-as>\n",
                escape(&href)
            );
            Ok(xml_response(StatusCode::OK, body))
        }
        _ => Err(DavError::BadRequest(
            "this POST body does not apply to this resource".into(),
        )),
    }
}

/// A user named by `mailto:` address or principal URL.
async fn resolve_user(state: &Arc<AppState>, href: &str) -> Result<String, DavError> {
    if let Some(principal) = paths::principal_from_href(href).filter(|p| !p.starts_with("group:")) {
        return Ok(principal);
    }
    let Some(email) = href.strip_prefix("mailto:").map(str::to_owned) else {
        return Err(DavError::BadRequest(format!(
            "`{href}` is neither a mailto: address nor a user principal"
        )));
    };
    let directory = state.directory.clone();
    let user = tokio::task::spawn_blocking(move || directory.user_by_email(&email))
        .await
        .map_err(|e| DavError::Internal(e.to_string()))?
        .map_err(|e| DavError::Internal(e.to_string()))?;
    user.map(|u| u.name).ok_or_else(|| {
        DavError::caldav(
            "valid-calendar-user",
            format!("no user with address `{href}`"),
        )
    })
}

/// The name an accepted share gets in the sharee's home, from its invitation id.
pub(crate) fn mount_name(invitation_uid: &str) -> String {
    format!(
        "shared-{}",
        invitation_uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect::<String>()
    )
}

pub(crate) fn invitation_uid(collection_id: i64, sharee: &str, now: i64) -> String {
    let digest = Sha256::digest(format!("{collection_id}\0{sharee}\0{now}").as_bytes());
    hex::encode(digest.get(..12).unwrap_or(&digest))
}

/// `CS:invite` of a shared calendar, for its owner.
pub(crate) fn invite_property(shares: &[Share]) -> PropValue {
    let mut xml = String::new();
    for share in shares {
        let status = match share.status {
            ShareStatus::Pending => "invite-noresponse",
            ShareStatus::Accepted => "invite-accepted",
            ShareStatus::Declined => "invite-declined",
        };
        let access = if share.write { "read-write" } else { "read" };
        xml.push_str(&format!(
            "<CS:user><D:href>{}</D:href><CS:common-name>{}</CS:common-name><CS:{status}/><CS:access><CS:{access}/></CS:access></CS:user>",
            escape(&paths::user_principal(&share.sharee)),
            escape(&share.sharee)
        ));
    }
    PropValue::Xml(xml)
}

fn notification_xml(share: &Share, sharee_email: &str) -> String {
    let access = if share.write { "read-write" } else { "read" };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<CS:notification xmlns:D=\"DAV:\" xmlns:CS=\"http://calendarserver.org/ns/\"><CS:invite-notification shared-type=\"calendar\"><CS:uid>{uid}</CS:uid><D:href>mailto:{email}</D:href><CS:invite-noresponse/><CS:hosturl><D:href>{host}</D:href></CS:hosturl><CS:organizer><D:href>{organizer}</D:href><CS:common-name>{owner}</CS:common-name></CS:organizer><CS:access><CS:{access}/></CS:access><CS:summary>{summary}</CS:summary></CS:invite-notification></CS:notification>\n",
        uid = escape(&share.uid),
        email = escape(sharee_email),
        host = escape(&paths::collection(&share.owner, &share.calendar)),
        organizer = escape(&paths::user_principal(&share.owner)),
        owner = escape(&share.owner),
        summary = escape(&share.summary),
    )
}

async fn pending(state: &Arc<AppState>, caller: &Caller) -> Result<Vec<Share>, DavError> {
    let name = caller.user.name.clone();
    let shares = blocking(state, move |store| store.shares_for(&name)).await?;
    Ok(shares
        .into_iter()
        .filter(|s| s.status == ShareStatus::Pending)
        .collect())
}

/// PROPFIND on the notification collection or one notification.
pub(super) async fn propfind(
    state: &Arc<AppState>,
    caller: &Caller,
    owner: &str,
    object: Option<&str>,
) -> Result<Response, DavError> {
    if owner != caller.user.name {
        return Err(DavError::NotFound);
    }
    let base = paths::collection(owner, NOTIFICATION_COLLECTION);
    let invites = pending(state, caller).await?;
    let mut ms = Multistatus::new();
    let notification_props = |share: &Share| {
        vec![
            (
                PropName::new(NS_DAV, "resourcetype"),
                PropValue::Xml("<CS:notification/>".into()),
            ),
            (
                PropName::new(NS_DAV, "getetag"),
                PropValue::Text(format!("\"{}-{}\"", share.uid, u8::from(share.write))),
            ),
            (
                PropName::new(NS_DAV, "getcontenttype"),
                PropValue::Text("application/xml; charset=utf-8".into()),
            ),
            (
                PropName::new(NS_CALSERVER, "notificationtype"),
                PropValue::Xml("<CS:invite-notification shared-type=\"calendar\"/>".into()),
            ),
        ]
    };
    match object {
        None => {
            ms.response(
                &base,
                &[(
                    PropName::new(NS_DAV, "resourcetype"),
                    PropValue::Xml("<D:collection/><CS:notification/>".into()),
                )],
                &[],
            );
            for share in &invites {
                ms.response(
                    &format!("{base}{}.xml", share.uid),
                    &notification_props(share),
                    &[],
                );
            }
        }
        Some(name) => {
            let share = invites
                .iter()
                .find(|s| format!("{}.xml", s.uid) == name)
                .ok_or(DavError::NotFound)?;
            ms.response(&format!("{base}{name}"), &notification_props(share), &[]);
        }
    }
    Ok(xml_response(StatusCode::MULTI_STATUS, ms.finish()))
}

/// GET of one notification.
pub(super) async fn get(
    state: &Arc<AppState>,
    caller: &Caller,
    owner: &str,
    object: &str,
) -> Result<Response, DavError> {
    if owner != caller.user.name {
        return Err(DavError::NotFound);
    }
    let invites = pending(state, caller).await?;
    let share = invites
        .iter()
        .find(|s| format!("{}.xml", s.uid) == object)
        .ok_or(DavError::NotFound)?;
    let mut r = notification_xml(share, &caller.user.email).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    Ok(r)
}
