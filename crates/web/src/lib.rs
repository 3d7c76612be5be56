//! Web service for Serval: the office's sites (static files), PHP and other apps over FastCGI,
//! and a reverse proxy with WebSocket upgrade: the job of OS X Server's Apache + PHP, with the
//! language runtime in its own process so its ABI can never break the web server.
//!
//! Code map: [`config`] (the `[web]` table), [`sites`] (virtual hosts by Host header),
//! [`files`] (request path to file, safely: no escape from the root, dotfiles, symlinks),
//! [`fastcgi`] (pooled keep-alive FastCGI, CGI head parsing), [`proxy`] (reverse proxy),
//! `http` (the axum driver: redirects, realms, proxy, PHP, static, error pages, access log),
//! `service` (`bind`), `admin` (the admin page panel).
//!
//! **API boundary:** [`bind`], [`WebConfig`], [`WebError`].

pub mod acme;
mod admin;
pub mod apache;
pub mod bench;
pub mod config;
pub mod fastcgi;
pub mod fastcgi_wire;
pub mod files;
pub mod fuzzing;
mod http;
pub mod proxy;
mod service;
pub mod sites;
mod small_file;

pub use config::WebConfig;
pub use service::{bind, WebError};
