//! The `retina` crate as an in-process RTSP client: DESCRIBE, SETUP both tracks over TCP,
//! PLAY, and check the depacketized frames (count, keyframe first, timestamps).

mod common;

use std::time::Duration;

use common::TestServer;
use futures::StreamExt;
use retina::client::{
    PlayOptions, SessionGroup, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::CodecItem;
use serval_stream_media::testing;

#[test]
fn retina_receives_every_frame_over_tcp() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("movie.mp4", &movie)]);
    let url = url::Url::parse(&server.url("movie.mp4")).unwrap();
    let (video_frames, audio_frames, first_is_keyframe, last_video_secs) =
        server.runtime.block_on(async move {
            let options = SessionOptions::default()
                .user_agent("retina-test".into())
                .session_group(std::sync::Arc::new(SessionGroup::default()));
            let mut session = retina::client::Session::describe(url, options)
                .await
                .expect("DESCRIBE");
            let kinds: Vec<(String, String)> = session
                .streams()
                .iter()
                .map(|s| (s.media().to_owned(), s.encoding_name().to_owned()))
                .collect();
            assert_eq!(
                kinds,
                [
                    ("video".to_owned(), "h264".to_owned()),
                    ("audio".to_owned(), "mpeg4-generic".to_owned())
                ]
            );
            for index in 0..kinds.len() {
                session
                    .setup(
                        index,
                        SetupOptions::default()
                            .transport(Transport::Tcp(TcpTransportOptions::default())),
                    )
                    .await
                    .expect("SETUP");
            }
            let playing = session.play(PlayOptions::default()).await.expect("PLAY");
            let mut demuxed = playing.demuxed().expect("demuxed");
            let (mut video, mut audio, mut first_key, mut last_video) =
                (0usize, 0usize, None, 0.0f64);
            loop {
                let item = match tokio::time::timeout(Duration::from_secs(3), demuxed.next()).await
                {
                    Ok(Some(item)) => item.expect("a frame"),
                    // The stream goes quiet after the last packet (BYE); retina keeps the session open.
                    Ok(None) | Err(_) => break,
                };
                match item {
                    CodecItem::VideoFrame(frame) => {
                        first_key.get_or_insert(frame.is_random_access_point());
                        last_video = frame.timestamp().elapsed_secs();
                        video += 1;
                    }
                    CodecItem::AudioFrame(_) => audio += 1,
                    _ => {}
                }
            }
            (video, audio, first_key, last_video)
        });
    assert_eq!(video_frames, 150, "6 s at 25 fps");
    assert!(
        audio_frames >= 255,
        "about 6 s of 1024-sample AAC frames at 44.1 kHz, got {audio_frames}"
    );
    assert_eq!(first_is_keyframe, Some(true));
    assert!(
        (last_video_secs - 5.96).abs() < 0.15,
        "last video frame at {last_video_secs} s"
    );
}

#[test]
fn retina_receives_video_over_udp() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("movie.mp4", &movie)]);
    let url = url::Url::parse(&server.url("movie.mp4")).unwrap();
    let video_frames = server.runtime.block_on(async move {
        let mut session = retina::client::Session::describe(url, SessionOptions::default())
            .await
            .expect("DESCRIBE");
        session
            .setup(
                0,
                SetupOptions::default().transport(Transport::Udp(
                    retina::client::UdpTransportOptions::default(),
                )),
            )
            .await
            .expect("SETUP over UDP");
        let mut demuxed = session
            .play(PlayOptions::default())
            .await
            .expect("PLAY")
            .demuxed()
            .expect("demuxed");
        let mut video = 0usize;
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_secs(3), demuxed.next()).await
        {
            if let CodecItem::VideoFrame(_) = item.expect("a frame") {
                video += 1;
            }
        }
        video
    });
    assert_eq!(video_frames, 150);
}
