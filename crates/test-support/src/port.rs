//! Free ports for servers that cannot be told to take port 0.

use std::net::TcpListener;

use crate::Error;

/// How many fresh ports [`on_free_port`] tries.
pub const PORT_TRIES: usize = 5;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released). Another process
/// may take it before the caller binds it: start servers with [`on_free_port`].
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Runs `start` with a fresh free port until it succeeds, at most [`PORT_TRIES`] times.
/// `start` must fail, not hang, when the port was taken meanwhile: the server exiting early or
/// its ready check failing.
pub fn on_free_port<T>(
    what: &str,
    mut start: impl FnMut(u16) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut last = None;
    for _ in 0..PORT_TRIES {
        match start(free_port()) {
            Ok(started) => return Ok(started),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Ports {
        what: what.to_string(),
        tries: PORT_TRIES,
        last: Box::new(last.expect("at least one try")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_retried_with_another() {
        let mut seen = Vec::new();
        let port = on_free_port("server", |port| {
            seen.push(port);
            if seen.len() < 3 {
                Err(Error::NotReady {
                    name: "server".into(),
                    why: "address in use".into(),
                    log_tail: String::new(),
                })
            } else {
                Ok(port)
            }
        })
        .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen.last(), Some(&port));
    }

    #[test]
    fn gives_up_after_the_last_try() {
        let mut tries = 0;
        let err = on_free_port::<()>("server", |_| {
            tries += 1;
            Err(Error::NotReady {
                name: "server".into(),
                why: "address in use".into(),
                log_tail: String::new(),
            })
        })
        .unwrap_err();
        assert_eq!(tries, PORT_TRIES);
        assert!(err.to_string().contains("address in use"), "{err}");
    }
}
