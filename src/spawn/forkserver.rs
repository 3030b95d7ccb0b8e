//! The FORKSERVER start method, pool side. The worker program is started
//! once as a fork server (`BILLIARD_FORKSERVER_FD` names its end of a
//! `SOCK_SEQPACKET` control socket). Once initialized it says hello; then
//! for each worker the pool creates the channel and area as for FORK,
//! sends the worker's three fds in a FORK request, and gets back the pid and
//! pidfd of the worker the server forked.
//!
//! The workers are the server's children, not the host's: the server reaps
//! them and reports each exit status (EXITED), so the pool tells a worker's
//! exit code or signal exactly as with FORK. The pool signals them through
//! their pidfds. If the server dies, its workers die with it (their
//! parent-death signal), the pool accounts for their tasks as for any
//! death, and starts a new server.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::program::Program;
use super::{Channel, LaunchEvent, Launcher, Reaper, Started};
use crate::adopted;
use crate::config::{Config, ServerFork};
use crate::error::{Error, Result};
use crate::protocol::{
    self, control_word, ENV_FORKSERVER_FD, KIND_EXITED, KIND_FATAL, KIND_FORK, KIND_FORKED,
    KIND_FORK_FAILED, KIND_SERVER_HELLO, PROTOCOL_VERSION,
};
use crate::sys::{self, ExitStatus};
use crate::watch::{Epoll, Token, INPUT};

/// How long a running server may take to answer a FORK request.
const FORK_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit once its control socket is closed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A FORK request's answer: the worker's pid and pidfd, or why not.
type ForkReply = io::Result<(libc::pid_t, Option<OwnedFd>)>;

/// Where fork servers come from.
enum Source {
    /// The worker program, spawned in FORKSERVER mode.
    Program(Program),
    /// The host forks each one itself ([`Config::fork_server_by_host`]).
    Host(ServerFork),
}

/// A running fork server.
struct Server {
    number: u32,
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    control: OwnedFd,
    /// Its control socket's entry in the table of host-forked servers
    /// (freed once it is reaped).
    _registered: Option<adopted::Registered>,
    /// It said hello: it takes FORK requests.
    ready: bool,
    /// What it said in a FATAL message, if anything.
    last_words: Option<String>,
}

/// Starts workers through a fork server, starting the server when needed.
pub(crate) struct ForkServerLauncher {
    source: Source,
    max_frame: usize,
    use_pidfd: bool,
    /// The pool's epoll set, where the server's fds are watched.
    epoll: Arc<Epoll>,
    server: Option<Server>,
    servers_started: u32,
    /// Events read while waiting for a FORK reply, for the next `events()`.
    pending: Vec<LaunchEvent>,
}

impl ForkServerLauncher {
    /// A launcher for `config`. A server the host forks itself is forked
    /// here, on the thread that creates the pool.
    pub(crate) fn new(config: &Config, epoll: Arc<Epoll>) -> Result<ForkServerLauncher> {
        let source = match &config.server_fork {
            Some(fork) => Source::Host(fork.clone()),
            None => Source::Program(Program::new(config)?),
        };
        let mut launcher = ForkServerLauncher {
            source,
            max_frame: config.max_frame,
            use_pidfd: config.use_pidfd,
            epoll,
            server: None,
            servers_started: 0,
            pending: Vec::new(),
        };
        if matches!(launcher.source, Source::Host(_)) {
            launcher
                .start_server()
                .map_err(|e| Error::Spawn(format!("the fork server could not start: {e}")))?;
        }
        Ok(launcher)
    }

    /// Starts a server (spawns the program, or asks the host to fork one)
    /// and watches its control socket and pidfd.
    fn start_server(&mut self) -> io::Result<()> {
        let (ours, theirs) = sys::seqpacket_pair()?;
        let (pid, registered) = match &self.source {
            Source::Program(program) => (
                program.spawn(&[(ENV_FORKSERVER_FD, theirs.as_raw_fd())])?,
                None,
            ),
            Source::Host(fork) => {
                let registered =
                    adopted::register(ours.as_raw_fd(), theirs.as_raw_fd(), self.max_frame)
                        .ok_or_else(|| {
                            io::Error::other(format!(
                                "more than {} host-forked fork servers at once",
                                adopted::SLOTS
                            ))
                        })?;
                let pid = fork(theirs.as_raw_fd()).map_err(io::Error::other)?;
                (pid, Some(registered))
            }
        };
        drop(theirs);
        let pidfd = super::watch_child(pid, self.use_pidfd)?;
        for fd in std::iter::once(ours.as_raw_fd()).chain(pidfd.as_ref().map(|p| p.as_raw_fd())) {
            self.epoll.add(fd, INPUT, Token::Launcher)?;
        }
        self.servers_started += 1;
        self.server = Some(Server {
            number: self.servers_started,
            pid,
            pidfd,
            control: ours,
            _registered: registered,
            ready: false,
            last_words: None,
        });
        Ok(())
    }

