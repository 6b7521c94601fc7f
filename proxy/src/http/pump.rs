//! Moving an HTTP-FLV/TS response body from the origin's socket to the client's as a layer-4
//! relay (docs/design.md §6.2): no HTTP work per chunk beyond the chunked-framing tracker,
//! backpressure by socket readiness (the origin is read only when nothing waits for the
//! client), bytes counted on the session as they go, and the progress timeout.
//!
//! Two ways to move bytes:
//! - *copy*: read into a per-thread 32 KiB scratch buffer and write to the client at once; only
//!   what the client did not take is kept, in a buffer of the session's own that is freed once
//!   sent, so an idle or keeping-up session holds no buffer;
//! - *splice* (Linux, `PROXY_HTTP_SPLICE=on`, framing passed unchanged): splice(2) from the
//!   origin socket into a pipe and from the pipe to the client socket, no copy to user space.
//!   A session holds a pipe only while bytes are in it; drained pipes go back to a small pool
//!   (as haproxy does), so ten thousand mostly idle sessions do not hold twenty thousand
//!   descriptors. Of a chunked body only chunk data the tracker already knows of is spliced:
//!   each size line is read by the copy path (with the small chunks that follow it), and the
//!   rest of a chunk of 4 KiB or more goes by splice; anything when no pipe can be had takes the
//!   copy path.
//!
//! On the copy path, reads that return less than asked and writes that take less than offered
//! mark the socket not ready inside the same readiness check (`try_io`), so a drained socket
//! costs no extra `EAGAIN` call, without losing a wake-up: readiness that arrives meanwhile is
//! newer and kept.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use socket2::SockRef;
use srs_http1::{ChunkedBody, ChunkedError, Piece};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::session::Session;

/// Bytes read from the origin at once on the copy path: a keyframe of 100 KB takes four reads.
const COPY_CHUNK: usize = 32 * 1024;
/// Bytes asked of one splice into the pipe (the default pipe capacity on Linux).
const PIPE_CHUNK: usize = 64 * 1024;
/// Shorter rests of a chunk take the copy path: two splices cost more than copying a few
/// kilobytes.
const SPLICE_MIN: u64 = 4096;
/// Bytes of a pipelined next request kept while a response runs (the head bound).
const MAX_PIPELINED: usize = srs_common::http::MAX_HEAD_SIZE;

thread_local! {
    /// The copy path's read buffer: filled and written out within one call, never across an
    /// await, so one per worker thread serves every session.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; COPY_CHUNK].into_boxed_slice());
}

/// How the origin's body is delimited and how it reaches the client.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// Exactly this many bytes, passed unchanged (`Content-Length` both ways).
    Length(u64),
    /// Chunked, passed unchanged; the tracker finds where it ends.
    Chunked(ChunkedBody),
    /// Chunked from the origin, sent without its framing: the client reads until close (an
    /// HTTP/1.0 client).
    Dechunk(ChunkedBody),
    /// Until the origin closes, passed unchanged; the client reads until close.
    UntilClose,
}

impl Framing {
    /// Whether bytes pass unchanged, so splice may move them.
    fn passes_unchanged(&self) -> bool {
        !matches!(self, Framing::Dechunk(_))
    }
}

/// How a body relay ended.
#[derive(Debug)]
pub enum End {
    /// The whole body reached the client.
    Complete,
    /// The origin closed before the body was complete.
    OriginClosed,
    /// Reading the origin failed.
    OriginError(io::Error),
    /// The origin's chunked framing is broken.
    BadChunk(ChunkedError),
    /// The client closed or reset its connection.
    ClientGone,
    /// No progress for the idle timeout; the reason says which side.
    Stalled(String),
}

impl End {
    /// The reason logged with "session ended".
    pub fn reason(&self) -> String {
        match self {
            End::Complete => "origin ended the stream".to_string(),
            End::OriginClosed => "origin closed before the end of the body".to_string(),
            End::OriginError(e) => format!("origin error: {e}"),
            End::BadChunk(e) => format!("origin error: {e}"),
            End::ClientGone => "client went away".to_string(),
            End::Stalled(reason) => reason.clone(),
        }
    }
}

/// Which readiness a relay waits for besides the client's read side and the timer.
#[derive(Clone, Copy)]
enum Want {
    OriginRead,
    ClientWrite,
}

