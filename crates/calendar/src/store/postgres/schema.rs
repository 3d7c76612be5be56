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
