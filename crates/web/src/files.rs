//! Mapping a request path to a file under a site's root, safely.
//!
//! The path is percent-decoded and normalised here, before the file system sees it: `..`
//! cannot climb above the root, names starting with a dot are refused unless allowed
//! (`.well-known` excepted), and the final path is canonicalised so a symbolic link cannot
//! lead out of the root unless the site allows it. Serving the bytes (ranges, conditional
//! requests, MIME types) is tower-http's `ServeFile`.

use std::path::{Path, PathBuf};

/// What a request path names under a root.
// Returned once per request and matched at once, never stored: the File variant's size
// (its metadata) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// A regular file, with what follows a script name (`/index.php/extra` -> `/extra`).
    File {
        path: PathBuf,
        script_name: String,
        path_info: String,
        /// What the path check read of the file: serving it needs no second stat.
        meta: FileMeta,
    },
    /// A folder requested with its trailing slash.
    Folder(PathBuf),
    /// A folder requested without the slash: redirect to `location`.
    AddSlash { location: String },
    /// Nothing there (or refused without saying so: dotfiles, symlinks out of the root).
    NotFound,
    /// The path is malformed (bad escapes, NUL, climbing above the root).
    BadRequest(&'static str),
}

/// A file's metadata carried in a [`Target`]; equal to any other (targets compare by path).
#[derive(Clone)]
pub struct FileMeta(pub std::fs::Metadata);

impl PartialEq for FileMeta {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for FileMeta {}

impl std::fmt::Debug for FileMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileMeta({} bytes)", self.0.len())
    }
}

/// Rules of one site that decide what may be served.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub dotfiles: bool,
    pub follow_symlinks: bool,
    /// Stop at the first `*.php` file and pass the rest on as PATH_INFO.
    pub php: bool,
}

/// Decodes and normalises `url_path` into its segments.
pub fn segments(url_path: &str) -> Result<Vec<String>, &'static str> {
    if !url_path.starts_with('/') {
        return Err("the path must start with /");
    }
    let decoded = percent_encoding::percent_decode_str(url_path)
        .decode_utf8()
        .map_err(|_| "the path is not UTF-8 once decoded")?;
    if decoded.contains('\0') {
        return Err("the path contains NUL");
    }
    let mut out: Vec<String> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err("the path climbs above the site's root");
                }
            }
            s if s.contains('\\') => return Err("the path contains a backslash"),
            s => out.push(s.to_owned()),
        }
    }
    Ok(out)
}

/// Resolves `url_path` under `root` (already canonical).
pub fn resolve(root: &Path, url_path: &str, rules: Rules) -> Target {
    let segs = match segments(url_path) {
        Ok(s) => s,
        Err(why) => return Target::BadRequest(why),
    };
    if !rules.dotfiles
        && segs
            .iter()
            .enumerate()
            .any(|(i, s)| s.starts_with('.') && !(i == 0 && s == ".well-known"))
    {
        return Target::NotFound;
    }
    let mut path = root.to_path_buf();
    for (i, seg) in segs.iter().enumerate() {
        path.push(seg);
        let last = i + 1 == segs.len();
        if rules.php && !last && seg.ends_with(".php") {
            // `/app/index.php/users/7`: the script is the first .php file on the way.
            if let Some(Target::File { path, meta, .. }) = check(root, &path, rules) {
                let script_name = format!("/{}", segs[..=i].join("/"));
                let path_info = format!("/{}", segs[i + 1..].join("/"));
                return Target::File {
                    path,
                    script_name,
                    path_info,
                    meta,
                };
            }
        }
    }
    match check(root, &path, rules) {
        Some(Target::File { path, meta, .. }) => Target::File {
            path,
            script_name: format!("/{}", segs.join("/")),
            path_info: String::new(),
            meta,
        },
        Some(Target::Folder(folder)) => {
            if url_path.ends_with('/') {
                Target::Folder(folder)
            } else {
                Target::AddSlash {
                    location: format!("{url_path}/"),
                }
            }
        }
        _ => Target::NotFound,
    }
}

/// A file or folder at `path`, if it exists and stays inside `root` (or may leave it).
fn check(root: &Path, path: &Path, rules: Rules) -> Option<Target> {
    // One lstat per component below the (canonical) root; only when one is a symbolic link
    // does the whole path get resolved (realpath costs a readlink per component of the root
    // too, on every request).
    let rel = path.strip_prefix(root).ok()?;
    let mut current = root.to_path_buf();
    let mut last = None;
    for component in rel.components() {
        current.push(component);
        let meta = std::fs::symlink_metadata(&current).ok()?;
        if meta.file_type().is_symlink() {
            let real = std::fs::canonicalize(path).ok()?;
            if !rules.follow_symlinks && !real.starts_with(root) {
                tracing::debug!(path = %path.display(), "symbolic link out of the site root refused");
                return None;
            }
            let meta = std::fs::metadata(&real).ok()?;
            return classify(real, &meta);
        }
        last = Some(meta);
    }
    let meta = match last {
        Some(m) => m,
        None => std::fs::metadata(root).ok()?,
    };
    classify(path.to_path_buf(), &meta)
}

fn classify(path: PathBuf, meta: &std::fs::Metadata) -> Option<Target> {
    if meta.is_dir() {
        Some(Target::Folder(path))
    } else if meta.is_file() {
        Some(Target::File {
            path,
            script_name: String::new(),
            path_info: String::new(),
            meta: FileMeta(meta.clone()),
        })
    } else {
        None
    }
}

