//! SMTP: the server session (sans-IO), the DATA reader, and the client used for relaying.

pub mod client;
pub mod data;
pub mod session;