    /// Applies one control message from the server. Returns a FORK reply.
    fn apply(&mut self, message: &[u8], mut fds: Vec<OwnedFd>) -> Option<ForkReply> {
        let server = self.server.as_mut()?;
        let decoded = protocol::decode_control(message);
        match decoded {
            Some((KIND_SERVER_HELLO, body)) => {
                let version = control_word(body, 0).unwrap_or(0);
                let pid = control_word(body, 1).unwrap_or(0) as libc::pid_t;
                let wrong = if version != PROTOCOL_VERSION {
                    Some(format!(
                        "it speaks protocol version {version}, the pool speaks {PROTOCOL_VERSION}"
                    ))
                } else if pid != server.pid {
                    Some(format!(
                        "its hello names pid {pid}, not its own {}",
                        server.pid
                    ))
                } else {
                    None
                };
                if let Some(wrong) = wrong {
                    server.last_words = Some(wrong);
                    // SAFETY: our own unreaped child.
                    unsafe { libc::kill(server.pid, libc::SIGKILL) };
                } else {
                    server.ready = true;
                    self.pending.push(LaunchEvent::Ready);
                }
                None
            }
            Some((KIND_FATAL, body)) => {
                server.last_words = Some(String::from_utf8_lossy(body).into_owned());
                None
            }
            Some((KIND_EXITED, body)) => {
                let pid = control_word(body, 0).unwrap_or(0) as libc::pid_t;
                let status = control_word(body, 1).unwrap_or(0) as i32;
                self.pending.push(LaunchEvent::Exited {
                    pid,
                    status: sys::decode_status(status),
                });
                None
            }
            Some((KIND_FORKED, body)) => {
                let pid = control_word(body, 0).unwrap_or(0) as libc::pid_t;
                Some(Ok((pid, fds.pop())))
            }
            Some((KIND_FORK_FAILED, body)) => {
                let errno = control_word(body, 0).unwrap_or(0) as i32;
                Some(Err(io::Error::from_raw_os_error(errno)))
            }
            _ => {
                server.last_words =
                    Some("it sent a control message the pool cannot understand".into());
                // SAFETY: our own unreaped child.
                unsafe { libc::kill(server.pid, libc::SIGKILL) };
                None
            }
        }
    }

