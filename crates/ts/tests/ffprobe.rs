//! The muxer's output read by real ffmpeg/ffprobe: an FLV made by ffmpeg (H.264 with B-frames,
//! AAC) is remuxed to TS tag by tag, and ffprobe must find both streams and decode every frame
//! without complaint.

use std::path::PathBuf;
use std::process::Command;

use srs_rtmp::flv::FlvReader;
use srs_ts::mux::PACKET_SIZE;
use srs_ts::Remuxer;

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("srs-ts-{}-{name}", std::process::id()))
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("ffmpeg and ffprobe must be installed");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ffprobe_reads_remuxed_h264_and_aac() {
    let flv = temp_path("in.flv");
    let ts = temp_path("out.ts");
    run(Command::new("ffmpeg")
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
        .arg(&flv));

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

    let (codecs, _) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&ts));
    let codecs: Vec<&str> = codecs.lines().map(str::trim).collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{codecs:?}"
    );

    let (count, _) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&ts));
    // ffprobe lists the streams once under the program and once on their own.
    assert_eq!(count.lines().next().map(str::trim), Some("75"), "{count}");

    // Decoding the whole file reports no error (bad CRC, continuity, PES or bitstream).
    let (_, errors) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&ts)
        .args(["-f", "null", "-"]));
    assert!(errors.trim().is_empty(), "{errors}");

    let _ = std::fs::remove_file(flv);
    let _ = std::fs::remove_file(ts);
}
