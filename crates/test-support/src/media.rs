//! ffmpeg and ffprobe as publisher, player and judge of what the servers produce.

use std::io::BufRead;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::Proc;

/// Starts ffmpeg publishing a generated source to `url` in real time for up to `seconds`: a
/// 320x240 25 fps H.264 test pattern with a keyframe every second, and a 440 Hz AAC tone. The
/// container follows the URL: MPEG-TS for `srt://` (1316-byte messages, ffmpeg's default), FLV
/// otherwise (`rtmp://...`). Its log is `<dir>/<name>.log`.
pub fn publish(dir: &Path, name: &str, url: &str, seconds: u32) -> Proc {
    let format = if url.starts_with("srt://") {
        "mpegts"
    } else {
        "flv"
    };
    Proc::spawn(name, source_command(seconds, format, url), dir)
}

/// The ffmpeg command of [`publish`]: the generated source for up to `seconds`, as `format` to
/// `output` (a URL, or `-` for stdout).
pub fn source_command(seconds: u32, format: &str, output: &str) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", format, output]);
    cmd
}

/// What a player saw: codecs of the input streams and video frames decoded.
#[derive(Debug, Default)]
pub struct PlayResult {
    /// `Video: h264 ...` seen.
    pub h264: bool,
    /// `Audio: aac ...` seen.
    pub aac: bool,
    /// Video frames decoded.
    pub frames: u64,
    /// ffmpeg's exit success.
    pub success: bool,
    /// ffmpeg's log.
    pub log: String,
}

/// Plays `url` (any URL ffmpeg reads: `rtmp://`, `http://`, `srt://...?streamid=...`) with
/// ffmpeg, decoding up to `frames` video frames into the null muxer within `limit` (killed after
/// it). The log is `<dir>/<name>.log`.
pub fn play(dir: &Path, name: &str, url: &str, frames: u32, limit: Duration) -> PlayResult {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "info", "-nostats"])
        .args(["-rw_timeout", "15000000", "-i", url])
        .args(["-map", "0:v", "-map", "0:a?"])
        .args(["-frames:v", &frames.to_string()])
        .args(["-progress", "pipe:1", "-f", "null", "-"]);
    let (mut proc, stdout) = Proc::spawn_piped(name, cmd, dir);
    let counter = std::thread::spawn(move || {
        let mut frames = 0u64;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(v) = line.strip_prefix("frame=") {
                frames = v.trim().parse().unwrap_or(frames);
            }
        }
        frames
    });
    let status = proc.wait_exit(limit);
    // A player past its limit is killed; the pipe closes and the counter ends.
    proc.kill();
    let frames = counter.join().unwrap_or(0);
    let log = proc.log_text();
    PlayResult {
        h264: log.contains("Video: h264"),
        aac: log.contains("Audio: aac"),
        frames,
        success: status.is_some_and(|s| s.success()),
        log,
    }
}

/// Asserts a play decoded at least `min_frames` of H.264 with AAC audio.
pub fn assert_played(result: &PlayResult, min_frames: u64, what: &str) {
    assert!(
        result.h264 && result.aac && result.frames >= min_frames,
        "{what}: h264={} aac={} frames={} (want >= {min_frames})\n{}",
        result.h264,
        result.aac,
        result.frames,
        result.log
    );
}

/// Runs `cmd` (ffmpeg, ffprobe) to completion; panics unless it succeeds. Returns stdout and
/// stderr.
pub fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (ffmpeg and ffprobe must be installed)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The codec of every stream ffprobe finds in `file` (`h264`, `aac`), in its order.
pub fn probe_codecs(file: &Path) -> Vec<String> {
    let (out, _) = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name"])
        .args(["-of", "csv=p=0"])
        .arg(file));
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// How many frames of the first video stream of `file` ffprobe decodes.
pub fn count_video_frames(file: &Path) -> u64 {
    let (out, _) = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file));
    // ffprobe may list a stream twice (under its program and on its own).
    let first = out.lines().map(str::trim).find(|l| !l.is_empty());
    first
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("ffprobe gave no frame count for {}: {out}", file.display()))
}

/// What ffmpeg reports at level `error` while decoding all of `file` (empty: a clean decode).
pub fn decode_errors(file: &Path) -> String {
    let (_, errors) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"]));
    errors.trim().to_string()
}
