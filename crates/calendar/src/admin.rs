//! Operator tools over the store: delegation, sharing, .ics import/export (for the CLI)
//! and the admin page panel listing calendars, sizes, delegates and shares.

use crate::http::index_text;
use crate::ical::{ComponentKind, ParseLimits};
use crate::store::{CalendarStore, PutCondition, PutOutcome, ShareStatus, StoreError};
use calcard::icalendar::{ICalendar, ICalendarComponent, ICalendarComponentType};
use calcard::{Entry, Parser};
use serval_core::html::escape;
use serval_core::Directory;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no user `{0}` in the directory")]
    NoSuchUser(String),
    #[error("no principal `{0}` (a user name, or group:NAME)")]
    NoSuchPrincipal(String),
    #[error("`{owner}` has no calendar `{calendar}`")]
    NoSuchCalendar { owner: String, calendar: String },
    #[error("not an iCalendar file: {0}")]
    NotICalendar(String),
    #[error("directory: {0}")]
    Directory(String),
}

/// What a delegate may do (CalendarServer's calendar-proxy-read / -write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegateLevel {
    Read,
    Write,
    Remove,
}

/// `serval calendar delegate OWNER DELEGATE --read|--write|--remove`.
pub fn delegate(
    cal: &dyn CalendarStore,
    directory: &Directory,
    owner: &str,
    delegate: &str,
    level: DelegateLevel,
) -> Result<(), AdminError> {
    if directory
        .user(owner)
        .map_err(|e| AdminError::Directory(e.to_string()))?
        .is_none()
    {
        return Err(AdminError::NoSuchUser(owner.to_owned()));
    }
    let exists = match delegate.strip_prefix("group:") {
        Some(group) => directory
            .group_exists(group)
            .map_err(|e| AdminError::Directory(e.to_string()))?,
        None => directory
            .user(delegate)
            .map_err(|e| AdminError::Directory(e.to_string()))?
            .is_some(),
    };
    if !exists || delegate == owner {
        return Err(AdminError::NoSuchPrincipal(delegate.to_owned()));
    }
    let current = cal.delegates(owner)?;
    for write in [false, true] {
        let mut list: Vec<String> = current
            .iter()
            .filter(|d| d.write == write && d.delegate != delegate)
            .map(|d| d.delegate.clone())
            .collect();
        if (level == DelegateLevel::Write && write) || (level == DelegateLevel::Read && !write) {
            list.push(delegate.to_owned());
        }
        cal.set_delegates(owner, write, &list)?;
    }
    Ok(())
}

/// What a sharee may do with a shared calendar (CalendarServer's read / read-write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareLevel {
    Read,
    Write,
    Remove,
}