/// A strong validator from size and modification time, as nginx makes it.
pub fn etag(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("\"{mtime:x}-{:x}\"", meta.len())
}

/// Whether an If-None-Match header value matches `etag` (weak comparison, RFC 9110 13.1.2).
pub fn none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    header.trim() == "*" || header.split(',').any(|t| bare(t) == bare(etag))
}

/// An HTML listing of `folder` (names escaped, dotfiles hidden unless allowed).
pub fn listing(folder: &Path, url_path: &str, dotfiles: bool) -> std::io::Result<String> {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(folder)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let dir = e.file_type().ok()?.is_dir();
            Some((name, dir))
        })
        .filter(|(n, _)| dotfiles || !n.starts_with('.'))
        .collect();
    names.sort();
    let title = html_escape(url_path);
    let mut out = format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head><body><h1>Index of {title}</h1><ul>\n");
    if url_path != "/" {
        out.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, dir) in names {
        let slash = if dir { "/" } else { "" };
        let href = percent_encoding::utf8_percent_encode(&name, HREF);
        out.push_str(&format!(
            "<li><a href=\"{href}{slash}\">{}{slash}</a></li>\n",
            html_escape(&name)
        ));
    }
    out.push_str("</ul></body></html>\n");
    Ok(out)
}

/// Characters escaped in listing links: all but RFC 3986 unreserved ones.
const HREF: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Rules = Rules {
        dotfiles: false,
        follow_symlinks: false,
        php: true,
    };

    fn site() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join(".well-known/acme-challenge")).unwrap();
        std::fs::write(root.join("index.html"), "hi").unwrap();
        std::fs::write(root.join("app.php"), "<?php").unwrap();
        std::fs::write(root.join(".env"), "SECRET=1").unwrap();
        std::fs::write(root.join(".well-known/acme-challenge/tok"), "t").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("link.txt")).unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        (dir, root)
    }

    #[test]
    fn files_folders_and_the_slash_redirect() {
        let (_d, root) = site();
        assert!(matches!(
            resolve(&root, "/index.html", STRICT),
            Target::File { .. }
        ));
        assert!(matches!(
            resolve(&root, "/%69ndex.html", STRICT),
            Target::File { .. }
        ));
        assert_eq!(
            resolve(&root, "/docs/", STRICT),
            Target::Folder(root.join("docs"))
        );
        assert_eq!(
            resolve(&root, "/docs", STRICT),
            Target::AddSlash {
                location: "/docs/".into()
            }
        );
        assert_eq!(resolve(&root, "/missing", STRICT), Target::NotFound);
    }

    #[test]
    fn nothing_escapes_the_root() {
        let (_d, root) = site();
        for path in [
            "/../outside.txt",
            "/docs/../../outside.txt",
            "/%2e%2e/outside.txt",
            "/a%00b",
            "/%ff",
            "/..%5coutside.txt",
        ] {
            assert!(
                matches!(resolve(&root, path, STRICT), Target::BadRequest(_)),
                "{path}"
            );
        }
        assert_eq!(resolve(&root, "/link.txt", STRICT), Target::NotFound);
        let follow = Rules {
            follow_symlinks: true,
            ..STRICT
        };
        assert!(matches!(
            resolve(&root, "/link.txt", follow),
            Target::File { .. }
        ));
        // `..` that stays inside is just a path.
        assert!(matches!(
            resolve(&root, "/docs/../index.html", STRICT),
            Target::File { .. }
        ));
    }

    #[test]
    fn dotfiles_are_refused_except_well_known() {
        let (_d, root) = site();
        assert_eq!(resolve(&root, "/.env", STRICT), Target::NotFound);
        assert_eq!(resolve(&root, "/.git/", STRICT), Target::NotFound);
        assert_eq!(resolve(&root, "/%2eenv", STRICT), Target::NotFound);
        assert!(matches!(
            resolve(&root, "/.well-known/acme-challenge/tok", STRICT),
            Target::File { .. }
        ));
        let open = Rules {
            dotfiles: true,
            ..STRICT
        };
        assert!(matches!(resolve(&root, "/.env", open), Target::File { .. }));
    }

    #[test]
    fn php_path_info() {
        let (_d, root) = site();
        match resolve(&root, "/app.php/users/7", STRICT) {
            Target::File {
                path,
                script_name,
                path_info,
                ..
            } => {
                assert_eq!(path, root.join("app.php"));
                assert_eq!(script_name, "/app.php");
                assert_eq!(path_info, "/users/7");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn etags_match_weakly() {
        assert!(none_match("\"a-1\"", "\"a-1\""));
        assert!(none_match("W/\"a-1\", \"b\"", "\"a-1\""));
        assert!(none_match("*", "\"a-1\""));
        assert!(!none_match("\"a-2\"", "\"a-1\""));
    }

    #[test]
    fn listings_escape_names() {
        let (_d, root) = site();
        std::fs::write(root.join("docs/<b>.txt"), "x").unwrap();
        let html = listing(&root.join("docs"), "/docs/", false).unwrap();
        assert!(html.contains("&lt;b&gt;.txt"));
        assert!(!html.contains("<b>.txt"));
    }
}
