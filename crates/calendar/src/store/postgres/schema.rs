//! The calendar tables on PostgreSQL.

/// The SQLite migrations' schema, version for version.
pub(super) const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE cal_collection (
    id BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    components TEXT NOT NULL,
    revision BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (owner, name)
);
CREATE TABLE cal_prop (
    collection_id BIGINT NOT NULL REFERENCES cal_collection(id) ON DELETE CASCADE,
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection_id, ns, name)
);
CREATE TABLE cal_object (
    id BIGSERIAL PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES cal_collection(id) ON DELETE CASCADE,
    href TEXT NOT NULL,
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    etag TEXT NOT NULL,
    data TEXT NOT NULL,
    indexed_until BIGINT,
    modified_at BIGINT NOT NULL,
    UNIQUE (collection_id, href),
    UNIQUE (collection_id, uid)
);
CREATE TABLE cal_instance (
    object_id BIGINT NOT NULL REFERENCES cal_object(id) ON DELETE CASCADE,
    collection_id BIGINT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    busy BIGINT NOT NULL
);
CREATE INDEX cal_instance_range ON cal_instance (collection_id, starts_at);
CREATE INDEX cal_instance_object ON cal_instance (object_id);
CREATE INDEX cal_object_open ON cal_object (collection_id, indexed_until) WHERE indexed_until IS NOT NULL;
CREATE TABLE cal_change (
    collection_id BIGINT NOT NULL REFERENCES cal_collection(id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    href TEXT NOT NULL,
    deleted BOOLEAN NOT NULL,
    PRIMARY KEY (collection_id, revision)
);
CREATE INDEX cal_change_href ON cal_change (collection_id, href);
CREATE TABLE cal_delegate (
    owner TEXT NOT NULL,
    delegate TEXT NOT NULL,
    can_write BOOLEAN NOT NULL,
    PRIMARY KEY (owner, delegate)
);
CREATE INDEX cal_delegate_to ON cal_delegate (delegate);
",
    r"
CREATE TABLE cal_share (
    collection_id BIGINT NOT NULL REFERENCES cal_collection(id) ON DELETE CASCADE,
    sharee TEXT NOT NULL,
    can_write BOOLEAN NOT NULL,
    status BIGINT NOT NULL DEFAULT 0,
    uid TEXT NOT NULL,
    mount TEXT,
    summary TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (collection_id, sharee)
);
CREATE UNIQUE INDEX cal_share_uid ON cal_share (uid);
CREATE UNIQUE INDEX cal_share_mount ON cal_share (sharee, mount);
",
    r"
CREATE TABLE cal_itip_queue (
    id BIGSERIAL PRIMARY KEY,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    method TEXT NOT NULL,
    uid TEXT NOT NULL,
    message TEXT NOT NULL,
    queued_at BIGINT NOT NULL
);
",
    r"
ALTER TABLE cal_change ADD COLUMN changed_at BIGINT NOT NULL DEFAULT 0;
UPDATE cal_change SET changed_at = extract(epoch from now())::bigint;
ALTER TABLE cal_collection ADD COLUMN pruned_through BIGINT NOT NULL DEFAULT 0;
CREATE INDEX cal_change_time ON cal_change (changed_at);
",
    r"
CREATE TABLE cal_sharee_prop (
    collection_id BIGINT NOT NULL,
    sharee TEXT NOT NULL,
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection_id, sharee, ns, name),
    FOREIGN KEY (collection_id, sharee) REFERENCES cal_share(collection_id, sharee) ON DELETE CASCADE
);
",
];

use serval_core::store::copy::{Column, TableCopy};