/// `serval calendar share OWNER CALENDAR SHAREE --read|--write|--remove`: shares the
/// owner's calendar with a user, or with every current member of `group:NAME` (members
/// who join later are not added). Unlike a share made from a client, no invitation waits
/// for an answer: the operator's word counts as accepted and the calendar appears in the
/// sharee's home at once; a sharee who had already answered keeps that answer and only
/// the access changes. Returns the users whose access was set or removed.
pub fn share(
    cal: &dyn CalendarStore,
    directory: &Directory,
    owner: &str,
    calendar: &str,
    sharee: &str,
    level: ShareLevel,
) -> Result<Vec<String>, AdminError> {
    let directory_error =
        |e: serval_core::directory::DirectoryError| AdminError::Directory(e.to_string());
    if directory.user(owner).map_err(directory_error)?.is_none() {
        return Err(AdminError::NoSuchUser(owner.to_owned()));
    }
    let collection =
        cal.collection(owner, calendar)?
            .ok_or_else(|| AdminError::NoSuchCalendar {
                owner: owner.into(),
                calendar: calendar.into(),
            })?;
    let users: Vec<String> = match sharee.strip_prefix("group:") {
        Some(group) => {
            if !directory.group_exists(group).map_err(directory_error)? {
                return Err(AdminError::NoSuchPrincipal(sharee.to_owned()));
            }
            directory
                .group_members(group)
                .map_err(directory_error)?
                .into_iter()
                .filter(|member| member != owner)
                .collect()
        }
        None => {
            if sharee == owner || directory.user(sharee).map_err(directory_error)?.is_none() {
                return Err(AdminError::NoSuchPrincipal(sharee.to_owned()));
            }
            vec![sharee.to_owned()]
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for user in &users {
        match level {
            ShareLevel::Remove => {
                cal.remove_share(collection.id, user)?;
            }
            ShareLevel::Read | ShareLevel::Write => {
                let uid = crate::http::sharing::invitation_uid(collection.id, user, now);
                cal.upsert_share(
                    collection.id,
                    user,
                    level == ShareLevel::Write,
                    &uid,
                    &collection.name,
                    now,
                )?;
                // upsert keeps an earlier invitation (and its id); accept that one.
                let pending = cal
                    .shares_of(collection.id)?
                    .into_iter()
                    .find(|s| s.sharee == *user && s.status == ShareStatus::Pending);
                if let Some(pending) = pending {
                    let mount = crate::http::sharing::mount_name(&pending.uid);
                    cal.reply_share(user, &pending.uid, true, &mount)?;
                }
            }
        }
    }
    Ok(users)
}

/// Outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    /// (UID, reason) of objects that were not stored.
    pub rejected: Vec<(String, String)>,
}

/// Largest .ics file imported at once.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

/// `serval calendar import FILE.ics --user U --calendar C`: splits a calendar file into one
/// object per UID (overrides stay with their master; every VTIMEZONE goes with each) and
/// stores them, creating the calendar if needed. `progress(done, total)` after each object.
pub fn import_ics(
    cal: &dyn CalendarStore,
    owner: &str,
    calendar: &str,
    text: &str,
    now: i64,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportSummary, AdminError> {
    if text.len() > MAX_IMPORT_BYTES {
        return Err(AdminError::NotICalendar(format!(
            "{} bytes, the limit is {MAX_IMPORT_BYTES}",
            text.len()
        )));
    }
    let collection = match cal.collection(owner, calendar)? {
        Some(c) => c,
        None => cal
            .create_collection(
                owner,
                calendar,
                &[
                    ComponentKind::Event,
                    ComponentKind::Todo,
                    ComponentKind::Journal,
                ],
                &[],
                now,
            )?
            .ok_or_else(|| AdminError::NoSuchCalendar {
                owner: owner.into(),
                calendar: calendar.into(),
            })?,
    };
    let objects = split_by_uid(text)?;
    let total = objects.len();
    let mut summary = ImportSummary::default();
    let limits = ParseLimits {
        max_resource_bytes: MAX_IMPORT_BYTES,
        ..ParseLimits::default()
    };
    for (done, (uid, object_text)) in objects.into_iter().enumerate() {
        match index_text(
            object_text.into_bytes(),
            &limits,
            crate::CalendarConfig::default().max_instances,
            now,
            crate::http::floating_zone(&collection),
        ) {
            Ok(new) => {
                let href = format!("{}.ics", href_safe(&uid));
                match cal.put_object(collection.id, &href, &new, &PutCondition::default(), now)? {
                    PutOutcome::Created { .. } => summary.created += 1,
                    PutOutcome::Updated { .. } => summary.updated += 1,
                    PutOutcome::UidConflict { existing_href } => summary
                        .rejected
                        .push((uid, format!("UID already stored as {existing_href}"))),
                    PutOutcome::PreconditionFailed => {
                        summary.rejected.push((uid, "precondition failed".into()))
                    }
                }
            }
            Err(e) => summary.rejected.push((uid, e.to_string())),
        }
        progress(done + 1, total);
    }
    Ok(summary)
}

/// `serval calendar export --user U --calendar C`: one VCALENDAR with every object.
pub fn export_ics(
    cal: &dyn CalendarStore,
    owner: &str,
    calendar: &str,
) -> Result<String, AdminError> {
    let collection =
        cal.collection(owner, calendar)?
            .ok_or_else(|| AdminError::NoSuchCalendar {
                owner: owner.into(),
                calendar: calendar.into(),
            })?;
    let mut out =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Serval//CalDAV export//EN\r\n");
    let mut timezones = BTreeMap::new();
    let mut bodies = String::new();
    for (object, _) in cal.query(collection.id, None, None)? {
        let mut parser = Parser::new(&object.data);
        let Entry::ICalendar(ical) = parser.entry() else {
            continue;
        };
        let Some(root) = ical.components.first() else {
            continue;
        };
        for child in &root.component_ids {
            let Some(comp) = usize::try_from(*child)
                .ok()
                .and_then(|i| ical.components.get(i))
            else {
                continue;
            };
            let mut text = String::new();
            write_subtree(&ical, *child, &mut text, 0);
            if comp.component_type == ICalendarComponentType::VTimezone {
                let tzid = comp
                    .property(&calcard::icalendar::ICalendarProperty::Tzid)
                    .and_then(|e| e.values.first())
                    .and_then(|v| v.as_text())
                    .unwrap_or_default()
                    .to_owned();
                timezones.entry(tzid).or_insert(text);
            } else {
                bodies.push_str(&text);
            }
        }
    }
    for tz in timezones.values() {
        out.push_str(tz);
    }
    out.push_str(&bodies);
    out.push_str("END:VCALENDAR\r\n");
    Ok(out)
}

fn href_safe(uid: &str) -> String {
    let safe: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    if safe.is_empty() {
        "object".into()
    } else {
        safe
    }
}

/// Splits a calendar file into per-UID VCALENDAR texts (each with every VTIMEZONE).
pub fn split_by_uid(text: &str) -> Result<Vec<(String, String)>, AdminError> {
    let mut parser = Parser::new(text);
    let ical = match parser.entry() {
        Entry::ICalendar(ical) => ical,
        other => {
            return Err(AdminError::NotICalendar(
                format!("{other:?}").chars().take(100).collect(),
            ))
        }
    };
    let root = ical
        .components
        .first()
        .ok_or_else(|| AdminError::NotICalendar("empty".into()))?;
    let mut timezones = String::new();
    let mut by_uid: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for child in &root.component_ids {
        let Some(comp) = usize::try_from(*child)
            .ok()
            .and_then(|i| ical.components.get(i))
        else {
            continue;
        };
        let mut subtree = String::new();
        write_subtree(&ical, *child, &mut subtree, 0);
        if comp.component_type == ICalendarComponentType::VTimezone {
            timezones.push_str(&subtree);
            continue;
        }
        let uid = comp.uid().unwrap_or_default().to_owned();
        if !by_uid.contains_key(&uid) {
            order.push(uid.clone());
        }
        by_uid.entry(uid).or_default().push_str(&subtree);
    }
    Ok(order
        .into_iter()
        .map(|uid| {
            let body = by_uid.remove(&uid).unwrap_or_default();
            let text = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Serval//CalDAV import//EN\r\n{timezones}{body}END:VCALENDAR\r\n");
            (uid, text)
        })
        .collect())
}

/// Nesting written when copying components (VCALENDAR > VEVENT > VALARM is shallow).
const MAX_COPY_DEPTH: usize = 8;

fn write_subtree(ical: &ICalendar, comp_id: u32, out: &mut String, depth: usize) {
    let Some(comp): Option<&ICalendarComponent> = usize::try_from(comp_id)
        .ok()
        .and_then(|i| ical.components.get(i))
    else {
        return;
    };
    if depth > MAX_COPY_DEPTH {
        return;
    }
    let name = comp.component_type.as_str();
    out.push_str("BEGIN:");
    out.push_str(name);
    out.push_str("\r\n");
    for entry in &comp.entries {
        let _ = entry.write_to(out);
    }
    for child in &comp.component_ids {
        write_subtree(ical, *child, out, depth + 1);
    }
    out.push_str("END:");
    out.push_str(name);
    out.push_str("\r\n");
}

/// The admin page section: every user's calendars with object counts and delegates.
pub struct CalendarPanel {
    pub(crate) store: std::sync::Arc<dyn CalendarStore>,
    pub(crate) directory: Directory,
}

impl serval_core::service::AdminPanel for CalendarPanel {
    fn render(&self, csrf_field: &str, action_url: &str) -> String {
        let Ok(cal) = Ok::<_, StoreError>(self.store.as_ref()) else {
            return "<p>calendar store unavailable</p>".into();
        };
        let users = self.directory.list_users().unwrap_or_default();
        let mut html = String::from("<table><tr><th>User</th><th>Calendars (objects)</th><th>Read delegates</th><th>Write delegates</th></tr>");
        for user in &users {
            let calendars = cal.collections(&user.name).unwrap_or_default();
            let listed: Vec<String> = calendars
                .iter()
                .map(|c| {
                    let shares = cal.shares_of(c.id).unwrap_or_default();
                    let shared = if shares.is_empty() {
                        String::new()
                    } else {
                        let with: Vec<String> = shares
                            .iter()
                            .map(|s| {
                                format!(
                                    "{} {} {}",
                                    escape(&s.sharee),
                                    share_access(s.write),
                                    share_status(s.status)
                                )
                            })
                            .collect();
                        format!(", shared with {}", with.join("; "))
                    };
                    format!(
                        "{} ({}{shared})",
                        escape(&c.name),
                        cal.objects(c.id).map(|o| o.len()).unwrap_or(0)
                    )
                })
                .collect();
            let delegates = cal.delegates(&user.name).unwrap_or_default();
            let names = |write: bool| {
                delegates
                    .iter()
                    .filter(|d| d.write == write)
                    .map(|d| escape(&d.delegate))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&user.name),
                listed.join(", "),
                names(false),
                names(true)
            ));
        }
        html.push_str("</table>");
        // RFC 6638: invitations to people outside Serval wait here for the mail service.
        let queue = cal
            .itip_queue(crate::schedule::queue::ADMIN_ROWS)
            .unwrap_or_default();
        html.push_str(&crate::schedule::queue::html(&queue));
        html.push_str(&format!(
            "<form method=\"post\" action=\"{}\">{csrf_field}<label>Owner <input name=\"owner\"></label> <label>Delegate (user or group:NAME) <input name=\"delegate\"></label> <select name=\"level\"><option value=\"read\">read</option><option value=\"write\">write</option><option value=\"remove\">remove</option></select> <button>Set delegate</button></form>",
            escape(action_url)
        ));
        html.push_str(&format!(
            "<form method=\"post\" action=\"{}\">{csrf_field}<input type=\"hidden\" name=\"action\" value=\"share\"><label>Owner <input name=\"owner\"></label> <label>Calendar <input name=\"calendar\"></label> <label>Share with (user or group:NAME) <input name=\"sharee\"></label> <select name=\"level\"><option value=\"read\">read</option><option value=\"write\">read-write</option><option value=\"remove\">remove</option></select> <button>Share calendar</button></form>",
            escape(action_url)
        ));
        html
    }

    fn handle_action(&self, form: &[(String, String)]) -> Result<String, String> {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        if field("action") == "share" {
            let (owner, calendar, sharee) = (field("owner"), field("calendar"), field("sharee"));
            let level = match field("level").as_str() {
                "read" => ShareLevel::Read,
                "write" => ShareLevel::Write,
                "remove" => ShareLevel::Remove,
                other => return Err(format!("unknown level `{other}`")),
            };
            let users = share(
                self.store.as_ref(),
                &self.directory,
                &owner,
                &calendar,
                &sharee,
                level,
            )
            .map_err(|e| e.to_string())?;
            return Ok(format!(
                "{owner}/{calendar}: {} for {}",
                match level {
                    ShareLevel::Read => "read-only share",
                    ShareLevel::Write => "read-write share",
                    ShareLevel::Remove => "share removed",
                },
                if users.is_empty() {
                    "nobody".to_owned()
                } else {
                    users.join(", ")
                }
            ));
        }
        let (owner, delegate_name) = (field("owner"), field("delegate"));
        let level = match field("level").as_str() {
            "read" => DelegateLevel::Read,
            "write" => DelegateLevel::Write,
            "remove" => DelegateLevel::Remove,
            other => return Err(format!("unknown level `{other}`")),
        };
        delegate(
            self.store.as_ref(),
            &self.directory,
            &owner,
            &delegate_name,
            level,
        )
        .map_err(|e| e.to_string())?;
        Ok(format!(
            "{delegate_name} is now {} for {owner}",
            match level {
                DelegateLevel::Read => "a read delegate",
                DelegateLevel::Write => "a write delegate",
                DelegateLevel::Remove => "no longer a delegate",
            }
        ))
    }

    fn json(&self) -> serde_json::Value {
        let Ok(cal) = Ok::<_, StoreError>(self.store.as_ref()) else {
            return serde_json::Value::Null;
        };
        let users = self.directory.list_users().unwrap_or_default();
        let entries: Vec<serde_json::Value> = users
            .iter()
            .map(|u| {
                let calendars: Vec<serde_json::Value> = cal
                    .collections(&u.name)
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        let shares: Vec<serde_json::Value> = cal
                            .shares_of(c.id)
                            .unwrap_or_default()
                            .iter()
                            .map(|s| serde_json::json!({"sharee": s.sharee, "write": s.write, "status": share_status(s.status)}))
                            .collect();
                        serde_json::json!({"name": c.name, "objects": cal.objects(c.id).map(|o| o.len()).unwrap_or(0), "shares": shares})
                    })
                    .collect();
                let delegates: Vec<serde_json::Value> = cal
                    .delegates(&u.name)
                    .unwrap_or_default()
                    .iter()
                    .map(|d| serde_json::json!({"delegate": d.delegate, "write": d.write}))
                    .collect();
                serde_json::json!({"user": u.name, "calendars": calendars, "delegates": delegates})
            })
            .collect();
        let queue = cal
            .itip_queue(crate::schedule::queue::ADMIN_ROWS)
            .unwrap_or_default();
        serde_json::json!({ "users": entries, "itip_queue": crate::schedule::queue::json(&queue) })
    }
}

