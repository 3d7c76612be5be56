//! The movies folder as a [`Catalog`]: safe path mapping, a cache of parsed movies keyed by
//! path, modification time and size (so every viewer of a file shares one parsed index), and
//! the folder listing shown on the admin page.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serval_stream_media::{MediaError, MediaKind, Movie, PacketOptions, PacketSource, TrackInfo};

use crate::library::{Catalog, CatalogError, MediaPacket, Presentation, TrackPackets};
use crate::paths::{relative_media_path, resolve_under};

/// Parsed movies kept in memory; beyond it, movies nobody plays are dropped first.
const MAX_CACHED_MOVIES: usize = 256;
/// File extensions listed on the admin page.
const MOVIE_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "3gp", "m4a"];
/// Files the admin listing visits at most, and how deep it goes.
const MAX_LISTED_FILES: usize = 2000;
const MAX_LISTING_DEPTH: usize = 8;

/// A movie opened from the folder.
pub struct MoviePresentation {
    movie: Arc<Movie>,
    file_size: u64,
    max_payload: usize,
}

impl MoviePresentation {
    pub fn tracks(&self) -> &[TrackInfo] {
        self.movie.tracks()
    }
}

impl Presentation for MoviePresentation {
    fn sdp(&self, session_name: &str, origin_addr: &str) -> String {
        self.movie.sdp(session_name, origin_addr)
    }
    fn track_ids(&self) -> Vec<u32> {
        self.movie.selected_tracks().to_vec()
    }
    fn duration(&self) -> Duration {
        self.movie.duration()
    }
    fn file_size(&self) -> u64 {
        self.file_size
    }
    fn codecs(&self) -> (Option<String>, Option<String>) {
        let selected = self.movie.selected_tracks();
        let codec_of = |kind: MediaKind| {
            self.movie
                .tracks()
                .iter()
                .find(|t| t.kind == kind && selected.contains(&t.track_id))
                .map(|t| t.codec.clone())
        };
        (codec_of(MediaKind::Audio), codec_of(MediaKind::Video))
    }
    fn packets(
        &self,
        track_id: u32,
        start: Duration,
    ) -> Result<Box<dyn TrackPackets>, CatalogError> {
        let options = PacketOptions {
            max_payload: self.max_payload,
        };
        let source = self
            .movie
            .packets_with(track_id, start, options)
            .map_err(catalog_error)?;
        Ok(Box::new(SourceAdapter(source)))
    }
}

struct SourceAdapter(PacketSource);

impl TrackPackets for SourceAdapter {
    fn clock_rate(&self) -> u32 {
        self.0.clock_rate()
    }
    fn payload_type(&self) -> u8 {
        self.0.payload_type()
    }
    fn start(&self) -> Duration {
        self.0.start()
    }
    fn start_rtp_timestamp(&self) -> u32 {
        self.0.start_rtp_timestamp()
    }
    fn next_packet(&mut self) -> Result<Option<MediaPacket>, String> {
        self.0.next_packet().map_err(|e| e.to_string())
    }
}

fn catalog_error(error: MediaError) -> CatalogError {
    if error.is_unsupported() {
        CatalogError::Unsupported(error.to_string())
    } else {
        CatalogError::Broken(error.to_string())
    }
}

struct CachedMovie {
    modified: SystemTime,
    len: u64,
    presentation: Arc<MoviePresentation>,
}

/// The movies folder.
pub struct MovieLibrary {
    root: PathBuf,
    /// `stream.max_payload`: largest RTP payload the packetizers produce.
    max_payload: usize,
    cache: Mutex<HashMap<PathBuf, CachedMovie>>,
}

/// One file of the folder listing.
pub struct ListedMovie {
    /// Path relative to the media directory, with `/` separators.
    pub relative: String,
    pub size: u64,
    pub opened: Result<Arc<MoviePresentation>, String>,
}