    /// Reads every message waiting on the control socket (non-blocking).
    /// Returns a FORK reply if one came, and whether the socket ended.
    fn read_control(&mut self, wait: Option<Duration>) -> (Option<ForkReply>, bool) {
        let mut buf = [0u8; 4096];
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            let Some(server) = &self.server else {
                return (None, true);
            };
            let fd = server.control.as_raw_fd();
            let wait_ms = deadline.map_or(0, |d| {
                let left = d.saturating_duration_since(Instant::now());
                left.as_millis().min(i32::MAX as u128) as i32
            });
            if !sys::poll_readable(fd, wait_ms) {
                match deadline {
                    None => return (None, false),
                    Some(d) if Instant::now() >= d => {
                        let timeout = io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the fork server did not answer a FORK request in time",
                        );
                        return (Some(Err(timeout)), false);
                    }
                    Some(_) => continue, // a signal: wait again
                }
            }
            match sys::recv_with_fds(fd, &mut buf) {
                Ok((0, _)) => return (None, true),
                Ok((n, fds)) => {
                    if let Some(reply) = self.apply(&buf[..n], fds) {
                        return (Some(reply), false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (None, false),
                Err(_) => return (None, true),
            }
        }
    }

    /// The server is gone or going: reap it if it has exited, and say so.
    fn check_server(&mut self, ended: bool) {
        let Some(server) = &self.server else {
            return;
        };
        let exited = match &server.pidfd {
            Some(p) => sys::pidfd_exited(p.as_raw_fd()),
            None => ended,
        };
        if !exited {
            if ended {
                // It closed the socket but lives on: it is of no use. Its
                // pidfd reports the end; the socket would report a hang-up
                // again and again.
                let fd = server.control.as_raw_fd();
                self.epoll.remove(fd);
                // SAFETY: our own unreaped child.
                unsafe { libc::kill(server.pid, libc::SIGKILL) };
            }
            return;
        }
        let Some(server) = self.server.take() else {
            return;
        };
        let status = sys::reap_blocking(server.pid);
        let mut why = describe(server.pid, status);
        if let Some(words) = &server.last_words {
            why = format!("{why} (it said: {words})");
        }
        self.pending.push(if server.ready {
            LaunchEvent::ServerLost {
                server: server.number,
                why,
            }
        } else {
            LaunchEvent::StartFailed(format!("{why} before it was ready"))
        });
    }
}

/// Why a FORKED reply was not taken.
enum Refused {
    /// What the server said is false.
    Lie(String),
    /// The worker exited (and was reaped) before it could be checked.
    Gone,
}

/// Checks what a fork server says it forked against what the kernel says:
/// a real pid, a child of the server that leads its own process group.
/// Only then may the pool signal that pid and its group, or set limits on
/// it. Returns a pidfd of the worker: the pool's own (opened before the
/// check, and still alive after it, so the pid was not reused meanwhile),
/// or, where the pool cannot open one (no `pidfd_open` here, as under
/// valgrind), the server's, once `/proc/self/fdinfo` says it is the
/// named pid's; `None` without pidfds. A worker that is gone already is
/// refused too, but is no lie.
fn check_forked(
    pid: libc::pid_t,
    server: libc::pid_t,
    server_pidfd: Option<OwnedFd>,
    use_pidfd: bool,
) -> std::result::Result<Option<OwnedFd>, Refused> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if pid <= 0 || pid == me || pid == server {
        return Err(Refused::Lie(format!(
            "it named pid {pid} as its new worker"
        )));
    }
    let pidfd = match use_pidfd.then(|| sys::pidfd_open(pid)) {
        None => None,
        Some(Ok(fd)) => Some(fd),
        // No such process: a lie, unless the pidfd the server passed says
        // its process was reaped already (a worker that failed at once,
        // which the server reaped before the pool looked). Either way
        // nothing is signalled.
        Some(Err(e)) if e.raw_os_error() == Some(libc::ESRCH) => {
            return Err(
                match server_pidfd.and_then(|fd| sys::pidfd_pid(fd.as_raw_fd())) {
                    Some(-1) => Refused::Gone,
                    _ => Refused::Lie(format!("it named pid {pid}, which does not exist")),
                },
            )
        }
        // The pool cannot open pidfds: the server's, if it is the pid's.
        Some(Err(_)) => match server_pidfd {
            Some(fd) => match sys::pidfd_pid(fd.as_raw_fd()) {
                Some(p) if p == pid => Some(fd),
                Some(-1) => return Err(Refused::Gone),
                other => {
                    return Err(Refused::Lie(format!(
                        "it named pid {pid} but passed a pidfd of {}",
                        other.map_or("no process".into(), |p| format!("pid {p}"))
                    )))
                }
            },
            None => None,
        },
    };
    match sys::parent_and_group(pid) {
        Some((parent, group)) if parent == server && group == pid => {}
        Some((parent, group)) => {
            return Err(Refused::Lie(format!(
                "it named pid {pid}, whose parent is {parent} and process group {group}, not \
                 a child of the server leading its own group"
            )))
        }
        // Gone between the two looks (its pidfd was opened while it ran).
        None if pidfd.is_some() => return Err(Refused::Gone),
        None => {
            return Err(Refused::Lie(format!(
                "it named pid {pid}, which does not exist"
            )))
        }
    }
    if pidfd
        .as_ref()
        .is_some_and(|fd| sys::pidfd_exited(fd.as_raw_fd()))
    {
        return Err(Refused::Gone);
    }
    Ok(pidfd)
}

