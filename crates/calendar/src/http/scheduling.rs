//! RFC 6638 implicit scheduling, the driver: after a PUT or DELETE of a meeting, resolves
//! calendar user addresses through the directory, delivers iTIP messages to Serval users'
//! inboxes and calendars (rooms and resources answer by themselves: accepted when free,
//! declined on a conflict), queues them for everyone else (iMIP later, never claimed as
//! delivered), applies attendees' REPLYs to the organizer's copy, and records the outcome
//! as SCHEDULE-STATUS on each ATTENDEE of the organizer's copy.
//!
//! Runs on the blocking pool (store and directory are blocking). The iTIP text work is in
//! [`crate::schedule::itip`].

use super::objects::{floating_zone, index_text};
use super::{AppState, DavError};
use crate::ical::expand::{apply_floating_zone, expand, BusyStatus, MAX_EXPANSION_STEPS};
use crate::ical::{CalendarObject, ComponentKind, ParseLimits};
use crate::schedule::instances;
use crate::schedule::itip::{self, Meeting, ScheduleStatus};
use crate::schedule::lines::Document;
use crate::store::schedule::{NewItip, INBOX};
use crate::store::{Collection, NewObject, PutCondition, StoredObject};
use serval_core::directory::{PrincipalKind, User};
use serval_core::Directory;
use sha2::{Digest, Sha256};

/// Name of the calendar created for a user who has none when an invitation arrives
/// (the same one a first PROPFIND of the home creates).
pub(crate) const DEFAULT_CALENDAR: &str = "calendar";

/// Calendar user addresses of a user (calendar-user-address-set): the e-mail address as
/// `mailto:`, then the principal URL.
pub(crate) fn addresses_of(user: &User) -> Vec<String> {
    let mut addresses = Vec::new();
    if !user.email.is_empty() {
        addresses.push(format!("mailto:{}", user.email));
    }
    addresses.push(crate::paths::user_principal(&user.name));
    addresses
}

pub(crate) fn is_address_of(user: &User, address: &str) -> bool {
    let normalized = itip::normalize_address(address);
    if normalized.starts_with("mailto:") {
        !user.email.is_empty() && itip::same_address(&normalized, &format!("mailto:{}", user.email))
    } else {
        crate::paths::principal_from_href(address).as_deref() == Some(user.name.as_str())
    }
}

/// Where a calendar user address leads.
pub(crate) enum Recipient {
    Local(User),
    /// A mail address outside Serval: iMIP.
    External(String),
    Invalid,
}

pub(crate) fn resolve(directory: &Directory, address: &str) -> Recipient {
    let normalized = itip::normalize_address(address);
    if let Some(email) = normalized.strip_prefix("mailto:") {
        if let Ok(Some(user)) = directory.user_by_email(email) {
            return Recipient::Local(user);
        }
        return if is_mail_address(email) {
            Recipient::External(normalized.clone())
        } else {
            Recipient::Invalid
        };
    }
    match crate::paths::principal_from_href(address).filter(|n| !n.starts_with("group:")) {
        Some(name) => match directory.user(&name) {
            Ok(Some(user)) => Recipient::Local(user),
            _ => Recipient::Invalid,
        },
        None => Recipient::Invalid,
    }
}

/// Enough of RFC 5322 to tell a mail address from a typo: `local@domain.tld`.
fn is_mail_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address.contains(char::is_whitespace)
        && address.matches('@').count() == 1
}

/// Everything a scheduling run needs from the service.
pub(crate) struct Scheduler<'a> {
    pub state: &'a AppState,
    pub now: i64,
}

