//! `srs-rtc-publish <whip-url> [token]`: publishes the client's generated H.264 + Opus clip over
//! WHIP until SIGINT or SIGTERM, then DELETEs the session. `make run` uses it for the WebRTC
//! demo stream.

use std::process::ExitCode;
use std::time::Duration;

use srs_rtc_client::{publish, Options};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next().filter(|a| a != "-h" && a != "--help") else {
        eprintln!("usage: srs-rtc-publish <whip-url> [bearer-token]");
        return ExitCode::FAILURE;
    };
    let mut options = Options::whip(url.clone());
    if let Some(token) = args.next() {
        options = options.with_token(token);
    }
    let publisher = match publish(options).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("srs-rtc-publish: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = publisher.wait_connected(Duration::from_secs(15)).await {
        eprintln!("srs-rtc-publish: {url}: not connected: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("srs-rtc-publish: publishing to {url}");
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("srs-rtc-publish: cannot wait for signals");
        return ExitCode::FAILURE;
    };
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = watch.tick() => {
                if publisher.stats().ended {
                    eprintln!("srs-rtc-publish: the session ended: {:?}", publisher.stats());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    match publisher.close().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srs-rtc-publish: closing: {e}");
            ExitCode::FAILURE
        }
    }
}