/// The FATAL message a worker that is gone already left on its results
/// pipe (a failed after-fork hook says why), if any.
fn last_words(channel: &Channel, max_frame: usize) -> Option<String> {
    let mut buf = Vec::with_capacity(4096);
    // Non-blocking: stops when the pipe is empty.
    while buf.len() < 65536 {
        buf.reserve(4096);
        if !matches!(sys::read_into(channel.results.as_raw_fd(), &mut buf), Ok(n) if n > 0) {
            break;
        }
    }
    let mut at = 0;
    while let Ok(Some((frame, used))) = protocol::decode(&buf[at..], max_frame) {
        if let protocol::Frame::Fatal { message } = frame {
            return Some(String::from_utf8_lossy(message).into_owned());
        }
        at += used;
    }
    None
}

/// "the fork server 12 exited with code 3".
fn describe(pid: libc::pid_t, status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("the fork server {pid} exited with code {c}"),
        ExitStatus::Signal(s) => format!(
            "the fork server {pid} was killed by {}",
            sys::signal_name(s)
        ),
        ExitStatus::Unknown => format!("the fork server {pid} ended"),
    }
}

impl Launcher for ForkServerLauncher {
    fn launch(&mut self) -> io::Result<Started> {
        if self.server.is_none() {
            self.start_server()?;
        }
        let (server_number, control) = match &self.server {
            Some(s) if s.ready => (s.number, s.control.as_raw_fd()),
            _ => return Err(io::ErrorKind::WouldBlock.into()),
        };
        let channel = Channel::new(self.max_frame)?;
        let request = protocol::encode_control(KIND_FORK, &[]);
        if sys::send_with_fds(control, &request, &channel.worker_fds()).is_err() {
            // The server is going: events() will say so.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let (reply, ended) = self.read_control(Some(FORK_REPLY_TIMEOUT));
        if ended {
            self.check_server(true);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match reply {
            Some(Ok((pid, server_pidfd))) => {
                let server_pid = self.server.as_ref().map_or(0, |s| s.pid);
                let pidfd = match check_forked(pid, server_pid, server_pidfd, self.use_pidfd) {
                    Ok(pidfd) => pidfd,
                    Err(Refused::Gone) => {
                        let said = last_words(&channel, self.max_frame)
                            .map_or(String::new(), |w| format!(" (it said: {w})"));
                        return Err(io::Error::other(format!(
                            "worker {pid} exited before the pool could take it{said}"
                        )));
                    }
                    Err(Refused::Lie(lie)) => {
                        // Never signal or limit what a server names without
                        // the kernel's word for it: the server is stopped
                        // (its pidfd reports the end) and a new one started.
                        if let Some(s) = &mut self.server {
                            s.last_words = Some(format!("the pool stopped it: {lie}"));
                            // SAFETY: our own unreaped child.
                            unsafe { libc::kill(s.pid, libc::SIGKILL) };
                        }
                        return Err(io::Error::other(format!(
                            "the fork server lied about a worker: {lie}"
                        )));
                    }
                };
                Ok(channel.started(pid, pidfd, Reaper::Server(server_number)))
            }
            Some(Err(e)) => {
                if e.kind() == io::ErrorKind::TimedOut {
                    if let Some(s) = &self.server {
                        // SAFETY: our own unreaped child.
                        unsafe { libc::kill(s.pid, libc::SIGKILL) };
                    }
                }
                Err(io::Error::new(
                    e.kind(),
                    format!("the fork server could not fork a worker: {e}"),
                ))
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn watch(&mut self) {
        let (_, ended) = self.read_control(None);
        self.check_server(ended);
    }

    fn events(&mut self) -> Vec<LaunchEvent> {
        std::mem::take(&mut self.pending)
    }

    fn shutdown(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        let Server {
            pid,
            pidfd,
            control,
            ..
        } = server;
        // End of stream tells the server to reap what is left and exit.
        drop(control);
        let exited = match &pidfd {
            Some(p) => {
                let mut fds = [libc::pollfd {
                    fd: p.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                matches!(
                    sys::poll(&mut fds, SHUTDOWN_GRACE.as_millis() as i32),
                    Ok(1)
                )
            }
            // Without a pidfd: ask waitpid now and then.
            None => {
                let deadline = Instant::now() + SHUTDOWN_GRACE;
                loop {
                    if sys::try_reap(pid).is_some() {
                        return;
                    }
                    if Instant::now() >= deadline {
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        if !exited {
            // SAFETY: our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        sys::reap_blocking(pid);
    }
}

impl Drop for ForkServerLauncher {
    fn drop(&mut self) {
        self.shutdown();
    }
}
