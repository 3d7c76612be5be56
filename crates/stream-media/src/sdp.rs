//! SDP (RFC 4566) for DESCRIBE: session lines, then one media section per selected track, either written
//! from the codec configuration or, for hinted tracks, taken from the file's hint SDP as DSS did.
//!
//! Written as text rather than through `sdp-types`: the hint fragments are already SDP text that we pass
//! through line by line, and the few lines we generate are fixed formats.

use std::fmt::Write as _;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::movie::{MediaKind, MovieTables, StreamPlan};
use crate::mp4::sample_entry::Codec;
use crate::rtp::{aac, h264, mp4v};

/// Lines the server writes itself at session level, dropped from a hinted file's movie SDP.
const SESSION_LINES_WE_WRITE: &[&str] = &["v=", "o=", "s=", "c=", "t=", "a=control:", "a=range:"];

pub(crate) fn write_sdp(
    tables: &MovieTables,
    duration: Duration,
    session_id: u64,
    session_name: &str,
    origin_addr: &str,
) -> String {
    let mut sdp = String::new();
    let _ = write!(
        sdp,
        "v=0\r\no=- {session_id} {session_id} IN IP4 {}\r\ns={}\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\na=range:npt=0-{}.{:03}\r\n",
        one_line(origin_addr),
        one_line(session_name),
        duration.as_secs(),
        duration.subsec_millis()
    );
    if tables.plans.iter().any(|p| p.hinted) {
        if let Some(movie_sdp) = &tables.movie_hint_sdp {
            for line in movie_sdp
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
            {
                if !SESSION_LINES_WE_WRITE.iter().any(|p| line.starts_with(p)) {
                    sdp.push_str(line);
                    sdp.push_str("\r\n");
                }
            }
        }
    }
    for plan in &tables.plans {
        if plan.hinted {
            hinted_media_section(tables, plan, &mut sdp);
        } else {
            media_section(tables, plan, &mut sdp);
        }
    }
    sdp
}

/// SDP values come from file names and config; a CR or LF would inject lines, so they become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn media_section(tables: &MovieTables, plan: &StreamPlan, sdp: &mut String) {
    let Some(track) = tables.tracks.get(plan.track_idx) else {
        return;
    };
    let pt = plan.payload_type;
    let media = if plan.kind == MediaKind::Video {
        "video"
    } else {
        "audio"
    };
    let _ = write!(sdp, "m={media} 0 RTP/AVP {pt}\r\n");
    let channels = track.entry.channels.unwrap_or(1).max(1);
    match &track.entry.codec {
        Codec::H264 { sps, pps, .. } => {
            let _ = write!(sdp, "a=rtpmap:{pt} H264/90000\r\n");
            let sets: Vec<String> = sps
                .iter()
                .chain(pps.iter())
                .map(|s| BASE64.encode(s))
                .collect();
            let profile = sps
                .first()
                .and_then(|s| h264::profile_level_id(s))
                .unwrap_or_else(|| "42e01f".into());
            let _ = write!(
                sdp,
                "a=fmtp:{pt} packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={}\r\n",
                sets.join(",")
            );
        }
        Codec::H265 { vps, sps, pps, .. } => {
            let _ = write!(sdp, "a=rtpmap:{pt} H265/90000\r\n");
            let b64 = |sets: &[bytes::Bytes]| {
                sets.iter()
                    .map(|s| BASE64.encode(s))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let _ = write!(
                sdp,
                "a=fmtp:{pt} sprop-vps={};sprop-sps={};sprop-pps={}\r\n",
                b64(vps),
                b64(sps),
                b64(pps)
            );
        }
        Codec::Aac { config } => {
            let _ = write!(
                sdp,
                "a=rtpmap:{pt} mpeg4-generic/{}/{channels}\r\n",
                plan.clock_rate
            );
            let _ = write!(sdp, "a=fmtp:{pt} {}\r\n", aac::fmtp(config));
        }
        Codec::Mp4v { config } => {
            let _ = write!(sdp, "a=rtpmap:{pt} MP4V-ES/90000\r\n");
            let _ = write!(
                sdp,
                "a=fmtp:{pt} profile-level-id={};config={}\r\n",
                mp4v::profile_level_id(config),
                hex::encode_upper(config)
            );
        }
        Codec::Mpa => {
            let _ = write!(sdp, "a=rtpmap:{pt} MPA/90000\r\n");
        }
        Codec::Opus { channels, .. } => {
            // RFC 7587 §7: always "opus/48000/2"; sprop-stereo tells whether the source is stereo.
            let _ = write!(sdp, "a=rtpmap:{pt} opus/48000/2\r\n");
            let _ = write!(
                sdp,
                "a=fmtp:{pt} sprop-stereo={}\r\n",
                u8::from(*channels >= 2)
            );
        }
        Codec::RtpHint { .. } | Codec::Unknown(_) => {}
    }
    if let (Some(w), Some(h)) = (track.entry.width, track.entry.height) {
        let _ = write!(sdp, "a=framesize:{pt} {w}-{h}\r\n");
    }
    write_language(track.language.as_deref(), sdp);
    let _ = write!(sdp, "a=control:trackID={}\r\n", plan.track_id);
}

