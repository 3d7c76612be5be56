//! CGI answer heads from FastCGI apps (php-fpm): parsing must never panic, and a parsed head's
//! body start lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serval_web::fuzzing::fastcgi_head(data);
});
