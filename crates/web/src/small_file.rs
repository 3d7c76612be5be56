//! Small static files answered straight from the event loop: one `read` of a file the page
//! cache almost always holds, no hop to the blocking pool (which cost more than the file in
//! measurements: futex wake-ups on every request). Larger files go to tower-http's
//! `ServeFile`, which streams them. Handles what ServeFile would: HEAD, one byte range,
//! If-Modified-Since, If-Range, Last-Modified, the MIME type.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Files up to this size are read whole.
pub const SMALL_FILE: u64 = 256 * 1024;

/// A byte range request against a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable Range header: the whole file.
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// Nothing of the file is in the range: 416.
    Unsatisfiable,
}

/// Parses a Range header (RFC 9110 14.2). Several ranges are answered with the whole file,
/// which the RFC allows and which spares multipart bodies.
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        // The last `b` bytes.
        match b.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) if len > 0 => Some((len.saturating_sub(n), len - 1)),
            Ok(_) => return RangeRequest::Unsatisfiable,
            Err(_) => return RangeRequest::Whole,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return RangeRequest::Whole;
        };
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => e.min(len.saturating_sub(1)),
                _ => return RangeRequest::Whole,
            }
        };
        if start >= len {
            return RangeRequest::Unsatisfiable;
        }
        Some((start, end))
    };
    match range {
        Some((start, end)) => RangeRequest::Part { start, end },
        None => RangeRequest::Whole,
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a file's stat says about its contents: when any of it changes, the cached copy is
/// stale. The inode and ctime catch a file replaced by rename or rewritten within the same
/// second at the same size, and a chmod (which must not go on serving a file now unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A small file's bytes and the headers made from them once.
#[derive(Clone)]
struct Cached {
    stamp: Stamp,
    body: Bytes,
    mime: HeaderValue,
    last_modified: Option<HeaderValue>,
    modified: Option<SystemTime>,
}

/// Small files recently served, kept with their stat so that each request still stats the
/// file (the path checks run every time too) but skips open, read and close, and the MIME and
/// date formatting, while the file is unchanged. Bounded in bytes; when full it is emptied
/// and refilled by what is asked for next, which keeps it simple and a busy site's few pages
/// in it. nginx's `open_file_cache` caches descriptors, not contents, and is off by default.
pub struct FileCache {
    entries: Mutex<Entries>,
    limit: usize,
    /// Files changed more recently than this are served but not kept: file times advance
    /// in clock ticks, so a rewrite at the same size within the tick of the read would
    /// otherwise leave the old bytes cached (Git's "racy clean" problem).
    settle: Duration,
}

#[derive(Default)]
struct Entries {
    files: HashMap<PathBuf, Cached>,
    /// Sum of the cached bodies' lengths.
    bytes: usize,
}

impl FileCache {
    pub fn new(limit: usize) -> Self {
        Self::with_settle(limit, Duration::from_secs(2))
    }

    fn with_settle(limit: usize, settle: Duration) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            limit,
            settle,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the file's modification and change times are older than `settle`.
    fn settled(&self, stamp: &Stamp) -> bool {
        let old = |t: Option<SystemTime>| {
            t.and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age >= self.settle)
        };
        #[cfg(unix)]
        let changed = SystemTime::UNIX_EPOCH.checked_add(Duration::new(
            u64::try_from(stamp.changed.0).unwrap_or(0),
            u32::try_from(stamp.changed.1).unwrap_or(0),
        ));
        #[cfg(not(unix))]
        let changed = stamp.modified;
        old(stamp.modified) && old(changed)
    }

    fn get(&self, path: &Path, stamp: &Stamp) -> Option<Cached> {
        self.entries()
            .files
            .get(path)
            .filter(|c| c.stamp == *stamp)
            .cloned()
    }

    fn load(&self, path: &Path, meta: &std::fs::Metadata) -> std::io::Result<Cached> {
        let stamp = Stamp::of(meta);
        if let Some(hit) = self.get(path, &stamp) {
            return Ok(hit);
        }
        let len = meta.len();
        // The size is known from the stat: one read, no second stat as fs::read would do.
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(path)?, len),
            &mut bytes,
        )?;
        let modified = meta
            .modified()
            .ok()
            .map(|m| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds(m)));
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        let cached = Cached {
            // A file that changed size while it was read is served as read, but not kept.
            stamp: stamp.clone(),
            body: Bytes::from(bytes),
            mime: HeaderValue::from_str(mime.as_ref())
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            last_modified: modified
                .map(httpdate::fmt_http_date)
                .and_then(|l| HeaderValue::from_str(&l).ok()),
            modified,
        };
        let fits = cached.body.len() <= self.limit;
        if cached.body.len() as u64 == len && fits && self.settled(&cached.stamp) {
            let mut entries = self.entries();
            if entries.bytes + cached.body.len() > self.limit {
                *entries = Entries::default();
            }
            entries.bytes += cached.body.len();
            if let Some(old) = entries.files.insert(path.to_path_buf(), cached.clone()) {
                entries.bytes -= old.body.len();
            }
        }
        Ok(cached)
    }
}

