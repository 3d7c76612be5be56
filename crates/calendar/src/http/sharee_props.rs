//! Which PROPPATCH updates on a shared calendar mounted in a sharee's home are the
//! sharee's own (CalendarServer's per-sharee properties) and which go to the owner's
//! calendar, and how the sharee's values cover the owner's in PROPFIND. Pure functions;
//! `props::proppatch` applies the outcome to the store.
//!
//! Sync tokens and the ctag are not bumped by a sharee's own properties: they are not part
//! of the shared calendar, so the owner and other sharees have nothing to resync, and the
//! sharee's clients read the name and colour from each home PROPFIND anyway.

use crate::dav::request::PropName;
use crate::dav::xml::{NS_CALDAV, NS_DAV};

/// Apple's iCal namespace (calendar-color, calendar-order).
pub(crate) const NS_APPLE_ICAL: &str = "http://apple.com/ns/ical/";

/// View properties: how one user shows a calendar, kept per sharee. A read-only sharee
/// may set these. `schedule-calendar-transp` is a dead property here (free-busy does not
/// read it), kept per sharee as CalendarServer does since it says whether the calendar
/// blocks the *sharee's* time.
pub(crate) fn is_view_prop(name: &PropName) -> bool {
    name.is(NS_DAV, "displayname")
        || name.is(NS_APPLE_ICAL, "calendar-color")
        || name.is(NS_APPLE_ICAL, "calendar-order")
        || name.is(NS_CALDAV, "schedule-calendar-transp")
}

/// A PROPPATCH refused as a whole (RFC 4918 §9.2: atomic): these names get 403, the
/// rest of the request 424.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    pub forbidden: Vec<PropName>,
    pub failed: Vec<PropName>,
}

/// A PROPPATCH to apply: to the sharee's own properties and to the owner's calendar
/// (value `None` removes).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split<V> {
    pub own: Vec<(PropName, Option<V>)>,
    pub owner: Vec<(PropName, Option<V>)>,
}

/// Splits the changes of a PROPPATCH on a calendar (value `None` removes). `mounted`:
/// it is a share mounted in the caller's home; `can_write`: the caller may change the
/// owner's calendar. Protected properties refuse the request as they always did; on a
/// mount view properties are the sharee's own and allowed with read access; anything
/// else needs write access.
pub(crate) fn split<V>(
    changes: Vec<(PropName, Option<V>)>,
    mounted: bool,
    can_write: bool,
    is_protected: impl Fn(&PropName) -> bool,
) -> Result<Split<V>, Refused> {
    let refuse = |bad: &dyn Fn(&PropName) -> bool| {
        let (forbidden, failed): (Vec<PropName>, Vec<PropName>) =
            changes.iter().map(|(n, _)| n.clone()).partition(|n| bad(n));
        Refused { forbidden, failed }
    };
    if changes.iter().any(|(n, _)| is_protected(n)) {
        return Err(refuse(&is_protected));
    }
    let own_prop = |n: &PropName| mounted && is_view_prop(n);
    if !can_write && changes.iter().any(|(n, _)| !own_prop(n)) {
        return Err(refuse(&|n| !own_prop(n)));
    }
    let (own, owner) = changes.into_iter().partition(|(n, _)| own_prop(n));
    Ok(Split { own, owner })
}

/// Puts the sharee's `own` values over the owner's `props` (the owner's stay where the
/// sharee set none).
pub(crate) fn overlay<V>(props: &mut Vec<(PropName, V)>, own: Vec<(PropName, V)>) {
    for (name, value) in own {
        match props.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => props.push((name, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ns: &str, name: &str) -> (PropName, Option<&'static str>) {
        (PropName::new(ns, name), Some("v"))
    }

    fn protected(n: &PropName) -> bool {
        n.is(NS_DAV, "resourcetype")
    }

    #[test]
    fn read_only_sharee_sets_view_properties_only() {
        let updates = [
            set(NS_DAV, "displayname"),
            set(NS_APPLE_ICAL, "calendar-color"),
        ];
        let split = split(updates.to_vec(), true, false, protected).unwrap();
        assert_eq!(split.own.len(), 2);
        assert!(split.owner.is_empty());

        let updates = [
            set(NS_DAV, "displayname"),
            set(NS_CALDAV, "calendar-description"),
        ];
        assert_eq!(
            super::split(updates.to_vec(), true, false, protected),
            Err(Refused {
                forbidden: vec![PropName::new(NS_CALDAV, "calendar-description")],
                failed: vec![PropName::new(NS_DAV, "displayname")],
            })
        );
    }

    #[test]
    fn read_write_sharee_splits_and_owner_keeps_everything() {
        let updates = [
            set(NS_APPLE_ICAL, "calendar-order"),
            (PropName::new(NS_CALDAV, "calendar-description"), None),
        ];
        let mounted = split(updates.to_vec(), true, true, protected).unwrap();
        assert_eq!(
            mounted.own,
            vec![(PropName::new(NS_APPLE_ICAL, "calendar-order"), Some("v"))]
        );
        assert_eq!(
            mounted.owner,
            vec![(PropName::new(NS_CALDAV, "calendar-description"), None)]
        );
        let owner = split(updates.to_vec(), false, true, protected).unwrap();
        assert!(owner.own.is_empty());
        assert_eq!(owner.owner.len(), 2);
    }

    #[test]
    fn protected_properties_refuse_the_request() {
        let updates = [set(NS_DAV, "resourcetype"), set(NS_DAV, "displayname")];
        let refused = split(updates.to_vec(), true, true, protected).unwrap_err();
        assert_eq!(
            refused.forbidden,
            vec![PropName::new(NS_DAV, "resourcetype")]
        );
        assert_eq!(refused.failed, vec![PropName::new(NS_DAV, "displayname")]);
    }

    #[test]
    fn overlay_replaces_and_adds() {
        let mut props = vec![
            (PropName::new(NS_DAV, "displayname"), "Work"),
            (PropName::new(NS_CALDAV, "calendar-description"), "d"),
        ];
        overlay(
            &mut props,
            vec![
                (PropName::new(NS_DAV, "displayname"), "Ann's work"),
                (PropName::new(NS_APPLE_ICAL, "calendar-color"), "#00FF00"),
            ],
        );
        assert_eq!(
            props,
            vec![
                (PropName::new(NS_DAV, "displayname"), "Ann's work"),
                (PropName::new(NS_CALDAV, "calendar-description"), "d"),
                (PropName::new(NS_APPLE_ICAL, "calendar-color"), "#00FF00"),
            ]
        );
    }
}
