//! The muxer's output read by real ffmpeg/ffprobe: an FLV made by ffmpeg (H.264 with B-frames,
//! AAC) is remuxed to TS tag by tag, and ffprobe must find both streams and decode every frame
//! without complaint.

use std::process::Command;

use srs_rtmp::flv::FlvReader;
use srs_test_support::{media, TempDir};
use srs_ts::mux::PACKET_SIZE;
use srs_ts::Remuxer;

#[test]
fn ffprobe_reads_remuxed_h264_and_aac() {
    let dir = TempDir::new("ts-ffprobe");
    let flv = dir.join("in.flv");
    let ts = dir.join("out.ts");
    media::run(
        Command::new("ffmpeg")
            .args([
                "-y",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440",
                "-t",
                "3",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-bf",
                "2",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-f",
                "flv",
            ])
            .arg(&flv),
    );

    let mut reader = FlvReader::new();
    reader.feed(&std::fs::read(&flv).unwrap());
    let mut remuxer = Remuxer::new();
    let mut out = Vec::new();
    let mut frames = 0;
    while let Some(tag) = reader.next_tag().unwrap() {
        let wrote = match tag.tag_type {
            8 => remuxer
                .push_audio(tag.timestamp, &tag.payload, &mut out)
                .unwrap(),
            9 => remuxer
                .push_video(tag.timestamp, &tag.payload, &mut out)
                .unwrap(),
            _ => false,
        };
        frames += usize::from(wrote && tag.tag_type == 9);
    }
    assert_eq!(frames, 75);
    assert_eq!(out.len() % PACKET_SIZE, 0);
    std::fs::write(&ts, &out).unwrap();

    let codecs = media::probe_codecs(&ts);
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );
    assert_eq!(media::count_video_frames(&ts), 75);

    // Decoding the whole file reports no error (bad CRC, continuity, PES or bitstream).
    let errors = media::decode_errors(&ts);
    assert!(errors.is_empty(), "{errors}");
}