/// The calendar tables, for `serval store migrate` (ids kept, sequences moved past them).
pub static COPY_TABLES: &[TableCopy] = &[
    TableCopy {
        name: "cal_collection",
        sqlite_select: "SELECT id, owner, name, components, revision, created_at, pruned_through FROM cal_collection ORDER BY id",
        pg_select: "SELECT id, owner, name, components, revision, created_at, pruned_through FROM cal_collection ORDER BY id",
        pg_insert: "INSERT INTO cal_collection (id, owner, name, components, revision, created_at, pruned_through) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        columns: &[Column::Int, Column::Text, Column::Text, Column::Text, Column::Int, Column::Int, Column::Int],
        after: &["SELECT setval('cal_collection_id_seq', GREATEST((SELECT max(id) FROM cal_collection), 1))"],
    },
    TableCopy {
        name: "cal_prop",
        sqlite_select: "SELECT collection_id, ns, name, value FROM cal_prop ORDER BY collection_id, ns, name",
        pg_select: "SELECT collection_id, ns, name, value FROM cal_prop ORDER BY collection_id, ns COLLATE \"C\", name COLLATE \"C\"",
        pg_insert: "INSERT INTO cal_prop (collection_id, ns, name, value) VALUES ($1, $2, $3, $4)",
        columns: &[Column::Int, Column::Text, Column::Text, Column::Text],
        after: &[],
    },
    TableCopy {
        name: "cal_object",
        sqlite_select: "SELECT id, collection_id, href, uid, kind, etag, data, indexed_until, modified_at FROM cal_object ORDER BY id",
        pg_select: "SELECT id, collection_id, href, uid, kind, etag, data, indexed_until, modified_at FROM cal_object ORDER BY id",
        pg_insert: "INSERT INTO cal_object (id, collection_id, href, uid, kind, etag, data, indexed_until, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        columns: &[Column::Int, Column::Int, Column::Text, Column::Text, Column::Text, Column::Text, Column::Text, Column::OptInt, Column::Int],
        after: &["SELECT setval('cal_object_id_seq', GREATEST((SELECT max(id) FROM cal_object), 1))"],
    },
    TableCopy {
        name: "cal_instance",
        sqlite_select: "SELECT object_id, collection_id, start, end, busy FROM cal_instance ORDER BY object_id, start, end, busy",
        pg_select: "SELECT object_id, collection_id, starts_at, ends_at, busy FROM cal_instance ORDER BY object_id, starts_at, ends_at, busy",
        pg_insert: "INSERT INTO cal_instance (object_id, collection_id, starts_at, ends_at, busy) VALUES ($1, $2, $3, $4, $5)",
        columns: &[Column::Int, Column::Int, Column::Int, Column::Int, Column::Int],
        after: &[],
    },
    TableCopy {
        name: "cal_change",
        sqlite_select: "SELECT collection_id, revision, href, deleted, changed_at FROM cal_change ORDER BY collection_id, revision",
        pg_select: "SELECT collection_id, revision, href, deleted, changed_at FROM cal_change ORDER BY collection_id, revision",
        pg_insert: "INSERT INTO cal_change (collection_id, revision, href, deleted, changed_at) VALUES ($1, $2, $3, $4, $5)",
        columns: &[Column::Int, Column::Int, Column::Text, Column::Bool, Column::Int],
        after: &[],
    },
    TableCopy {
        name: "cal_delegate",
        sqlite_select: "SELECT owner, delegate, write FROM cal_delegate ORDER BY owner, delegate",
        pg_select: "SELECT owner, delegate, can_write FROM cal_delegate ORDER BY owner COLLATE \"C\", delegate COLLATE \"C\"",
        pg_insert: "INSERT INTO cal_delegate (owner, delegate, can_write) VALUES ($1, $2, $3)",
        columns: &[Column::Text, Column::Text, Column::Bool],
        after: &[],
    },
    TableCopy {
        name: "cal_share",
        sqlite_select: "SELECT collection_id, sharee, write, status, uid, mount, summary, created_at FROM cal_share ORDER BY collection_id, sharee",
        pg_select: "SELECT collection_id, sharee, can_write, status, uid, mount, summary, created_at FROM cal_share ORDER BY collection_id, sharee COLLATE \"C\"",
        pg_insert: "INSERT INTO cal_share (collection_id, sharee, can_write, status, uid, mount, summary, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        columns: &[Column::Int, Column::Text, Column::Bool, Column::Int, Column::Text, Column::OptText, Column::Text, Column::Int],
        after: &[],
    },
    TableCopy {
        name: "cal_sharee_prop",
        sqlite_select: "SELECT collection_id, sharee, ns, name, value FROM cal_sharee_prop ORDER BY collection_id, sharee, ns, name",
        pg_select: "SELECT collection_id, sharee, ns, name, value FROM cal_sharee_prop ORDER BY collection_id, sharee COLLATE \"C\", ns COLLATE \"C\", name COLLATE \"C\"",
        pg_insert: "INSERT INTO cal_sharee_prop (collection_id, sharee, ns, name, value) VALUES ($1, $2, $3, $4, $5)",
        columns: &[Column::Int, Column::Text, Column::Text, Column::Text, Column::Text],
        after: &[],
    },
    TableCopy {
        name: "cal_itip_queue",
        sqlite_select: "SELECT id, sender, recipient, method, uid, message, queued_at FROM cal_itip_queue ORDER BY id",
        pg_select: "SELECT id, sender, recipient, method, uid, message, queued_at FROM cal_itip_queue ORDER BY id",
        pg_insert: "INSERT INTO cal_itip_queue (id, sender, recipient, method, uid, message, queued_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        columns: &[Column::Int, Column::Text, Column::Text, Column::Text, Column::Text, Column::Text, Column::Int],
        after: &["SELECT setval('cal_itip_queue_id_seq', GREATEST((SELECT max(id) FROM cal_itip_queue), 1))"],
    },
];
