//! WebDAV request bodies: every parser a client body reaches (PROPFIND, PROPPATCH,
//! MKCALENDAR, REPORT). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serval_calendar::dav::request::{parse_mkcalendar, parse_propfind, parse_proppatch, parse_report};

fuzz_target!(|data: &[u8]| {
    let _ = parse_propfind(data);
    let _ = parse_proppatch(data);
    let _ = parse_mkcalendar(data);
    let _ = parse_report(data);
});
