//! The `stream` page of the admin site: open sessions (client, movie, transport, bitrate,
//! position) with a button to end one, and the movies folder with each file's tracks, or the
//! reason it cannot be streamed.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use serval_core::html::escape;
use serval_core::service::AdminPanel;

use crate::movies::MovieLibrary;
use crate::net::Shared;
use crate::rtsp::handler::lock;

/// The panel; holds the service's shared state.
pub struct StreamAdminPanel {
    pub(crate) shared: Arc<Shared>,
    pub(crate) library: Arc<MovieLibrary>,
}

/// One row of the sessions table (also the JSON of `/api/v1/services/stream`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionView {
    pub id: String,
    pub client: String,
    pub movie: String,
    pub transport: String,
    pub state: String,
    pub position_secs: f64,
    pub bits_per_second: u64,
    pub bytes_sent: u64,
    pub packets_lost: i64,
}

impl StreamAdminPanel {
    pub fn sessions(&self) -> Vec<SessionView> {
        let now = tokio::time::Instant::now().into_std();
        let mut views: Vec<SessionView> = self
            .shared
            .server
            .sessions()
            .iter()
            .map(|shared| {
                let session = lock(shared);
                let (bytes_sent, _) = session.totals();
                let age = now
                    .saturating_duration_since(session.created_at)
                    .as_secs_f64();
                SessionView {
                    id: session.id.clone(),
                    client: session.client.to_string(),
                    movie: session.movie_path.clone(),
                    transport: session
                        .tracks
                        .first()
                        .map_or("-", |t| t.transport.lower_name())
                        .to_owned(),
                    state: format!("{:?}", session.state()),
                    position_secs: session.position(now).as_secs_f64(),
                    bits_per_second: if age > 0.0 {
                        (bytes_sent as f64 * 8.0 / age) as u64
                    } else {
                        0
                    },
                    bytes_sent,
                    packets_lost: session
                        .tracks
                        .iter()
                        .map(|t| i64::from(t.receiver.cumulative_lost.max(0)))
                        .sum(),
                }
            })
            .collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }
}

impl AdminPanel for StreamAdminPanel {
    fn render(&self, csrf_field: &str, action_url: &str) -> String {
        let mut html = String::from("<h2>Sessions</h2>\n");
        let sessions = self.sessions();
        if sessions.is_empty() {
            html.push_str("<p>No one is watching.</p>\n");
        } else {
            html.push_str("<table><thead><tr><th>Client</th><th>Movie</th><th>Transport</th><th>State</th><th>Position</th><th>Bitrate</th><th>Lost</th><th></th></tr></thead><tbody>\n");
            for view in &sessions {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} s</td><td>{:.2} Mbit/s</td><td>{}</td>\
                     <td><form method=\"post\" action=\"{}\">{}<input type=\"hidden\" name=\"action\" value=\"end\">\
                     <input type=\"hidden\" name=\"session\" value=\"{}\"><button>End</button></form></td></tr>\n",
                    escape(&view.client),
                    escape(&view.movie),
                    escape(&view.transport),
                    escape(&view.state),
                    view.position_secs,
                    view.bits_per_second as f64 / 1e6,
                    view.packets_lost,
                    escape(action_url),
                    csrf_field,
                    escape(&view.id),
                ));
            }
            html.push_str("</tbody></table>\n");
        }
        html.push_str(&format!(
            "<h2>Movies</h2>\n<p>Folder: <code>{}</code></p>\n",
            escape(&self.library.root().display().to_string())
        ));
        let listing = self.library.listing();
        if listing.is_empty() {
            html.push_str("<p>No movies yet: put .mp4 or .mov files in the folder.</p>\n");
            return html;
        }
        html.push_str("<table><thead><tr><th>File</th><th>Size</th><th>Duration</th><th>Tracks</th></tr></thead><tbody>\n");
        let started = StdInstant::now();
        for movie in listing {
            let (duration, tracks) = match &movie.opened {
                Ok(presentation) => {
                    use crate::library::Presentation;
                    let tracks: Vec<String> = presentation
                        .tracks()
                        .iter()
                        .map(|t| match &t.playable {
                            Ok(()) => format!(
                                "{}{} ({:.1} s)",
                                escape(&t.codec),
                                t.language
                                    .as_deref()
                                    .map(|l| format!(", {}", escape(l)))
                                    .unwrap_or_default(),
                                t.duration.as_secs_f64()
                            ),
                            Err(reason) => format!(
                                "{}: <em>not streamed: {}</em>",
                                escape(&t.codec),
                                escape(reason)
                            ),
                        })
                        .collect();
                    (
                        format!("{:.1} s", presentation.duration().as_secs_f64()),
                        tracks.join("<br>"),
                    )
                }
                Err(reason) => (
                    "-".into(),
                    format!("<strong>cannot be streamed:</strong> {}", escape(reason)),
                ),
            };
            html.push_str(&format!(
                "<tr><td>{}</td><td>{:.1} MB</td><td>{}</td><td>{}</td></tr>\n",
                escape(&movie.relative),
                movie.size as f64 / 1e6,
                duration,
                tracks
            ));
        }
        html.push_str("</tbody></table>\n");
        tracing::debug!(target: "serval_stream::admin", elapsed_ms = started.elapsed().as_millis(), "listed movies");
        html
    }

    fn handle_action(&self, form: &[(String, String)]) -> Result<String, String> {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match (field("action"), field("session")) {
            (Some("end"), Some(id)) => {
                if self.shared.end_session(id) {
                    Ok(format!("Session {id} ended."))
                } else {
                    Err(format!("No session {id} (it may have ended already)."))
                }
            }
            _ => Err("Unknown action.".into()),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "sessions": self.sessions() })
    }
}
