//! The per-collection change log behind sync tokens and ctags (RFC 6578): appending a
//! change, and pruning what no sync needs any more.

use rusqlite::{params, Transaction};

/// Bumps the collection revision and logs `href` as changed at it.
pub(super) fn log_change(
    tx: &Transaction<'_>,
    collection_id: i64,
    href: &str,
    deleted: bool,
) -> rusqlite::Result<i64> {
    let revision: i64 = tx.query_row(
        "UPDATE cal_collection SET revision = revision + 1 WHERE id = ?1 RETURNING revision",
        [collection_id],
        |r| r.get(0),
    )?;
    if !href.is_empty() {
        tx.execute(
            // The store's own clock stamps the row: the time only ages the log (see
            // `prune_changes`), it never reaches a client.
            "INSERT INTO cal_change (collection_id, revision, href, deleted, changed_at) VALUES (?1, ?2, ?3, ?4, unixepoch())",
            params![collection_id, revision, href, deleted],
        )?;
    }
    Ok(revision)
}

/// Drops rows logged before `before` that no sync needs, and records per collection the
/// newest revision dropped (tokens before it are refused from then on).
pub(super) fn prune(tx: &Transaction<'_>, before: i64) -> rusqlite::Result<usize> {
    // A row can go when it is older than `before` and says nothing a sync still
    // needs: a deletion, or a change superseded by a later one for the same href.
    // The latest change of a live object stays, so an initial sync lists it.
    const PRUNABLE: &str = "c.changed_at < ?1 AND (c.deleted OR EXISTS (
        SELECT 1 FROM cal_change later WHERE later.collection_id = c.collection_id
          AND later.href = c.href AND later.revision > c.revision))";
    tx.execute(
        &format!(
            "UPDATE cal_collection SET pruned_through = max(pruned_through, coalesce(
               (SELECT max(c.revision) FROM cal_change c
                WHERE c.collection_id = cal_collection.id AND {PRUNABLE}), 0))"
        ),
        [before],
    )?;
    let removed = tx.execute(
        &format!(
            "DELETE FROM cal_change WHERE rowid IN (SELECT c.rowid FROM cal_change c WHERE {PRUNABLE})"
        ),
        [before],
    )?;
    Ok(removed)
}
