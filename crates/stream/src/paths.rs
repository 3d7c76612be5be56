//! From the path of an `rtsp://` URL to a file under the media directory, without ever
//! leaving it: `..` segments (also percent-encoded, also behind encoded slashes), absolute
//! paths, backslashes and NUL bytes are refused, and the resolved file must still be under the
//! canonical root after symlinks are followed.

use std::path::{Component, Path, PathBuf};

use crate::library::CatalogError;

/// The relative path named by a URL path (`/sub/x%20y.mp4` → `sub/x y.mp4`), checked lexically.
pub fn relative_media_path(url_path: &str) -> Result<PathBuf, CatalogError> {
    let forbidden = || CatalogError::Forbidden(url_path.chars().take(200).collect());
    let decoded = urlencoding::decode(url_path)
        .map_err(|_| CatalogError::NotFound(url_path.chars().take(200).collect()))?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return Err(forbidden());
    }
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => continue,
            ".." => return Err(forbidden()),
            name => {
                // A segment must be one plain name, not a prefix like `C:` or a root.
                let mut components = Path::new(name).components();
                match (components.next(), components.next()) {
                    (Some(Component::Normal(_)), None) => relative.push(name),
                    _ => return Err(forbidden()),
                }
            }
        }
    }
    if relative.as_os_str().is_empty() {
        return Err(CatalogError::NotFound(url_path.chars().take(200).collect()));
    }
    Ok(relative)
}

/// Joins `relative` to the canonical `root` and follows symlinks; the result must be a file
/// inside `root`.
pub fn resolve_under(root: &Path, relative: &Path) -> Result<PathBuf, CatalogError> {
    let shown = || relative.display().to_string();
    let canonical = root
        .join(relative)
        .canonicalize()
        .map_err(|_| CatalogError::NotFound(shown()))?;
    if !canonical.starts_with(root) {
        return Err(CatalogError::Forbidden(shown()));
    }
    if !canonical.is_file() {
        return Err(CatalogError::NotFound(shown()));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_encoded_names_map_below_the_root() {
        assert_eq!(
            relative_media_path("/a.mp4").unwrap(),
            PathBuf::from("a.mp4")
        );
        assert_eq!(
            relative_media_path("/sub/x%20y.mp4").unwrap(),
            PathBuf::from("sub/x y.mp4")
        );
        assert_eq!(
            relative_media_path("//sub/./a.mp4").unwrap(),
            PathBuf::from("sub/a.mp4")
        );
    }

    #[test]
    fn traversal_in_every_spelling_is_forbidden() {
        for path in [
            "/../etc/passwd",
            "/sub/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/sub%2f..%2f..%2fetc/passwd",
            "/..%5cetc",
            "/a%00.mp4",
        ] {
            assert!(
                matches!(relative_media_path(path), Err(CatalogError::Forbidden(_))),
                "{path}"
            );
        }
        assert!(matches!(
            relative_media_path("/"),
            Err(CatalogError::NotFound(_))
        ));
    }

    #[test]
    fn symlinks_out_of_the_root_and_missing_files_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.mp4"), b"x").unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        let root = root_dir.path().canonicalize().unwrap();
        std::fs::write(root.join("ok.mp4"), b"x").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.mp4"), root.join("link.mp4"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("sub/out")).unwrap();
        std::os::unix::fs::symlink(root.join("ok.mp4"), root.join("sub/inside.mp4")).unwrap();

        assert_eq!(
            resolve_under(&root, Path::new("ok.mp4")).unwrap(),
            root.join("ok.mp4")
        );
        assert_eq!(
            resolve_under(&root, Path::new("sub/inside.mp4")).unwrap(),
            root.join("ok.mp4")
        );
        assert!(matches!(
            resolve_under(&root, Path::new("link.mp4")),
            Err(CatalogError::Forbidden(_))
        ));
        assert!(matches!(
            resolve_under(&root, Path::new("sub/out/secret.mp4")),
            Err(CatalogError::Forbidden(_))
        ));
        assert!(matches!(
            resolve_under(&root, Path::new("missing.mp4")),
            Err(CatalogError::NotFound(_))
        ));
        assert!(matches!(
            resolve_under(&root, Path::new("sub")),
            Err(CatalogError::NotFound(_))
        ));
        // An absolute path never gets this far, but if it did it would still be checked.
        assert!(resolve_under(&root, &outside.path().join("secret.mp4")).is_err());
    }
}
