//! Small static files answered straight from the event loop: one `read` of a file the page
//! cache almost always holds, no hop to the blocking pool (which cost more than the file in
//! measurements: futex wake-ups on every request). Larger files go to tower-http's
//! `ServeFile`, which streams them. Handles what ServeFile would: HEAD, one byte range,
//! If-Modified-Since, If-Range, Last-Modified, the MIME type.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use std::path::Path;
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

/// Answers GET or HEAD for a file of at most [`SMALL_FILE`] bytes. `etag` was already
/// compared with If-None-Match by the caller.
pub fn respond(
    path: &Path,
    meta: &std::fs::Metadata,
    headers: &HeaderMap,
    head: bool,
    etag: &str,
) -> std::io::Result<Response<Body>> {
    let len = meta.len();
    let modified = meta
        .modified()
        .ok()
        .map(|m| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds(m)));
    let last_modified = modified.map(httpdate::fmt_http_date);
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut response = Response::new(Body::empty());
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(v) = last_modified
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        h.insert(header::LAST_MODIFIED, v);
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
        let still = if_range == etag || last_modified.as_deref() == Some(if_range);
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
        // The size is known from the stat: one read, no second stat as fs::read would do.
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(path)?, len),
            &mut bytes,
        )?;
        let (s, e) = (
            usize::try_from(start).unwrap_or(0),
            usize::try_from(end + 1).unwrap_or(0),
        );
        // The file may have changed size since the stat: send what is there now.
        let slice = bytes.get(s..e.min(bytes.len())).unwrap_or(&[]).to_vec();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(slice.len()));
        *response.body_mut() = Body::from(slice);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = respond(&path, &meta, &headers, false, &etag).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/css");
        assert_eq!(r.headers()["content-length"], "10");
        let lm = r.headers()["last-modified"].clone();
        headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
        assert_eq!(
            respond(&path, &meta, &headers, false, &etag)
                .unwrap()
                .status(),
            304
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=2-4"));
        let r = respond(&path, &meta, &headers, false, &etag).unwrap();
        assert_eq!(
            (r.status(), r.headers()["content-range"].to_str().unwrap()),
            (StatusCode::PARTIAL_CONTENT, "bytes 2-4/10")
        );
        headers.insert(header::IF_RANGE, HeaderValue::from_static("\"stale\""));
        assert_eq!(
            respond(&path, &meta, &headers, false, &etag)
                .unwrap()
                .status(),
            200
        );
        headers.insert(header::IF_RANGE, HeaderValue::from_str(&etag).unwrap());
        assert_eq!(
            respond(&path, &meta, &headers, false, &etag)
                .unwrap()
                .status(),
            206
        );
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=20-"));
        assert_eq!(
            respond(&path, &meta, &headers, false, &etag)
                .unwrap()
                .status(),
            416
        );
        let head = respond(&path, &meta, &HeaderMap::new(), true, &etag).unwrap();
        assert_eq!(head.headers()["content-length"], "10");
    }
}
