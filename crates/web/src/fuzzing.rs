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
