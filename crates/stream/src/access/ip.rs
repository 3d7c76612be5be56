//! IP allow/deny lists: the shared CIDR blocks of `serval_core::cidr`.

pub use serval_core::cidr::{ip_permitted, Cidr, MAX_CIDR_BLOCKS};
