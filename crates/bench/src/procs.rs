//! Processes the benchmark starts (srs-origin, srs-proxy, haproxy, heaptrack) and what `/proc`
//! says about them. Every process is killed and reaped when its [`Proc`] is dropped, so an error
//! or Ctrl-C (which drops the running future) never leaves one behind.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// A child process, killed and reaped on drop; stderr (and stdout when not piped) go to a log.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stderr to `<log_dir>/<name>.log` and stdout piped to the caller.
    ///
    /// Must be called from the thread that lives as long as the benchmark (the main thread):
    /// the child is told to die with that thread.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log_dir: &Path,
    ) -> anyhow::Result<(Proc, ChildStdout)> {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file));
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the new process, so the
        // child dies even if srs-bench is killed with SIGKILL and cannot run its destructors.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{name}: no stdout pipe"))?;
        Ok((
            Proc {
                name: name.to_string(),
                child: Some(child),
                log,
            },
            stdout,
        ))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Sends `signal` to `pid` (this process or one of its children) and waits up to `limit`
    /// for this process to exit; it is killed on drop if it did not.
    pub fn stop(&mut self, pid: u32, signal: i32, limit: Duration) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        // SAFETY: kill(2) on a process we started (or its child), which has not been reaped.
        unsafe {
            libc::kill(pid as i32, signal);
        }
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not exit within {limit:?}; killing it", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads `stdout` until a line starting with `prefix` and returns its `key=addr` pairs. The
/// rest of the output is drained in the background so the child never blocks on the pipe.
pub fn read_listening(
    stdout: ChildStdout,
    prefix: &'static str,
    limit: Duration,
) -> anyhow::Result<HashMap<String, SocketAddr>> {
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
    let line = rx
        .recv_timeout(limit)
        .map_err(|_| anyhow!("no `{prefix}` line within {limit:?}"))?;
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

/// The address under `key` of a listening line.
pub fn addr(pairs: &HashMap<String, SocketAddr>, key: &str) -> anyhow::Result<SocketAddr> {
    pairs
        .get(key)
        .copied()
        .ok_or_else(|| anyhow!("no {key}= in the listening line"))
}

/// A free port on 127.0.0.1 (bound, then released), for servers that cannot take port 0.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// CPU time (user + system) a process has used, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let tick = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i - 3)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    Ok((tick(14)? + tick(15)?) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// A `Vm*` line of `/proc/<pid>/status` (e.g. `VmHWM`, `VmRSS`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

/// Busy CPU time of the whole machine (all cores) so far, in seconds.
pub fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if ticks.len() < 5 {
        bail!("bad /proc/stat");
    }
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks[3] - ticks[4];
    Ok(busy as f64 / clock_ticks())
}

/// The pid of `parent`'s child named `comm` (a process started through a wrapper script).
pub fn child_named(parent: u32, comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && name == comm).then_some(pid)
        })
}

/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit; returns the new limit.
/// Children (srs-origin, srs-proxy, haproxy) inherit it.
pub fn raise_nofile() -> anyhow::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to / read from the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}