/// One body relay from `origin` to `client`.
pub struct Pump<'a> {
    origin: &'a TcpStream,
    client: &'a TcpStream,
    framing: Framing,
    session: &'a Session,
    idle: Duration,
    splice: bool,
    /// Body bytes the client has not taken yet (copy path), from `held_at`.
    held: Vec<u8>,
    held_at: usize,
    /// The pipe holding `in_pipe` spliced bytes the client has not taken yet.
    pipe: Option<Pipe>,
    in_pipe: usize,
    /// The body is complete once `held` and the pipe are empty.
    done: bool,
    /// The origin closed before the body was complete.
    cut: bool,
    /// When bytes last moved.
    last: Instant,
    /// Bytes sent to the client.
    sent: u64,
    /// Of them, bytes spliced.
    spliced: u64,
    /// What the client sent meanwhile (a pipelined next request); kept for keep-alive.
    from_client: Vec<u8>,
}

impl<'a> Pump<'a> {
    /// A relay of the body that starts with `start` (bytes read with the response head) and
    /// goes on on `origin`; `splice` when splice(2) may be tried.
    pub fn new(
        origin: &'a TcpStream,
        client: &'a TcpStream,
        framing: Framing,
        session: &'a Session,
        idle: Duration,
        splice: bool,
    ) -> Pump<'a> {
        Pump {
            origin,
            client,
            splice: splice && framing.passes_unchanged() && cfg!(target_os = "linux"),
            framing,
            session,
            idle,
            held: Vec::new(),
            held_at: 0,
            pipe: None,
            in_pipe: 0,
            done: false,
            cut: false,
            last: Instant::now(),
            sent: 0,
            spliced: 0,
            from_client: Vec::new(),
        }
    }

    /// Bytes sent to the client so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Of [`Pump::sent`], the bytes that went by splice(2).
    pub fn spliced(&self) -> u64 {
        self.spliced
    }

    /// What the client sent during the body (the start of its next request).
    pub fn into_pipelined(self) -> Vec<u8> {
        self.from_client
    }

    /// Relays `start`, then the rest of the body, until it is complete or the relay fails.
    pub async fn run(&mut self, start: &mut [u8]) -> End {
        if matches!(self.framing, Framing::Length(0)) {
            self.done = true;
        }
        if !start.is_empty() {
            match self.frame(start) {
                Ok(n) => self.hold(&start[..n]),
                Err(e) => return End::BadChunk(e),
            }
        }
        let sleep = tokio::time::sleep(self.idle);
        tokio::pin!(sleep);
        loop {
            if self.pending() {
                match self.flush() {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Err(end) = self.wait(Want::ClientWrite, sleep.as_mut()).await {
                            return end;
                        }
                        continue;
                    }
                    Err(_) => return End::ClientGone,
                }
            }
            if self.done {
                return End::Complete;
            }
            if self.cut {
                return End::OriginClosed;
            }
            match self.fill() {
                // A session whose origin and client both keep up never waits: let the
                // runtime's budget hand the worker to other sessions now and then.
                Ok(true) => tokio::task::coop::consume_budget().await,
                Ok(false) => {
                    if let Err(end) = self.wait(Want::OriginRead, sleep.as_mut()).await {
                        return end;
                    }
                }
                Err(end) => return end,
            }
        }
    }

    fn pending(&self) -> bool {
        self.held_at < self.held.len() || self.in_pipe > 0
    }

    /// Sends what waits for the client; `Ok(true)` when all of it went.
    fn flush(&mut self) -> io::Result<bool> {
        while self.held_at < self.held.len() {
            let n = match write_some(self.client, &self.held[self.held_at..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            self.held_at += n;
            self.count(n);
        }
        if !self.held.is_empty() {
            // Drained: a session that keeps up holds no buffer.
            self.held = Vec::new();
            self.held_at = 0;
        }
        while self.in_pipe > 0 {
            let Some(pipe) = &self.pipe else { break };
            let n = match splice_from_pipe(pipe, self.client, self.in_pipe) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            self.in_pipe -= n;
            self.spliced += n as u64;
            self.count(n);
        }
        if let Some(pipe) = self.pipe.take() {
            Pipe::give(pipe);
        }
        Ok(true)
    }

    fn count(&mut self, n: usize) {
        if n > 0 {
            self.sent += n as u64;
            self.session.sent_to_client(n as u64);
            self.last = Instant::now();
        }
    }

    /// Takes more of the body from the origin (nothing waits for the client); `Ok(false)`
    /// when the origin has nothing now.
    fn fill(&mut self) -> Result<bool, End> {
        if self.splice {
            if let Some(len) = self.splice_run() {
                return self.splice_in(len);
            }
        }
        self.copy()
    }

    /// How many bytes to splice next; `None` for the copy path.
    fn splice_run(&self) -> Option<usize> {
        let run = match &self.framing {
            Framing::Length(left) => *left,
            Framing::UntilClose => PIPE_CHUNK as u64,
            // Only the rest of a chunk the copy path already saw the size of: the next size
            // line must be read anyway, and a read of it takes small chunks with it.
            Framing::Chunked(body) if body.data_left() >= SPLICE_MIN => body.data_left(),
            Framing::Chunked(_) | Framing::Dechunk(_) => return None,
        };
        Some(run.min(PIPE_CHUNK as u64) as usize)
    }

    /// Splices up to `len` body bytes from the origin into a pipe.
    fn splice_in(&mut self, len: usize) -> Result<bool, End> {
        let pipe = match self.pipe.take() {
            Some(pipe) => pipe,
            None => match Pipe::take() {
                Ok(pipe) => pipe,
                // Out of descriptors, or no pipes here: copy instead.
                Err(_) => return self.copy(),
            },
        };
        let moved = splice_to_pipe(self.origin, &pipe, len);
        let n = match moved {
            Ok(0) => {
                Pipe::give(pipe);
                self.origin_closed();
                return Ok(true);
            }
            Ok(n) => n,
            Err(e) => {
                Pipe::give(pipe);
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(false),
                    // This socket pair cannot be spliced: copy for the rest of the body.
                    _ if e.raw_os_error() == Some(libc::EINVAL) => {
                        self.splice = false;
                        self.copy()
                    }
                    _ => Err(End::OriginError(e)),
                };
            }
        };
        self.pipe = Some(pipe);
        self.in_pipe = n;
        self.last = Instant::now();
        match &mut self.framing {
            Framing::Length(left) => {
                *left -= n as u64;
                self.done = *left == 0;
            }
            // Chunk data only (`splice_run`).
            Framing::Chunked(body) => body.skip(n as u64),
            Framing::UntilClose | Framing::Dechunk(_) => {}
        }
        Ok(true)
    }

    /// Copies what the origin has (up to [`COPY_CHUNK`]) to the client; `Ok(false)` when the
    /// origin has nothing now.
    fn copy(&mut self) -> Result<bool, End> {
        let want = match self.framing {
            Framing::Length(left) => (left.min(COPY_CHUNK as u64)) as usize,
            _ => COPY_CHUNK,
        };
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let buf = &mut scratch[..want];
            let n = match read_some(self.origin, buf) {
                Ok(0) => {
                    self.origin_closed();
                    return Ok(true);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(End::OriginError(e)),
            };
            self.last = Instant::now();
            let n = self.frame(&mut buf[..n]).map_err(End::BadChunk)?;
            let mut at = 0;
            while at < n {
                match write_some(self.client, &buf[at..n]) {
                    Ok(k) => {
                        at += k;
                        self.count(k);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return Err(End::ClientGone),
                }
            }
            self.hold(&buf[at..n]);
            Ok(true)
        })
    }

    /// Applies the framing to `buf`, bytes just read from the origin: returns how many of its
    /// first bytes go to the client (the body's bytes; without the chunk framing when
    /// de-chunking) and marks the body done at its end.
    fn frame(&mut self, buf: &mut [u8]) -> Result<usize, ChunkedError> {
        match &mut self.framing {
            Framing::Length(left) => {
                let n = (buf.len() as u64).min(*left);
                *left -= n;
                self.done = *left == 0;
                Ok(n as usize)
            }
            Framing::Chunked(body) => {
                let n = body.feed(buf)?;
                self.done = body.is_done();
                Ok(n)
            }
            Framing::Dechunk(body) => {
                let (mut read, mut written) = (0, 0);
                while read < buf.len() && !body.is_done() {
                    match body.step(&buf[read..])? {
                        Piece::Data(n) => {
                            buf.copy_within(read..read + n, written);
                            written += n;
                            read += n;
                        }
                        Piece::Framing(n) | Piece::End(n) => read += n,
                    }
                }
                self.done = body.is_done();
                Ok(written)
            }
            Framing::UntilClose => Ok(buf.len()),
        }
    }

    /// Keeps `rest`, bytes the client did not take, for [`Pump::flush`].
    fn hold(&mut self, rest: &[u8]) {
        if !rest.is_empty() {
            self.held.extend_from_slice(rest);
        }
    }

    fn origin_closed(&mut self) {
        match self.framing {
            Framing::UntilClose => self.done = true,
            _ => self.cut = true,
        }
    }

    /// Waits until `want` is ready, watching the client's read side (a close, or the start of
    /// its next request) and the progress timeout meanwhile.
    async fn wait(&mut self, want: Want, mut sleep: Pin<&mut Sleep>) -> Result<(), End> {
        poll_fn(|cx| {
            while self.from_client.len() < MAX_PIPELINED {
                match self.client.poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => match self.read_client() {
                        Ok(0) => return Poll::Ready(Err(End::ClientGone)),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Poll::Ready(Err(End::ClientGone)),
                    },
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(End::ClientGone)),
                    Poll::Pending => break,
                }
            }
            let ready = match want {
                Want::OriginRead => self.origin.poll_read_ready(cx),
                Want::ClientWrite => self.client.poll_write_ready(cx),
            };
            if ready.is_ready() {
                // An error shows in the next read or write.
                return Poll::Ready(Ok(()));
            }
            while sleep.as_mut().poll(cx).is_ready() {
                let deadline = self.last + self.idle;
                if Instant::now() >= deadline {
                    let reason = if self.pending() {
                        format!("client took no bytes for {:?}", self.idle)
                    } else {
                        format!("origin sent nothing for {:?}", self.idle)
                    };
                    return Poll::Ready(Err(End::Stalled(reason)));
                }
                // Progress since the timer was set: re-arm it from the last progress, rather
                // than on every move.
                sleep.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }

    /// Reads what the client sent into `from_client`, up to [`MAX_PIPELINED`].
    fn read_client(&mut self) -> io::Result<usize> {
        let room = MAX_PIPELINED - self.from_client.len();
        let mut buf = [0u8; 1024];
        let n = self.client.try_read(&mut buf[..room.min(1024)])?;
        self.from_client.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Reads from `socket`; a short read marks it not ready (see the module docs).
fn read_some(socket: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    let res = socket.try_io(Interest::READABLE, || {
        got = (&*SockRef::from(socket)).read(buf)?;
        drained(got, buf.len())
    });
    settle(res, got)
}

/// Writes to `socket`; a short write marks it not ready.
fn write_some(socket: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut put = 0;
    let res = socket.try_io(Interest::WRITABLE, || {
        put = (&*SockRef::from(socket)).write(buf)?;
        drained(put, buf.len())
    });
    settle(res, put)
}

/// `WouldBlock` (clearing readiness) after a partial transfer, so the caller waits next time.
fn drained(done: usize, asked: usize) -> io::Result<()> {
    if done > 0 && done < asked {
        Err(io::ErrorKind::WouldBlock.into())
    } else {
        Ok(())
    }
}

/// The bytes moved: a partial transfer's `WouldBlock` is its count, not an error.
fn settle(res: io::Result<()>, done: usize) -> io::Result<usize> {
    match res {
        Ok(()) => Ok(done),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && done > 0 => Ok(done),
        Err(e) => Err(e),
    }
}

/// Idle pipes kept for reuse; more are closed when given back.
const POOL_IDLE: usize = 64;

/// Drained pipes, shared by every session.
static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// A pipe for splice(2): its read and write ends, both non-blocking.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    /// A pipe from the pool, or a new one.
    ///
    /// Errors: `pipe2`'s (out of descriptors); `Unsupported` where there is no splice.
    fn take() -> io::Result<Pipe> {
        let pooled = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(pipe) => Ok(pipe),
            None => Pipe::new(),
        }
    }

    /// Gives back a drained pipe.
    fn give(pipe: Pipe) {
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_IDLE {
            pool.push(pipe);
        }
    }

    #[cfg(target_os = "linux")]
    fn new() -> io::Result<Pipe> {
        use std::os::fd::FromRawFd;
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Pipe { read, write })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> io::Result<Pipe> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// splice(2) of up to `len` bytes between two descriptors, without blocking on the pipe.
#[cfg(target_os = "linux")]
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open for the call (borrowed); no offsets (sockets and pipes
    // have none) and no memory are passed.
    let n = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn splice(_: BorrowedFd<'_>, _: BorrowedFd<'_>, _: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Splices up to `len` bytes from `socket` into the empty `pipe`. A short run does not mark
/// the socket drained: splice also stops when the pipe's slots (one per socket buffer) run out.
fn splice_to_pipe(socket: &TcpStream, pipe: &Pipe, len: usize) -> io::Result<usize> {
    socket.try_io(Interest::READABLE, || {
        splice(socket.as_fd(), pipe.write.as_fd(), len)
    })
}

/// Splices up to `len` bytes from `pipe` to `socket`.
fn splice_from_pipe(pipe: &Pipe, socket: &TcpStream, len: usize) -> io::Result<usize> {
    socket.try_io(Interest::WRITABLE, || {
        splice(pipe.read.as_fd(), socket.as_fd(), len)
    })
}
