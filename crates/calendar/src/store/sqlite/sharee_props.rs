//! [`ShareePropStore`] over SQLite: table `cal_sharee_prop`, whose rows cascade from the
//! share (`cal_share`), itself cascading from the calendar.

use super::SqliteCalendarStore;
use crate::dav::request::PropName;
use crate::store::sharee_props::ShareePropStore;
use crate::store::StoreError;
use rusqlite::params;

/// Calendar migration 5: the composite foreign key names `cal_share`'s primary key, so
/// removing a share (withdrawn, unsubscribed, or its calendar deleted) removes its rows.
pub(super) const MIGRATION: &str = r"
CREATE TABLE cal_sharee_prop (
    collection_id INTEGER NOT NULL,
    sharee TEXT NOT NULL,
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection_id, sharee, ns, name),
    FOREIGN KEY (collection_id, sharee) REFERENCES cal_share(collection_id, sharee) ON DELETE CASCADE
);
";

impl ShareePropStore for SqliteCalendarStore {
    fn sharee_props(
        &self,
        collection_id: i64,
        sharee: &str,
    ) -> Result<Vec<(PropName, String)>, StoreError> {
        Ok(self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT ns, name, value FROM cal_sharee_prop WHERE collection_id = ?1 AND sharee = ?2 ORDER BY ns, name",
            )?;
            let rows = stmt.query_map(params![collection_id, sharee], |r| {
                Ok((
                    PropName {
                        ns: r.get(0)?,
                        name: r.get(1)?,
                    },
                    r.get::<_, String>(2)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?)
    }

    fn set_sharee_props(
        &self,
        collection_id: i64,
        sharee: &str,
        updates: &[(PropName, Option<String>)],
    ) -> Result<bool, StoreError> {
        Ok(self.store.write(|tx| {
            // Checked in the same transaction so a share withdrawn meanwhile stores nothing
            // (rather than failing the foreign key).
            let shared: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM cal_share WHERE collection_id = ?1 AND sharee = ?2)",
                )?
                .query_row(params![collection_id, sharee], |r| r.get(0))?;
            if !shared {
                return Ok(false);
            }
            for (prop, value) in updates {
                match value {
                    Some(value) => tx.execute(
                        "INSERT INTO cal_sharee_prop (collection_id, sharee, ns, name, value) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (collection_id, sharee, ns, name) DO UPDATE SET value = excluded.value",
                        params![collection_id, sharee, prop.ns, prop.name, value],
                    )?,
                    None => tx.execute(
                        "DELETE FROM cal_sharee_prop WHERE collection_id = ?1 AND sharee = ?2 AND ns = ?3 AND name = ?4",
                        params![collection_id, sharee, prop.ns, prop.name],
                    )?,
                };
            }
            Ok(true)
        })?)
    }

    fn clear_sharee_props(&self, collection_id: i64, sharee: &str) -> Result<usize, StoreError> {
        Ok(self.store.write(|tx| {
            tx.execute(
                "DELETE FROM cal_sharee_prop WHERE collection_id = ?1 AND sharee = ?2",
                params![collection_id, sharee],
            )
        })?)
    }
}

#[cfg(test)]
mod tests {
    use crate::dav::request::PropName;
    use crate::dav::xml::NS_DAV;
    use crate::ical::ComponentKind;
    use crate::store::engines::{stores, Keep};
    use crate::store::CalendarStore;

    const APPLE: &str = "http://apple.com/ns/ical/";

    /// On each engine: ann's `work` shared with bob and carol, both accepted.
    fn setups() -> Vec<(Keep, Box<dyn CalendarStore>, i64)> {
        stores()
            .into_iter()
            .map(|(keep, store)| {
                let work = store
                    .create_collection("ann", "work", &[ComponentKind::Event], &[], 0)
                    .unwrap()
                    .unwrap();
                for sharee in ["bob", "carol"] {
                    store
                        .upsert_share(work.id, sharee, false, &format!("uid-{sharee}"), "Work", 0)
                        .unwrap();
                    store
                        .reply_share(sharee, &format!("uid-{sharee}"), true, "work")
                        .unwrap();
                }
                (keep, store, work.id)
            })
            .collect()
    }

    fn set(store: &dyn CalendarStore, id: i64, sharee: &str, value: &str) -> bool {
        store
            .set_sharee_props(
                id,
                sharee,
                &[
                    (
                        PropName::new(NS_DAV, "displayname"),
                        Some(format!("t:{value}")),
                    ),
                    (
                        PropName::new(APPLE, "calendar-color"),
                        Some("t:#FF0000".into()),
                    ),
                ],
            )
            .unwrap()
    }

    #[test]
    fn per_sharee_values_without_touching_the_calendar() {
        for (_keep, store, id) in setups() {
            let store = store.as_ref();
            let before = store.collection("ann", "work").unwrap().unwrap();
            assert!(set(store, id, "bob", "Bob's work"));
            let bob = store.sharee_props(id, "bob").unwrap();
            assert_eq!(bob.len(), 2);
            assert!(bob.contains(&(PropName::new(NS_DAV, "displayname"), "t:Bob's work".into())));
            assert!(store.sharee_props(id, "carol").unwrap().is_empty());
            let after = store.collection("ann", "work").unwrap().unwrap();
            assert_eq!(before, after, "owner's props and revision unchanged");

            // Setting again replaces; removing one leaves the other.
            assert!(set(store, id, "bob", "Renamed"));
            store
                .set_sharee_props(id, "bob", &[(PropName::new(APPLE, "calendar-color"), None)])
                .unwrap();
            assert_eq!(
                store.sharee_props(id, "bob").unwrap(),
                vec![(PropName::new(NS_DAV, "displayname"), "t:Renamed".into())]
            );
            assert_eq!(store.clear_sharee_props(id, "bob").unwrap(), 1);
            assert!(store.sharee_props(id, "bob").unwrap().is_empty());
        }
    }

    #[test]
    fn nothing_stored_without_a_share() {
        for (_keep, store, id) in setups() {
            assert!(!set(store.as_ref(), id, "dave", "x"));
            assert!(store.sharee_props(id, "dave").unwrap().is_empty());
        }
    }

    #[test]
    fn removing_the_share_or_the_calendar_drops_the_rows() {
        for (_keep, store, id) in setups() {
            let store = store.as_ref();
            assert!(set(store, id, "bob", "Bob's"));
            assert!(set(store, id, "carol", "Carol's"));
            assert!(store.remove_share(id, "bob").unwrap());
            assert!(store.sharee_props(id, "bob").unwrap().is_empty());
            // Shared again: starts clean.
            store
                .upsert_share(id, "bob", true, "uid-bob2", "Work", 1)
                .unwrap();
            assert!(store.sharee_props(id, "bob").unwrap().is_empty());
            assert_eq!(store.sharee_props(id, "carol").unwrap().len(), 2);

            store.delete_collection(id).unwrap();
            assert!(store.sharee_props(id, "carol").unwrap().is_empty());
            assert!(store.shares_for("carol").unwrap().is_empty());
        }
    }
}
