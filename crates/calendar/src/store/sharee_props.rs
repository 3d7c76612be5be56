//! Per-sharee view properties of shared calendars (CalendarServer keeps these per sharee):
//! the name, colour, order and transparency a sharee gives the calendar mounted in their
//! home, stored apart from the owner's properties so nobody else sees them.
//!
//! Rows belong to a share, keyed by (calendar id, sharee): withdrawing the share, the
//! sharee unsubscribing, or deleting the calendar drops them.

use super::StoreError;
use crate::dav::request::PropName;

pub trait ShareePropStore {
    /// The view properties `sharee` set on calendar `collection_id` (value stored as the
    /// calendar's own properties are: `t:TEXT` or `x:XML`), sorted by namespace and name.
    fn sharee_props(
        &self,
        collection_id: i64,
        sharee: &str,
    ) -> Result<Vec<(PropName, String)>, StoreError>;
    /// Sets (`Some`) or removes (`None`) view properties of `sharee`'s mount of
    /// `collection_id`. Does not bump the calendar's revision: only this sharee sees them.
    /// Without a share of the calendar with `sharee` nothing is stored and `false` returns.
    fn set_sharee_props(
        &self,
        collection_id: i64,
        sharee: &str,
        updates: &[(PropName, Option<String>)],
    ) -> Result<bool, StoreError>;
    /// Removes every view property `sharee` set on `collection_id`; returns how many.
    fn clear_sharee_props(&self, collection_id: i64, sharee: &str) -> Result<usize, StoreError>;
}
