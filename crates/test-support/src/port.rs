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

/// True when process `pid` holds a TCP socket listening on `port` (IPv4 or IPv6): a ready
/// check that cannot be fooled by another process that took the port first.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            // State 0A is LISTEN.
            if *state == "0A" && local_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_socket_is_found_in_its_owner_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listens_on(std::process::id(), port));
        assert!(!listens_on(1, port));
        drop(listener);
        assert!(!listens_on(std::process::id(), port));
    }

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