impl Scheduler<'_> {
    /// Runs implicit scheduling after `owner`'s object at `href` in `collection` changed
    /// from `old` to `new` (`None`: absent). Returns the new ETag when the owner's copy was
    /// rewritten (SCHEDULE-STATUS, a room's answer), so the PUT must not return the ETag
    /// of what the client sent.
    pub fn after_write(
        &self,
        owner: &str,
        collection: &Collection,
        href: &str,
        old: Option<&str>,
        new: Option<&str>,
    ) -> Result<Option<String>, DavError> {
        if owner.starts_with("group:")
            || collection.shared_from.is_some()
            || collection.name == INBOX
        {
            return Ok(None);
        }
        // Fast path for the common case (and the PUT benchmark): no ORGANIZER, no meeting.
        let may_schedule = |text: Option<&str>| {
            text.is_some_and(|t| {
                t.as_bytes()
                    .windows(b"ORGANIZER".len())
                    .any(|w| w.eq_ignore_ascii_case(b"ORGANIZER"))
            })
        };
        if !may_schedule(old) && !may_schedule(new) {
            return Ok(None);
        }
        let old_doc = old.and_then(|t| Document::parse(t).ok());
        let new_doc = new.and_then(|t| Document::parse(t).ok());
        let Some(meeting) = new_doc
            .as_ref()
            .and_then(Meeting::of)
            .or_else(|| old_doc.as_ref().and_then(Meeting::of))
        else {
            return Ok(None);
        };
        let Some(owner_user) = self.state.directory.user(owner).ok().flatten() else {
            return Ok(None);
        };
        if is_address_of(&owner_user, &meeting.organizer) {
            self.as_organizer(
                &owner_user,
                collection,
                href,
                old_doc.as_ref(),
                new_doc.as_ref(),
            )
        } else {
            self.as_attendee(&owner_user, &meeting, old_doc.as_ref(), new_doc.as_ref())?;
            if let (Some(text), Some(doc)) = (new, new_doc.as_ref()) {
                self.free_if_declined(&owner_user, collection, href, text, doc)?;
            }
            Ok(None)
        }
    }

    fn as_organizer(
        &self,
        organizer: &User,
        collection: &Collection,
        href: &str,
        old: Option<&Document>,
        new: Option<&Document>,
    ) -> Result<Option<String>, DavError> {
        let attendees_of = |doc: Option<&Document>| {
            doc.and_then(Meeting::of)
                .map(|m| m.server_scheduled_attendees())
                .unwrap_or_default()
        };
        let (before, after) = (attendees_of(old), attendees_of(new));
        if let Some(old) = old {
            for removed in before.difference(&after) {
                if let Some(cancel) = itip::cancel_for(old, removed) {
                    self.send(organizer, removed, &cancel, "CANCEL")?;
                }
            }
        }
        let Some(new) = new else { return Ok(None) };
        if old.is_some_and(|old| before == after && itip::same_for_attendees(old, new)) {
            return Ok(None);
        }
        // Instances cancelled for attendees who stay: a CANCEL naming them (RFC 5546
        // §3.2.5), and no REQUEST as well when that is all that changed for them.
        let mut told_by_cancel = std::collections::BTreeSet::new();
        if let Some(old) = old {
            for attendee in before.intersection(&after) {
                let ids = instances::cancelled_for(old, new, attendee);
                let Some(cancel) = instances::cancel_instances(old, attendee, &ids) else {
                    continue;
                };
                self.send(organizer, attendee, &cancel, "CANCEL")?;
                let views = (
                    itip::request_for(old, attendee),
                    itip::request_for(new, attendee),
                );
                if let (Some(before_view), Some(after_view)) = views {
                    if instances::only_cancels(&before_view, &after_view, &ids) {
                        told_by_cancel.insert(attendee.clone());
                    }
                }
            }
        }
        let mut updated = new.clone();
        let mut changed = false;
        for attendee in after.difference(&told_by_cancel) {
            let Some(request) = itip::request_for(new, attendee) else {
                continue;
            };
            let (status, answer) = self.send(organizer, attendee, &request, "REQUEST")?;
            changed |= itip::set_schedule_status(&mut updated, attendee, status);
            if let Some(answer) = answer {
                changed |= itip::apply_reply(&mut updated, &answer, attendee);
            }
        }
        if !changed {
            return Ok(None);
        }
        self.rewrite(collection, href, &updated.to_text())
    }

    fn as_attendee(
        &self,
        attendee: &User,
        meeting: &Meeting,
        old: Option<&Document>,
        new: Option<&Document>,
    ) -> Result<(), DavError> {
        if meeting.organizer_client_scheduled {
            return Ok(());
        }
        let is_me = |a: &str| is_address_of(attendee, a);
        let Some(me) = meeting.attendee_address(&is_me) else {
            return Ok(());
        };
        let client_scheduled = meeting
            .occurrences
            .iter()
            .flat_map(|o| &o.attendees)
            .any(|a| is_me(&a.address) && a.client_scheduled);
        if client_scheduled {
            return Ok(());
        }
        let reply = match (old, new) {
            (_, Some(new)) => {
                let before = old
                    .and_then(Meeting::of)
                    .map(|m| m.partstats_of(&is_me))
                    .unwrap_or_default();
                let after = Meeting::of(new).map(|m| m.partstats_of(&is_me));
                if after.as_ref() == Some(&before) {
                    return Ok(());
                }
                itip::reply_from(new, &me)
            }
            // Deleting an invitation declines it (RFC 6638 §3.2.2.3).
            (Some(old), None) => {
                let mut declined = old.clone();
                itip::set_partstat(&mut declined, &me, "DECLINED");
                itip::reply_from(&declined, &me)
            }
            (None, None) => None,
        };
        let Some(reply) = reply else { return Ok(()) };
        self.send(attendee, &meeting.organizer, &reply, "REPLY")?;
        Ok(())
    }

    /// Sends one iTIP message from `sender` to `address`; returns its SCHEDULE-STATUS and,
    /// for a room or resource, its automatic REPLY.
    fn send(
        &self,
        sender: &User,
        address: &str,
        message: &Document,
        method: &str,
    ) -> Result<(ScheduleStatus, Option<Document>), DavError> {
        match resolve(&self.state.directory, address) {
            Recipient::Invalid => Ok((ScheduleStatus::InvalidCalendarUser, None)),
            Recipient::External(recipient) => {
                let uid = Meeting::of(message).map(|m| m.uid).unwrap_or_default();
                self.state.store.queue_itip(
                    &NewItip {
                        sender: &sender.name,
                        recipient: &recipient,
                        method,
                        uid: &uid,
                        message: &message.to_text(),
                    },
                    self.now,
                )?;
                tracing::info!(sender = %sender.name, %method, "iTIP message queued for iMIP");
                Ok((ScheduleStatus::Pending, None))
            }
            Recipient::Local(user) => self.deliver(&user, message, method),
        }
    }

    fn deliver(
        &self,
        user: &User,
        message: &Document,
        method: &str,
    ) -> Result<(ScheduleStatus, Option<Document>), DavError> {
        let Some(meeting) = Meeting::of(message) else {
            return Ok((ScheduleStatus::InvalidCalendarUser, None));
        };
        let kind = ComponentKind::from_name(&meeting.component).unwrap_or(ComponentKind::Event);
        let store = self.state.store.as_ref();
        let existing = store.object_by_uid(&user.name, &meeting.uid)?;
        let mut answer = None;
        match method {
            "CANCEL" => {
                if let Some((collection, object)) = &existing {
                    let ids = instances::cancelled_ids(message);
                    let mut copy = Document::parse(&object.data)
                        .map_err(|e| DavError::Internal(e.to_string()))?;
                    if !ids.is_empty() && instances::apply_cancel(&mut copy, &ids) {
                        let text = copy.to_text();
                        let mut object_now = self.index(collection, &text)?;
                        self.free_declined(user, collection, &text, &mut object_now);
                        store.put_object(
                            collection.id,
                            &object.meta.href,
                            &object_now,
                            &PutCondition::default(),
                            self.now,
                        )?;
                    } else {
                        store.delete_object(collection.id, &object.meta.href, None)?;
                    }
                }
            }
            "REPLY" => {
                if let Some((collection, object)) = &existing {
                    let mut copy = Document::parse(&object.data)
                        .map_err(|e| DavError::Internal(e.to_string()))?;
                    let replier = message
                        .lines
                        .iter()
                        .find(|l| l.name == "ATTENDEE")
                        .map(|l| l.value.clone())
                        .unwrap_or_default();
                    let mut changed = itip::apply_reply(&mut copy, message, &replier);
                    changed |=
                        itip::set_schedule_status(&mut copy, &replier, ScheduleStatus::Success);
                    if changed {
                        self.rewrite(collection, &object.meta.href, &copy.to_text())?;
                    }
                }
            }
            _ => {
                let mut copy = itip::calendar_copy(message);
                let (collection, href) = match &existing {
                    Some((collection, object)) => (collection.clone(), object.meta.href.clone()),
                    None => match self.default_calendar(&user.name, kind)? {
                        Some(collection) => {
                            let href = self.free_href(&collection, &meeting.uid)?;
                            (collection, href)
                        }
                        None => return Ok((ScheduleStatus::NoSchedulingSupport, None)),
                    },
                };
                let mut keep_copy = true;
                if user.kind != PrincipalKind::Person {
                    if let Some(me) = meeting.attendee_address(&|a| is_address_of(user, a)) {
                        let free = self.is_free(user, &copy, existing.as_ref().map(|(_, o)| o))?;
                        // A declined booking stays out of the resource's calendar, so it
                        // neither blocks later bookings nor shows in its free-busy.
                        keep_copy = free;
                        itip::set_partstat(
                            &mut copy,
                            &me,
                            if free { "ACCEPTED" } else { "DECLINED" },
                        );
                        answer = itip::reply_from(&copy, &me);
                        tracing::info!(room = %user.name, uid = %meeting.uid, free, "resource answered an invitation");
                    }
                }
                if keep_copy {
                    let text = copy.to_text();
                    let mut object = self.index(&collection, &text)?;
                    self.free_declined(user, &collection, &text, &mut object);
                    store.put_object(
                        collection.id,
                        &href,
                        &object,
                        &PutCondition::default(),
                        self.now,
                    )?;
                } else if existing.is_some() {
                    store.delete_object(collection.id, &href, None)?;
                }
            }
        }
        self.put_in_inbox(&user.name, &meeting.uid, kind, message)?;
        Ok((ScheduleStatus::Delivered, answer))
    }

    /// An attendee is not busy during the instances they declined (CalendarServer does the
    /// same): those indexed instances of their stored copy become free, the others stay
    /// busy. The text, hence the ETag, stays as the client wrote it.
    fn free_if_declined(
        &self,
        attendee: &User,
        collection: &Collection,
        href: &str,
        text: &str,
        doc: &Document,
    ) -> Result<(), DavError> {
        if !declined_any(attendee, doc) {
            return Ok(());
        }
        let mut object = self.index(collection, text)?;
        if !self.free_declined(attendee, collection, text, &mut object) {
            return Ok(());
        }
        let condition = PutCondition {
            if_match: Some(object.etag.clone()),
            if_none_match_any: false,
        };
        self.state
            .store
            .put_object(collection.id, href, &object, &condition, self.now)?;
        Ok(())
    }

    /// Marks free the indexed instances of `object` that come from a component in which
    /// `user` declined (the master's rule or one override). Returns whether any changed.
    fn free_declined(
        &self,
        user: &User,
        collection: &Collection,
        text: &str,
        object: &mut NewObject,
    ) -> bool {
        let Ok(doc) = Document::parse(text) else {
            return false;
        };
        if !declined_any(user, &doc) {
            return false;
        }
        // Root components in document order; calcard lists the root's children in the
        // same order, which is how an instance's `comp_id` is traced to its component.
        let declined_positions: Vec<bool> = doc
            .components()
            .into_iter()
            .map(|(_, span)| {
                doc.own_lines(span)
                    .into_iter()
                    .filter_map(|i| doc.lines.get(i))
                    .any(|l| {
                        l.name == "ATTENDEE"
                            && is_address_of(user, &l.value)
                            && l.param("PARTSTAT")
                                .is_some_and(|p| p.eq_ignore_ascii_case("DECLINED"))
                    })
            })
            .collect();
        let limits = ParseLimits {
            max_resource_bytes: usize::MAX,
            ..ParseLimits::default()
        };
        let Ok(parsed) = CalendarObject::parse(text, &limits) else {
            return false;
        };
        let Some(root) = parsed.ical.components.first() else {
            return false;
        };
        let declined_ids: Vec<u32> = root
            .component_ids
            .iter()
            .zip(&declined_positions)
            .filter(|(_, declined)| **declined)
            .map(|(id, _)| *id)
            .collect();
        let mut expansion = expand(&parsed.ical, MAX_EXPANSION_STEPS);
        if let Some(zone) = floating_zone(collection) {
            apply_floating_zone(&mut expansion, zone);
        }
        let mut declined_spans: Vec<(i64, i64)> = expansion
            .instances
            .iter()
            .filter(|i| declined_ids.contains(&i.comp_id))
            .map(|i| (i.start, i.end))
            .collect();
        let mut changed = false;
        for instance in &mut object.instances {
            if let Some(pos) = declined_spans
                .iter()
                .position(|span| *span == (instance.start, instance.end))
            {
                declined_spans.swap_remove(pos);
                if instance.busy != BusyStatus::Free {
                    instance.busy = BusyStatus::Free;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Whether the resource's calendars have no busy time overlapping the new meeting's
    /// busy instances (its own earlier copy of the meeting does not count).
    fn is_free(
        &self,
        resource: &User,
        copy: &Document,
        earlier: Option<&StoredObject>,
    ) -> Result<bool, DavError> {
        let store = self.state.store.as_ref();
        let collections: Vec<Collection> = store
            .collections(&resource.name)?
            .into_iter()
            .filter(|c| c.name != INBOX)
            .collect();
        let Some(first) = collections.first() else {
            return Ok(true);
        };
        let wanted = self.index(first, &copy.to_text())?;
        let busy: Vec<_> = wanted
            .instances
            .iter()
            .filter(|i| i.busy != BusyStatus::Free)
            .collect();
        let (Some(start), Some(end)) = (
            busy.iter().map(|i| i.start).min(),
            busy.iter().map(|i| i.end).max(),
        ) else {
            return Ok(true);
        };
        let ids: Vec<i64> = collections.iter().map(|c| c.id).collect();
        let range = crate::ical::expand::TimeRange::new(start, end);
        let (mut taken, _) = store.busy(&ids, range)?;
        if let Some(earlier) = earlier {
            for own in self.index(first, &earlier.data)?.instances {
                if let Some(pos) = taken
                    .iter()
                    .position(|p| p.start == own.start && p.end == own.end)
                {
                    taken.swap_remove(pos);
                }
            }
        }
        Ok(!busy
            .iter()
            .any(|i| taken.iter().any(|p| p.start < i.end && i.start < p.end)))
    }

    /// The calendar an invitation lands in: the user's `calendar` if it takes the
    /// component, else their first one that does; one is created for a user with none.
    fn default_calendar(
        &self,
        owner: &str,
        kind: ComponentKind,
    ) -> Result<Option<Collection>, DavError> {
        let store = self.state.store.as_ref();
        let calendars: Vec<Collection> = store
            .collections(owner)?
            .into_iter()
            .filter(|c| c.name != INBOX)
            .collect();
        if calendars.is_empty() {
            let props = vec![(
                crate::dav::request::PropName::new(crate::dav::xml::NS_DAV, "displayname"),
                "t:Calendar".to_owned(),
            )];
            store.create_collection(
                owner,
                DEFAULT_CALENDAR,
                &[ComponentKind::Event, ComponentKind::Todo],
                &props,
                self.now,
            )?;
            return Ok(store.collection(owner, DEFAULT_CALENDAR)?);
        }
        let accepting = |c: &&Collection| c.components.contains(&kind);
        Ok(calendars
            .iter()
            .filter(accepting)
            .find(|c| c.name == DEFAULT_CALENDAR)
            .or_else(|| calendars.iter().find(accepting))
            .cloned())
    }

    /// `UID.ics` when the UID makes a plain, unused name (what python caldav and Apple
    /// clients PUT to), else a hash of it.
    fn free_href(&self, collection: &Collection, uid: &str) -> Result<String, DavError> {
        let plain = uid.len() <= 200
            && !uid.is_empty()
            && uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
        let href = if plain {
            format!("{uid}.ics")
        } else {
            format!("{}.ics", hex::encode(Sha256::digest(uid.as_bytes())))
        };
        if self.state.store.object(collection.id, &href)?.is_none() {
            return Ok(href);
        }
        Ok(format!(
            "{}-{}.ics",
            hex::encode(Sha256::digest(uid.as_bytes())),
            self.now
        ))
    }

    /// Keeps the latest iTIP message per meeting in the user's inbox.
    fn put_in_inbox(
        &self,
        owner: &str,
        uid: &str,
        kind: ComponentKind,
        message: &Document,
    ) -> Result<(), DavError> {
        let store = self.state.store.as_ref();
        let inbox = match store.collection(owner, INBOX)? {
            Some(inbox) => inbox,
            None => {
                store.create_collection(
                    owner,
                    INBOX,
                    &[ComponentKind::Event, ComponentKind::Todo],
                    &[],
                    self.now,
                )?;
                store
                    .collection(owner, INBOX)?
                    .ok_or_else(|| DavError::Internal("inbox vanished".into()))?
            }
        };
        if let Some(href) = store.href_of_uid(inbox.id, uid)? {
            store.delete_object(inbox.id, &href, None)?;
        }
        let data = message.to_text();
        let digest = Sha256::digest(data.as_bytes());
        let object = NewObject {
            uid: uid.to_owned(),
            kind,
            etag: format!("\"{}\"", hex::encode(digest.get(..16).unwrap_or(&digest))),
            data,
            instances: Vec::new(),
            indexed_until: None,
        };
        let href = self.free_href(&inbox, uid)?;
        store.put_object(inbox.id, &href, &object, &PutCondition::default(), self.now)?;
        Ok(())
    }

    fn index(&self, collection: &Collection, text: &str) -> Result<NewObject, DavError> {
        let limits = ParseLimits {
            max_resource_bytes: self.state.config.max_resource_size,
            ..ParseLimits::default()
        };
        index_text(
            text.as_bytes().to_vec(),
            &limits,
            self.state.config.max_instances,
            self.now,
            floating_zone(collection),
        )
    }

    /// Stores the server's rewrite of an object; returns its new ETag.
    fn rewrite(
        &self,
        collection: &Collection,
        href: &str,
        text: &str,
    ) -> Result<Option<String>, DavError> {
        let object = self.index(collection, text)?;
        let outcome = self.state.store.put_object(
            collection.id,
            href,
            &object,
            &PutCondition::default(),
            self.now,
        )?;
        Ok(match outcome {
            crate::store::PutOutcome::Created { etag }
            | crate::store::PutOutcome::Updated { etag } => Some(etag),
            _ => None,
        })
    }
}

/// Creates the user's inbox if it does not exist yet (it is made on first use).
pub(crate) async fn ensure_inbox(
    state: &std::sync::Arc<AppState>,
    owner: &str,
) -> Result<(), DavError> {
    let owner = owner.to_owned();
    let now = super::now();
    super::blocking(state, move |store| {
        if store.collection(&owner, INBOX)?.is_none() {
            store.create_collection(
                &owner,
                INBOX,
                &[ComponentKind::Event, ComponentKind::Todo],
                &[],
                now,
            )?;
        }
        Ok(())
    })
    .await
}

/// Whether `user` declined the meeting or any instance of it.
fn declined_any(user: &User, doc: &Document) -> bool {
    Meeting::of(doc).is_some_and(|meeting| {
        meeting
            .partstats_of(&|a| is_address_of(user, a))
            .iter()
            .any(|(_, partstat)| partstat == "DECLINED")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_addresses_are_told_from_typos() {
        assert!(is_mail_address("zed@elsewhere.org"));
        assert!(!is_mail_address("zed"));
        assert!(!is_mail_address("zed@localhost"));
        assert!(!is_mail_address("a@b@c.org"));
        assert!(!is_mail_address("@c.org"));
    }
}
