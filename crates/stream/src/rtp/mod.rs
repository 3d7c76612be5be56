//! RTP and RTCP on the wire (RFC 3550): the 12-byte header we put in front of each payload,
//! the RTCP we send (SR, SDES CNAME, BYE) and the receiver reports we read.
//!
//! No I/O: callers hand in buffers, `Instant`s and the wall clock.

pub mod header;
pub mod rtcp;