fn share_access(write: bool) -> &'static str {
    if write {
        "read-write"
    } else {
        "read"
    }
}

fn share_status(status: ShareStatus) -> &'static str {
    match status {
        ShareStatus::Pending => "pending",
        ShareStatus::Accepted => "accepted",
        ShareStatus::Declined => "declined",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_splits_by_uid_and_export_round_trips() {
        for (_keep, store) in crate::store::engines::stores() {
            let store = store.as_ref();
            let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Europe/Berlin:20260105T100000\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260106T100000\r\nDTSTART;TZID=Europe/Berlin:20260106T120000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
            let mut calls = 0;
            let summary = import_ics(store, "ann", "imported", text, 0, |_, _| calls += 1).unwrap();
            assert_eq!(
                (
                    summary.created,
                    summary.updated,
                    summary.rejected.len(),
                    calls
                ),
                (2, 0, 1, 3)
            );
            let exported = export_ics(store, "ann", "imported").unwrap();
            assert_eq!(exported.matches("BEGIN:VTIMEZONE").count(), 1);
            assert_eq!(exported.matches("BEGIN:VEVENT").count(), 3);
            let again = import_ics(store, "ann", "imported", &exported, 0, |_, _| {}).unwrap();
            assert_eq!((again.created, again.updated), (0, 2));
        }
    }

    #[test]
    fn panel_lists_shares_and_shares_through_its_form() {
        use serval_core::service::AdminPanel;
        let dir = tempfile::tempdir().unwrap();
        let store = serval_core::Store::open(&dir.path().join("s.db")).unwrap();
        let directory = Directory::new(
            store.clone(),
            &serval_core::config::DirectoryConfig::default(),
        );
        for name in ["ann", "bob"] {
            directory
                .add_user(&serval_core::directory::NewUser {
                    name,
                    password: None,
                    full_name: name,
                    email: "",
                    kind: None,
                })
                .unwrap();
        }
        let cal = std::sync::Arc::new(crate::store::SqliteCalendarStore::open(store).unwrap());
        cal.create_collection("ann", "work", &[ComponentKind::Event], &[], 0)
            .unwrap();
        let panel = CalendarPanel {
            store: cal,
            directory,
        };
        let form = |level: &str| {
            [
                ("action", "share"),
                ("owner", "ann"),
                ("calendar", "work"),
                ("sharee", "bob"),
                ("level", level),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        };
        assert_eq!(
            panel.handle_action(&form("write")),
            Ok("ann/work: read-write share for bob".to_owned())
        );
        assert!(panel
            .render("", "/admin")
            .contains("work (0, shared with bob read-write accepted)"));
        assert_eq!(
            panel.json()["users"][0]["calendars"][0]["shares"][0],
            serde_json::json!({"sharee": "bob", "write": true, "status": "accepted"})
        );
        panel.handle_action(&form("remove")).unwrap();
        assert!(panel.render("", "/admin").contains("work (0)"));
    }
}
