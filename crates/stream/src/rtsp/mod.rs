//! The RTSP 1.0 protocol core (RFC 2326), free of tokio and of the clock: framing of the
//! connection's byte stream, header grammars, the session state machine and the request
//! handlers. The tokio driver in `net` feeds it bytes and time.

pub mod error;
pub mod framing;
pub mod handler;
pub mod range;
pub mod session;
pub mod transport;

#[cfg(test)]
mod tests;
