//! A real `redis-server` for the store's tests, the end-to-end tests and the store benchmark.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{on_free_port, Error, Proc, TempDir};

/// How long a starting server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` on 127.0.0.1:`port` without persistence, killed on drop; its log is in a
/// [`TempDir`] kept when the test fails. A missing `redis-server` is a failure, not a skip.
pub struct Redis {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    extra: Vec<String>,
    /// The text of the configuration file given first, if any (Sentinel needs one it can
    /// rewrite).
    conf: Option<String>,
    /// Whether it is a cluster node, which needs a second free port for the cluster bus.
    cluster_bus: bool,
    proc: Option<Proc>,
    dir: TempDir,
}

impl Redis {
    /// Starts a server on a free port; returns once it answers PING.
    pub fn start() -> Redis {
        Self::start_with(&[])
    }

    /// Like [`Redis::start`], with extra `redis-server` arguments (e.g. `["--requirepass", "x"]`).
    pub fn start_with(extra: &[&str]) -> Redis {
        Self::try_start_with(extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Redis::start_with`], returning the failure: a new port is tried when the chosen one
    /// was taken before redis-server could bind it.
    pub fn try_start_with(extra: &[&str]) -> Result<Redis, Error> {
        on_free_port("redis-server", |port| Self::try_start_on(port, extra))
    }

    /// Starts a server on `port`, e.g. again after [`Redis::stop`] of another one.
    pub fn start_on(port: u16) -> Redis {
        Self::try_start_on(port, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Redis::start_on`] with extra arguments, returning the failure.
    pub fn try_start_on(port: u16, extra: &[&str]) -> Result<Redis, Error> {
        Self::try_start_as(port, None, false, extra)
    }

    /// Starts a server on `port` with configuration file text `conf` (if any) and extra
    /// arguments; `cluster_bus` gives it a free cluster bus port (`--cluster-port`).
    pub(crate) fn try_start_as(
        port: u16,
        conf: Option<String>,
        cluster_bus: bool,
        extra: &[&str],
    ) -> Result<Redis, Error> {
        let mut redis = Redis {
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            conf,
            cluster_bus,
            proc: None,
            dir: TempDir::try_new("redis")?,
        };
        redis.try_restart()?;
        Ok(redis)
    }

    /// Its process id, 0 once stopped.
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().map_or(0, Proc::pid)
    }

    /// True while the server process runs.
    pub fn running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::running)
    }

    /// The address to connect to.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits for it to exit; its data is gone (no persistence).
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Stops the server if it runs and starts it again, empty, on the same port and arguments;
    /// returns once it answers PING.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_restart(&mut self) -> Result<(), Error> {
        self.stop();
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        if let Some(conf) = &self.conf {
            let path = self.dir.join("redis.conf");
            std::fs::write(&path, conf).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            cmd.arg(path);
        }
        cmd.args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra);
        if self.cluster_bus {
            cmd.args(["--cluster-port", &crate::free_port().to_string()]);
        }
        let name = format!("redis-{port}");
        let mut proc = Proc::try_spawn(&name, cmd, &self.dir).map_err(|e| match e {
            Error::Spawn { source, .. } => Error::NotReady {
                name: name.clone(),
                why: format!(
                    "cannot run redis-server ({source}): the tests need a real Redis server on \
                     PATH (Debian: apt-get install redis-server)"
                ),
                log_tail: String::new(),
            },
            other => other,
        })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if server_pid(self.port, self.password()) == Some(proc.pid()) {
                self.proc = Some(proc);
                return Ok(());
            }
            let why = if let Some(status) = proc.wait_exit(Duration::ZERO) {
                format!("exited ({status}) before answering PING on port {port}")
            } else if Instant::now() > deadline {
                format!("no PING answer on port {port} within {START_TIMEOUT:?}")
            } else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            return Err(Error::NotReady {
                name,
                why,
                log_tail: proc.log_tail(10),
            });
        }
    }

    /// The `--requirepass` argument, if any.
    fn password(&self) -> Option<&str> {
        let at = self.extra.iter().position(|a| a == "--requirepass")?;
        self.extra.get(at + 1).map(String::as_str)
    }

    /// Stops the server without killing it (SIGSTOP): connections hang instead of failing.
    pub fn pause(&self) {
        if let Some(proc) = &self.proc {
            proc.signal(libc::SIGSTOP);
        }
    }

    /// Resumes a server stopped by [`Redis::pause`].
    pub fn resume(&self) {
        if let Some(proc) = &self.proc {
            proc.signal(libc::SIGCONT);
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pid of the Redis server answering on `port`, if one answers: the ready check, which also
/// tells our server from another process that took the port first.
fn server_pid(port: u16, password: Option<&str>) -> Option<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut request = String::new();
    if let Some(password) = password {
        request.push_str(&format!("AUTH {password}\r\n"));
    }
    request.push_str("INFO server\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let n = s.read(&mut buf).unwrap_or(0);
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        let pid = text
            .split("\r\n")
            .find_map(|l| l.strip_prefix("process_id:"))
            .filter(|_| text.contains("\r\nrun_id:"));
        if let Some(pid) = pid {
            return pid.parse().ok();
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_once_started_and_comes_back_after_restart() {
        let mut redis = Redis::start();
        assert!(server_pid(redis.port, None).is_some());
        redis.stop();
        assert_eq!(server_pid(redis.port, None), None);
        redis.restart();
        assert!(server_pid(redis.port, None).is_some());
    }

    #[test]
    fn a_taken_port_is_not_reported_as_started() {
        let first = Redis::start();
        let err = match Redis::try_start_on(first.port, &[]) {
            Ok(_) => panic!("two servers on port {}", first.port),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("exited"), "{err}");
        assert!(err.contains("Address already in use"), "{err}");
    }

    #[test]
    fn paused_server_does_not_answer() {
        let redis = Redis::start();
        redis.pause();
        assert_eq!(server_pid(redis.port, None), None);
        redis.resume();
        assert!(server_pid(redis.port, None).is_some());
    }

    #[test]
    fn password_protected_server_is_ready() {
        let redis = Redis::start_with(&["--requirepass", "s3cret"]);
        assert!(server_pid(redis.port, Some("s3cret")).is_some());
    }
}