/// RFC 4566 §6 `a=lang:` so a player can offer the languages by name.
fn write_language(language: Option<&str>, sdp: &mut String) {
    if let Some(language) = language {
        let _ = write!(sdp, "a=lang:{}\r\n", one_line(language));
    }
}

/// A hint track's own SDP fragment, with `a=control` forced to this track so SETUP URLs match,
/// and the `mpeg4-generic` parameters RFC 3640 requires filled in where the hinter left them out.
fn hinted_media_section(tables: &MovieTables, plan: &StreamPlan, sdp: &mut String) {
    let Some(hint_track) = tables.tracks.get(plan.track_idx) else {
        return;
    };
    let Some(text) = hint_track.hint_sdp.as_deref() else {
        return;
    };
    let media_track = hint_track
        .hint_references
        .first()
        .and_then(|id| tables.track_by_id(*id))
        .map(|(_, media)| media);
    let media_codec = media_track.map(|media| &media.entry.codec);
    let mpeg4_generic_pt = text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=rtpmap:")?;
        let (pt, encoding) = rest.split_once(' ')?;
        encoding
            .trim()
            .to_ascii_lowercase()
            .starts_with("mpeg4-generic/")
            .then(|| pt.trim().to_owned())
    });
    let mut wrote_fmtp = false;
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if line.starts_with("a=control:") {
            continue;
        }
        let fmtp_of_generic = mpeg4_generic_pt.as_deref().and_then(|pt| {
            line.strip_prefix("a=fmtp:")?
                .strip_prefix(pt)?
                .strip_prefix(' ')
        });
        match fmtp_of_generic {
            Some(params) => {
                let pt = mpeg4_generic_pt.as_deref().unwrap_or_default();
                let _ = write!(
                    sdp,
                    "a=fmtp:{pt} {}\r\n",
                    complete_mpeg4_generic(params, plan.kind, media_codec)
                );
                wrote_fmtp = true;
            }
            None => {
                sdp.push_str(line);
                sdp.push_str("\r\n");
            }
        }
    }
    if let (Some(pt), false) = (&mpeg4_generic_pt, wrote_fmtp) {
        let _ = write!(
            sdp,
            "a=fmtp:{pt} {}\r\n",
            complete_mpeg4_generic("", plan.kind, media_codec)
        );
    }
    if !text.lines().any(|l| l.trim_start().starts_with("a=lang:")) {
        write_language(media_track.and_then(|m| m.language.as_deref()), sdp);
    }
    let _ = write!(sdp, "a=control:trackID={}\r\n", plan.track_id);
}

/// RFC 3640 §4.1 requires `streamType`, `profile-level-id`, `config` and `mode`; hinters (ffmpeg's
/// `rtphint` among them) leave `streamtype` out, and some clients (GStreamer's depayloader) refuse
/// the stream without it. Missing parameters are added: the stream type from the media kind, the
/// config from the sample description, AAC-hbr sizes when the mode is AAC-hbr. Those present are
/// kept as written, since the hint packets were made to match them.
fn complete_mpeg4_generic(params: &str, kind: MediaKind, media_codec: Option<&Codec>) -> String {
    let mut parts: Vec<String> = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let has = |parts: &[String], name: &str| {
        parts.iter().any(|p| {
            p.split_once('=')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        })
    };
    let value_of = |parts: &[String], name: &str| {
        parts.iter().find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let mut front = Vec::new();
    if !has(&parts, "streamtype") {
        front.push(format!(
            "streamtype={}",
            if kind == MediaKind::Video { 4 } else { 5 }
        ));
    }
    if !has(&parts, "profile-level-id") {
        front.push("profile-level-id=1".to_owned());
    }
    if !has(&parts, "mode") {
        front.push("mode=AAC-hbr".to_owned());
    }
    front.append(&mut parts);
    let mut parts = front;
    let hbr = value_of(&parts, "mode").is_some_and(|m| m.eq_ignore_ascii_case("AAC-hbr"));
    if hbr {
        for (name, value) in [
            ("sizelength", 13),
            ("indexlength", 3),
            ("indexdeltalength", 3),
        ] {
            if !has(&parts, name) {
                parts.push(format!("{name}={value}"));
            }
        }
    }
    if !has(&parts, "config") {
        if let Some(Codec::Aac { config }) = media_codec {
            parts.push(format!("config={}", hex::encode(config)));
        }
    }
    parts.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpeg4_generic_parameters_are_completed_and_kept() {
        let aac = Codec::Aac {
            config: bytes::Bytes::from_static(&[0x12, 0x10]),
        };
        assert_eq!(
            complete_mpeg4_generic(
                "profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=120856E500",
                MediaKind::Audio,
                Some(&aac)
            ),
            "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=120856E500"
        );
        assert_eq!(
            complete_mpeg4_generic("", MediaKind::Audio, Some(&aac)),
            "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210"
        );
        assert_eq!(
            complete_mpeg4_generic(
                "StreamType=5;mode=AAC-lbr;sizelength=6;profile-level-id=15;config=1210",
                MediaKind::Audio,
                Some(&aac)
            ),
            "StreamType=5;mode=AAC-lbr;sizelength=6;profile-level-id=15;config=1210"
        );
    }
}