impl MovieLibrary {
    /// `root` must exist; it is canonicalized so symlink checks compare like with like.
    pub fn new(root: &Path, max_payload: usize) -> std::io::Result<MovieLibrary> {
        Ok(MovieLibrary {
            root: root.canonicalize()?,
            max_payload,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Shared packet chunks alive across the cached movies.
    pub fn packet_chunks_live(&self) -> usize {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .values()
            .map(|c| c.presentation.movie.live_packet_chunks())
            .sum()
    }

    /// Opens a file by its canonical path, through the cache.
    fn open_file(&self, path: &Path) -> Result<Arc<MoviePresentation>, CatalogError> {
        let shown = || {
            path.strip_prefix(&self.root)
                .unwrap_or(path)
                .display()
                .to_string()
        };
        let metadata = std::fs::metadata(path).map_err(|_| CatalogError::NotFound(shown()))?;
        let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let len = metadata.len();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cached) = cache
                .get(path)
                .filter(|c| c.modified == modified && c.len == len)
            {
                return Ok(cached.presentation.clone());
            }
        }
        let movie = Movie::open(path).map_err(catalog_error)?;
        let presentation = Arc::new(MoviePresentation {
            movie: Arc::new(movie),
            file_size: len,
            max_payload: self.max_payload,
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_MOVIES {
            cache.retain(|_, c| Arc::strong_count(&c.presentation) > 1);
        }
        if cache.len() < MAX_CACHED_MOVIES {
            cache.insert(
                path.to_owned(),
                CachedMovie {
                    modified,
                    len,
                    presentation: presentation.clone(),
                },
            );
        }
        Ok(presentation)
    }

    /// Every movie file under the folder, opened (or why it cannot be streamed).
    pub fn listing(&self) -> Vec<ListedMovie> {
        let mut files = Vec::new();
        collect_movies(&self.root, 0, &mut files);
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let relative = path
                    .strip_prefix(&self.root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let opened = resolve_under(&self.root, Path::new(&relative))
                    .and_then(|canonical| self.open_file(&canonical))
                    .map_err(|e| e.to_string());
                ListedMovie {
                    relative,
                    size,
                    opened,
                }
            })
            .collect()
    }
}

impl Catalog for MovieLibrary {
    fn open(&self, url_path: &str) -> Result<Arc<dyn Presentation>, CatalogError> {
        let relative = relative_media_path(url_path)?;
        let path = resolve_under(&self.root, &relative)?;
        let presentation: Arc<dyn Presentation> = self.open_file(&path)?;
        Ok(presentation)
    }

    fn packet_chunks_live(&self) -> usize {
        MovieLibrary::packet_chunks_live(self)
    }
}

fn collect_movies(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_LISTING_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if out.len() >= MAX_LISTED_FILES {
            return;
        }
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            collect_movies(&path, depth + 1, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| MOVIE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
}

/// `serval check`'s look at the movies folder against the session caps: a `max_bandwidth`
/// below what one playing movie needs means every SETUP of that movie gets 453, which no
/// operator means to configure. Names the most demanding movie.
pub fn check_caps_against_movies(
    config: &crate::config::StreamConfig,
    media_dir: &Path,
    problems: &mut serval_core::config::Problems,
) {
    let Ok(library) = MovieLibrary::new(media_dir, usize::from(config.max_payload)) else {
        return;
    };
    let heaviest = library
        .listing()
        .into_iter()
        .filter_map(|listed| {
            let presentation = listed.opened.ok()?;
            Some((presentation.bits_per_second(), listed.relative))
        })
        .max_by_key(|(bps, _)| *bps);
    let Some((needed, movie)) = heaviest else {
        return;
    };
    let (cap, source) = config.max_bandwidth.resolve(Path::new("/sys/class/net"));
    if cap < needed {
        problems.warning(
            "stream.max_bandwidth",
            format!(
                "{} ({source}) is below the {} that {movie} needs to play: every SETUP of it would be refused with 453",
                crate::config::Bandwidth { bits_per_second: cap },
                crate::config::Bandwidth { bits_per_second: needed },
            ),
        );
    }
}
