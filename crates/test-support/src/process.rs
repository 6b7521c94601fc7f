//! Child processes that never outlive the test (or benchmark) that started them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// How many log lines a failing test prints of each process.
const TAIL_ON_PANIC: usize = 40;

/// A child process with stdout and stderr in `<dir>/<name>.log` (stdout may be piped to the
/// caller instead). It is killed and reaped when dropped, and killed by the kernel when the
/// thread that spawned it ends, even if the whole test process is killed: spawn it from the
/// thread that lives as long as it should (the test's thread).
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr to `<dir>/<name>.log`.
    pub fn try_spawn(name: &str, cmd: Command, dir: &Path) -> Result<Proc, Error> {
        Self::start(name, cmd, dir, Stdio::null(), false).map(|(p, _)| p)
    }

    /// Like [`Proc::try_spawn`], with `stdin` as the child's standard input (e.g. another
    /// child's piped stdout, for a pipeline of two killed-on-drop processes).
    pub fn try_spawn_with_stdin(
        name: &str,
        cmd: Command,
        dir: &Path,
        stdin: Stdio,
    ) -> Result<Proc, Error> {
        Self::start(name, cmd, dir, stdin, false).map(|(p, _)| p)
    }

    /// Spawns `cmd` with stderr to `<dir>/<name>.log` and stdout piped to the caller, who must
    /// keep reading it (see [`drain`]) so that the child never blocks on a full pipe.
    pub fn try_spawn_piped(
        name: &str,
        cmd: Command,
        dir: &Path,
    ) -> Result<(Proc, ChildStdout), Error> {
        let (proc, stdout) = Self::start(name, cmd, dir, Stdio::null(), true)?;
        let stdout = stdout.ok_or_else(|| Error::NotReady {
            name: name.to_string(),
            why: "no stdout pipe".to_string(),
            log_tail: String::new(),
        })?;
        Ok((proc, stdout))
    }

    /// [`Proc::try_spawn`], panicking on failure.
    pub fn spawn(name: &str, cmd: Command, dir: &Path) -> Proc {
        Self::try_spawn(name, cmd, dir).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Proc::try_spawn_piped`], panicking on failure.
    pub fn spawn_piped(name: &str, cmd: Command, dir: &Path) -> (Proc, ChildStdout) {
        Self::try_spawn_piped(name, cmd, dir).unwrap_or_else(|e| panic!("{e}"))
    }

    fn start(
        name: &str,
        mut cmd: Command,
        dir: &Path,
        stdin: Stdio,
        pipe: bool,
    ) -> Result<(Proc, Option<ChildStdout>), Error> {
        let log = dir.join(format!("{name}.log"));
        let io = |source| Error::Io {
            path: log.clone(),
            source,
        };
        let file = std::fs::File::create(&log).map_err(io)?;
        let stdout = if pipe {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone().map_err(io)?)
        };
        cmd.stdin(stdin).stdout(stdout).stderr(Stdio::from(file));
        // SAFETY: prctl and getppid are async-signal-safe and touch only the new process.
        unsafe {
            let parent = libc::getpid();
            cmd.pre_exec(move || {
                // Drop destructors do not run when the test process is killed: the kernel
                // kills the child instead.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            name: name.to_string(),
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let stdout = child.stdout.take();
        let proc = Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        };
        Ok((proc, stdout))
    }

    /// The short name it was spawned with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) unless the process was already reaped.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            send_signal(child.id(), signal);
        }
    }

    /// Waits up to `limit` for the process to exit; its exit status when it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Waits up to `limit` until this process listens on TCP `port`; fails at once when it
    /// exits first (typically: the port was taken), so that [`crate::on_free_port`] can try
    /// another port.
    pub fn wait_listening(&mut self, port: u16, limit: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + limit;
        loop {
            if crate::listens_on(self.pid(), port) {
                return Ok(());
            }
            let why = if let Some(status) = self.wait_exit(Duration::ZERO) {
                format!("exited ({status}) before listening on port {port}")
            } else if Instant::now() >= deadline {
                format!("not listening on port {port} within {limit:?}")
            } else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            return Err(Error::NotReady {
                name: self.name.clone(),
                why,
                log_tail: self.log_tail(10),
            });
        }
    }

    /// Kills the process and reaps it now.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of {} ({}) ----\n{}",
                self.name,
                self.log.display(),
                self.log_tail(TAIL_ON_PANIC)
            );
        }
    }
}

/// Sends `signal` to process `pid` (one this process started, or a child of one).
pub fn send_signal(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory effects; a stale pid gets ESRCH.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Reads `stdout` until a line starting with `prefix` and returns its `key=addr` pairs
/// (`srs-proxy listening rtmp=127.0.0.1:1935 ...`). The rest of the output is drained in the
/// background so the child never blocks on the pipe.
pub fn read_listening(
    stdout: ChildStdout,
    prefix: &'static str,
    limit: Duration,
) -> Result<HashMap<String, SocketAddr>, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.starts_with(prefix) => {
                    let _ = tx.send(line.clone());
                    let _ = std::io::copy(&mut reader, &mut std::io::sink());
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    let line = rx.recv_timeout(limit).map_err(|_| Error::NoListening {
        prefix: prefix.to_string(),
        limit,
    })?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|a| (k.to_string(), a)))
        .collect())
}

/// Reads and discards a child's stdout in the background, so it never blocks on the pipe.
pub fn drain(stdout: ChildStdout) {
    std::thread::spawn(move || {
        let mut stdout = stdout;
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TempDir;

    /// True while `pid` runs (a zombie, dead but not reaped, does not).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
            .unwrap_or(false)
    }

    fn sleeper(dir: &Path) -> Proc {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; echo warning >&2; exec sleep 30"]);
        Proc::spawn("sleeper", cmd, dir)
    }

    #[test]
    fn killed_on_drop_with_output_in_its_log() {
        let dir = TempDir::new("proc-drop");
        let proc = sleeper(&dir);
        let pid = proc.pid();
        crate::wait_until(Duration::from_secs(5), "output", || {
            proc.log_tail(1) == "warning"
        });
        assert_eq!(proc.log_text(), "started\nwarning\n");
        assert!(alive(pid));
        drop(proc);
        assert!(!alive(pid));
    }

    #[test]
    fn dies_with_the_thread_that_spawned_it_without_drop() {
        let dir = TempDir::new("proc-deathsig");
        let path = dir.path().to_path_buf();
        let pid = std::thread::spawn(move || {
            let proc = sleeper(&path);
            let pid = proc.pid();
            // As if the test process were killed: no destructor runs.
            std::mem::forget(proc);
            pid
        })
        .join()
        .unwrap();
        crate::wait_until(Duration::from_secs(5), "child killed", || !alive(pid));
    }

    #[test]
    fn listening_line_is_parsed() {
        let dir = TempDir::new("proc-listening");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo hello; echo 'x listening rtmp=127.0.0.1:1935 api=[::1]:80 bad=z'; sleep 30",
        ]);
        let (_proc, stdout) = Proc::spawn_piped("lister", cmd, &dir);
        let pairs = read_listening(stdout, "x listening", Duration::from_secs(5)).unwrap();
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert_eq!(pairs["rtmp"], "127.0.0.1:1935".parse().unwrap());
        assert_eq!(pairs["api"], "[::1]:80".parse().unwrap());
    }
}
