//! WebDAV/CalDAV wire formats: request bodies in, multistatus and error bodies out.
//! Pure: no I/O, no store.

pub mod request;
pub mod response;
pub mod xml;
