//! Bodies of the `cargo fuzz` targets in `fuzz/`, also run over seed inputs by the unit tests.

use crate::fastcgi::{parse_head, HeadParse};

/// Decodes a request path and a Host value; checks what the decoder promises.
pub fn request_path(text: &str) {
    if let Ok(segments) = crate::files::segments(text) {
        for s in &segments {
            assert!(
                !s.is_empty() && s != "." && s != "..",
                "{text:?} gave segment {s:?}"
            );
            assert!(!s.contains('\0') && !s.contains('/') && !s.contains('\\'));
        }
    }
    let _ = crate::sites::host_name(text);
}

/// Parses a CGI answer head; a parsed head's body start lies inside the input.
pub fn fastcgi_head(data: &[u8]) {
    if let HeadParse::Done {
        status, body_start, ..
    } = parse_head(data)
    {
        assert!(body_start <= data.len());
        assert!((100..600).contains(&status));
    }
}

/// Decodes answer records fed in two pieces; every record taken shrinks the buffer, and
/// decoding stops at the first error.
pub fn fastcgi_records(data: &[u8]) {
    use crate::fastcgi_wire::{next_record, Record};
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut buf = bytes::BytesMut::new();
    for piece in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match next_record(&mut buf) {
                Ok(Some(record)) => {
                    assert!(buf.len() + 8 <= before, "a record must consume its header");
                    if let Record::Stdout(b) | Record::Stderr(b) = record {
                        assert!(b.len() <= 65535);
                    }
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before);
                    break;
                }
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_bodies_hold_over_seeds_and_their_mutations() {
        let paths = [
            "/",
            "/a/../b",
            "/%2e%2e/x",
            "/%00",
            "/a//b/./c",
            "/\u{e9}t\u{e9}/%C3%A9",
            "/..",
            "[::1]:80",
            "host.test.:8080",
            "/%ff",
        ];
        let heads: [&[u8]; 5] = [
            b"Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nbody",
            b"Location: /x\n\n",
            b"X: y\r\n\r\n",
            b"Status: 99\r\n\r\n",
            b"\r\n\r\n",
        ];
        for seed in paths {
            request_path(seed);
            let bytes = seed.as_bytes();
            for cut in 0..=bytes.len() {
                if let Ok(s) = std::str::from_utf8(&bytes[..cut]) {
                    request_path(s);
                }
            }
        }
        let records: [&[u8]; 3] = [
            b"\x01\x06\x00\x01\x00\x05\x03\x00hello\x00\x00\x00\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\x01\x0a\x00\x00\x00\x00\x00\x00\x01\x07\x00\x01\x00\x01\x00\x00x",
            b"\x02\x06\x00\x01",
        ];
        for seed in records {
            for cut in 0..=seed.len() {
                let mut v = vec![u8::try_from(cut).unwrap_or(0)];
                v.extend_from_slice(seed);
                fastcgi_records(&v);
                let i = cut.min(v.len() - 1);
                v[i] ^= 0x11;
                fastcgi_records(&v);
            }
        }
        for seed in heads {
            for cut in 0..=seed.len() {
                fastcgi_head(&seed[..cut]);
                let mut flipped = seed.to_vec();
                if cut < flipped.len() {
                    flipped[cut] ^= 0x20;
                }
                fastcgi_head(&flipped);
            }
        }
    }
}