/// Answers GET or HEAD for a file of at most [`SMALL_FILE`] bytes. `etag` was already
/// compared with If-None-Match by the caller.
pub fn respond(
    path: &Path,
    meta: &std::fs::Metadata,
    headers: &HeaderMap,
    head: bool,
    etag: &str,
    cache: &FileCache,
) -> std::io::Result<Response<Body>> {
    let file = cache.load(path, meta)?;
    let len = file.body.len() as u64;
    let modified = file.modified;
    let last_modified = file.last_modified.clone();
    let mut response = Response::new(Body::empty());
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, file.mime.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(v) = &last_modified {
        h.insert(header::LAST_MODIFIED, v.clone());
    }
    if !headers.contains_key(header::IF_NONE_MATCH) {
        let since = headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if let (Some(since), Some(modified)) = (since, modified) {
            if modified <= since {
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                return Ok(response);
            }
        }
    }
    let mut range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len))
        .unwrap_or(RangeRequest::Whole);
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let still = if_range == etag
            || last_modified.as_ref().and_then(|v| v.to_str().ok()) == Some(if_range);
        if !still {
            range = RangeRequest::Whole;
        }
    }
    let (start, end) = match range {
        RangeRequest::Whole => (0, len.saturating_sub(1)),
        RangeRequest::Part { start, end } => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            (start, end)
        }
        RangeRequest::Unsatisfiable => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if !head && count > 0 {
        let (s, e) = (
            usize::try_from(start).unwrap_or(0),
            usize::try_from(end + 1).unwrap_or(0),
        );
        *response.body_mut() = Body::from(file.body.slice(s..e.min(file.body.len())));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_files_follow_changes_and_the_cache_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.css");
        std::fs::write(&path, "one").unwrap();
        let cache = FileCache::with_settle(10, Duration::ZERO);
        let load = |cache: &FileCache| {
            let meta = std::fs::metadata(&path).unwrap();
            cache.load(&path, &meta).unwrap()
        };
        let first = load(&cache);
        assert_eq!(
            (&first.body[..], first.mime.to_str().unwrap()),
            (&b"one"[..], "text/css")
        );
        assert_eq!(cache.entries().bytes, 3);
        // Replaced by rename (a new inode), at the same size: the new bytes.
        let tmp = dir.path().join("a.tmp");
        std::fs::write(&tmp, "two").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(&load(&cache).body[..], b"two");
        // Grown in place.
        std::fs::write(&path, "three").unwrap();
        assert_eq!(&load(&cache).body[..], b"three");
        // Over the limit: emptied, then only what fits is kept.
        let big = dir.path().join("big.txt");
        std::fs::write(&big, "0123456789abc").unwrap();
        let meta = std::fs::metadata(&big).unwrap();
        assert_eq!(cache.load(&big, &meta).unwrap().body.len(), 13);
        assert!(cache.entries().bytes <= 10);
        // A file just written is served but not kept (its time may not have moved yet).
        let settling = FileCache::new(1000);
        let _ = load(&settling);
        assert_eq!(settling.entries().bytes, 0);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("bytes=0-4", 10),
            RangeRequest::Part { start: 0, end: 4 }
        );
        assert_eq!(
            parse_range("bytes=5-", 10),
            RangeRequest::Part { start: 5, end: 9 }
        );
        assert_eq!(
            parse_range("bytes=-3", 10),
            RangeRequest::Part { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range("bytes=-30", 10),
            RangeRequest::Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range("bytes=8-100", 10),
            RangeRequest::Part { start: 8, end: 9 }
        );
        assert_eq!(parse_range("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), RangeRequest::Whole);
        assert_eq!(parse_range("bytes=5-2", 10), RangeRequest::Whole);
        assert_eq!(parse_range("items=0-1", 10), RangeRequest::Whole);
        assert_eq!(parse_range("bytes=x-1", 10), RangeRequest::Whole);
    }

    #[test]
    fn conditional_and_partial_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.css");
        std::fs::write(&path, "0123456789").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let etag = crate::files::etag(&meta);
        let mut headers = HeaderMap::new();
        let r = respond(
            &path,
            &meta,
            &headers,
            false,
            &etag,
            &FileCache::new(1 << 20),
        )
        .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/css");
        assert_eq!(r.headers()["content-length"], "10");
        let lm = r.headers()["last-modified"].clone();
        headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
        assert_eq!(
            respond(
                &path,
                &meta,
                &headers,
                false,
                &etag,
                &FileCache::new(1 << 20)
            )
            .unwrap()
            .status(),
            304
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=2-4"));
        let r = respond(
            &path,
            &meta,
            &headers,
            false,
            &etag,
            &FileCache::new(1 << 20),
        )
        .unwrap();
        assert_eq!(
            (r.status(), r.headers()["content-range"].to_str().unwrap()),
            (StatusCode::PARTIAL_CONTENT, "bytes 2-4/10")
        );
        headers.insert(header::IF_RANGE, HeaderValue::from_static("\"stale\""));
        assert_eq!(
            respond(
                &path,
                &meta,
                &headers,
                false,
                &etag,
                &FileCache::new(1 << 20)
            )
            .unwrap()
            .status(),
            200
        );
        headers.insert(header::IF_RANGE, HeaderValue::from_str(&etag).unwrap());
        assert_eq!(
            respond(
                &path,
                &meta,
                &headers,
                false,
                &etag,
                &FileCache::new(1 << 20)
            )
            .unwrap()
            .status(),
            206
        );
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=20-"));
        assert_eq!(
            respond(
                &path,
                &meta,
                &headers,
                false,
                &etag,
                &FileCache::new(1 << 20)
            )
            .unwrap()
            .status(),
            416
        );
        let head = respond(
            &path,
            &meta,
            &HeaderMap::new(),
            true,
            &etag,
            &FileCache::new(1 << 20),
        )
        .unwrap();
        assert_eq!(head.headers()["content-length"], "10");
    }
}
