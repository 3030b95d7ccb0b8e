//! Starting a worker program with `posix_spawn`: the SPAWN workers and the
//! fork server. Safe in any host, multithreaded or not: glibc's
//! `posix_spawn` runs no host code in the child (it clones with a shared
//! address space, applies the file actions and execs), so no lock another
//! host thread holds can be taken there.
//!
//! What the program gets: its argv; the environment prepared once when the
//! pool started (the host's, or an empty one, plus the config's changes, plus
//! the `BILLIARD_*` variables naming its fds); stdio; the fds it is passed,
//! renumbered to the lowest free numbers from 3; the keep list; nothing
//! else (unless inherited fds are kept). Its own process group, every
//! signal at its default action and an empty signal mask.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::{ENV_MAX_FRAME, ENV_POOL_PID, ENV_PREFIX, ENV_PROTOCOL, PROTOCOL_VERSION};
use crate::sys::{self, cvt};

/// A worker program, ready to be spawned again and again. Built in the
/// host thread that creates the pool; used by the supervisor thread.
pub(crate) struct Program {
    /// The program's absolute path (resolved once).
    path: CString,
    argv: Vec<CString>,
    /// `NAME=value` strings: the environment without the per-spawn fd vars.
    env: Vec<CString>,
    cwd: Option<CString>,
    close_inherited_fds: bool,
    keep_fds: Vec<RawFd>,
}

impl Program {
    /// Resolves the program and copies the environment. `Error::Spawn` when
    /// the program cannot be found.
    pub(crate) fn new(config: &Config) -> Result<Program> {
        let spec = &config.program;
        let Some(name) = spec.argv.first() else {
            return Err(Error::InvalidArgument("no worker program was set".into()));
        };
        let path = resolve(name)?;
        let mut env: Vec<(Vec<u8>, Vec<u8>)> = if spec.env_clear {
            Vec::new()
        } else {
            std::env::vars_os()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .filter(|(k, _)| !k.starts_with(ENV_PREFIX.as_bytes()))
                .collect()
        };
        for (name, value) in &spec.env {
            env.retain(|(k, _)| k.as_slice() != name.as_bytes());
            if let Some(v) = value {
                env.push((name.as_bytes().to_vec(), v.as_bytes().to_vec()));
            }
        }
        // SAFETY: getpid has no preconditions.
        let pool_pid = unsafe { libc::getpid() };
        let mut env: Vec<CString> = env
            .into_iter()
            .filter_map(|(mut k, v)| {
                k.push(b'=');
                k.extend_from_slice(&v);
                CString::new(k).ok()
            })
            .collect();
        for (k, v) in [
            (ENV_PROTOCOL, PROTOCOL_VERSION.to_string()),
            (ENV_MAX_FRAME, config.max_frame.to_string()),
            (ENV_POOL_PID, pool_pid.to_string()),
        ] {
            env.push(env_var(k, &v));
        }
        Ok(Program {
            path,
            argv: spec.argv.clone(),
            env,
            cwd: spec.cwd.clone(),
            close_inherited_fds: config.close_inherited_fds,
            keep_fds: config.keep_fds.clone(),
        })
    }

    /// Spawns the program, passing each `(variable, fd)`: the child gets a
    /// copy of `fd` under a new number, named in `variable`. Returns the
    /// child's pid; it is our child, to be reaped by the caller.
    pub(crate) fn spawn(&self, pass: &[(&str, RawFd)]) -> io::Result<libc::pid_t> {
        let keep: Vec<RawFd> = if self.close_inherited_fds {
            let mut k: Vec<RawFd> = self
                .keep_fds
                .iter()
                .copied()
                .filter(|&fd| fd > 2 && sys::fd_is_open(fd))
                .collect();
            k.sort_unstable();
            k.dedup();
            k
        } else {
            Vec::new()
        };
        let targets = lowest_free(pass.len(), &keep);
        let top = targets.iter().chain(&keep).copied().max().unwrap_or(2);
        // A source numbered at or below a target could be overwritten by an
        // earlier dup2 in the child: such sources are copied above first.
        let mut lifted: Vec<OwnedFd> = Vec::new();
        let mut sources = Vec::with_capacity(pass.len());
        for &(_, fd) in pass {
            if fd <= top {
                // SAFETY: duplicating an fd the caller holds open.
                let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, top + 1) };
                cvt(copy as libc::c_long)?;
                // SAFETY: a fresh fd we own.
                lifted.push(unsafe { OwnedFd::from_raw_fd(copy) });
                sources.push(copy);
            } else {
                sources.push(fd);
            }
        }
        let fd_vars: Vec<CString> = pass
            .iter()
            .zip(&targets)
            .map(|(&(name, _), target)| env_var(name, &target.to_string()))
            .collect();
        let actions = FileActions::new()?;
        if let Some(dir) = &self.cwd {
            actions.check(unsafe {
                // SAFETY: actions is initialised; dir is a valid C string.
                libc::posix_spawn_file_actions_addchdir_np(actions.as_ptr(), dir.as_ptr())
            })?;
        }
        for (&source, &target) in sources.iter().zip(&targets) {
            // SAFETY: as above; dup2 in the child clears CLOEXEC on target.
            actions.check(unsafe {
                libc::posix_spawn_file_actions_adddup2(actions.as_ptr(), source, target)
            })?;
        }
        if self.close_inherited_fds {
            for &fd in &keep {
                // dup2 onto itself clears CLOEXEC (glibc 2.29 and later).
                // SAFETY: as above.
                actions.check(unsafe {
                    libc::posix_spawn_file_actions_adddup2(actions.as_ptr(), fd, fd)
                })?;
            }
            for fd in 3..=top {
                if !targets.contains(&fd) && keep.binary_search(&fd).is_err() {
                    // An fd that is not open is skipped by glibc.
                    // SAFETY: as above.
                    actions.check(unsafe {
                        libc::posix_spawn_file_actions_addclose(actions.as_ptr(), fd)
                    })?;
                }
            }
            // SAFETY: as above.
            actions.check(unsafe {
                libc::posix_spawn_file_actions_addclosefrom_np(actions.as_ptr(), top + 1)
            })?;
        }
        let attr = SpawnAttr::new()?;
        let argv = null_terminated(&self.argv);
        let envp = null_terminated(self.env.iter().chain(&fd_vars));
        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid for the call; the strings outlive it.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                actions.as_ptr(),
                attr.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        drop(lifted);
        if rc != 0 {
            let err = io::Error::from_raw_os_error(rc);
            return Err(io::Error::new(
                err.kind(),
                format!("{}: {err}", self.path.to_string_lossy()),
            ));
        }
        Ok(pid)
    }
}

/// `NAME=value` as a C string (names and values here never hold NUL).
fn env_var(name: &str, value: &str) -> CString {
    CString::new(format!("{name}={value}")).unwrap_or_default()
}

/// The `n` lowest fd numbers from 3 that are not in `keep` (sorted).
fn lowest_free(n: usize, keep: &[RawFd]) -> Vec<RawFd> {
    (3..)
        .filter(|fd| keep.binary_search(fd).is_err())
        .take(n)
        .collect()
}

/// Pointers to `strings`, NULL-terminated, for argv and envp.
fn null_terminated<'a>(strings: impl IntoIterator<Item = &'a CString>) -> Vec<*mut libc::c_char> {
    strings
        .into_iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// The program's absolute path: a name with a `/` is taken relative to the
/// host's working directory (not the workers' `cwd`), one without is
/// searched in the host's `PATH`.
fn resolve(name: &CStr) -> Result<CString> {
    let bytes = name.to_bytes();
    let not_found = |why: &str| {
        Error::Spawn(format!(
            "could not start worker program {}: {why}",
            name.to_string_lossy()
        ))
    };
    let path: PathBuf = if bytes.contains(&b'/') {
        let p = Path::new(OsStr::from_bytes(bytes));
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| not_found(&format!("no working directory: {e}")))?
                .join(p)
        }
    } else {
        let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        std::env::split_paths(&search)
            .map(|dir| dir.join(OsStr::from_bytes(bytes)))
            .find(|p| is_executable(p))
            .ok_or_else(|| not_found("not found in PATH (No such file or directory)"))?
    };
    CString::new(path.as_os_str().as_bytes()).map_err(|_| not_found("the path holds a NUL byte"))
}

fn is_executable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access only reads the path.
    p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

/// `posix_spawn_file_actions_t`, destroyed on drop.
struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        // SAFETY: zeroed storage initialised by the call below.
        let mut a = Box::new(unsafe { std::mem::zeroed::<libc::posix_spawn_file_actions_t>() });
        // SAFETY: a points to writable storage.
        let rc = unsafe { libc::posix_spawn_file_actions_init(&mut *a) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(FileActions(a))
    }

    fn as_ptr(&self) -> *mut libc::posix_spawn_file_actions_t {
        &*self.0 as *const _ as *mut _
    }

    fn check(&self, rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in new().
        unsafe { libc::posix_spawn_file_actions_destroy(&mut *self.0) };
    }
}

/// `posix_spawnattr_t` for a worker: its own process group, every signal
/// at its default action, an empty mask.
struct SpawnAttr(Box<libc::posix_spawnattr_t>);

impl SpawnAttr {
    fn new() -> io::Result<SpawnAttr> {
        // SAFETY: zeroed storage initialised by posix_spawnattr_init; the
        // sets are plain data filled by sigfillset/sigemptyset.
        unsafe {
            let mut a = Box::new(std::mem::zeroed::<libc::posix_spawnattr_t>());
            let rc = libc::posix_spawnattr_init(&mut *a);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            let attr = SpawnAttr(a);
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigemptyset(&mut none);
            let p = attr.as_ptr();
            let flags = libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGDEF
                | libc::POSIX_SPAWN_SETSIGMASK;
            for rc in [
                libc::posix_spawnattr_setflags(p, flags as libc::c_short),
                libc::posix_spawnattr_setpgroup(p, 0),
                libc::posix_spawnattr_setsigdefault(p, &all),
                libc::posix_spawnattr_setsigmask(p, &none),
            ] {
                if rc != 0 {
                    return Err(io::Error::from_raw_os_error(rc));
                }
            }
            Ok(attr)
        }
    }

    fn as_ptr(&self) -> *mut libc::posix_spawnattr_t {
        &*self.0 as *const _ as *mut _
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised in new().
        unsafe { libc::posix_spawnattr_destroy(&mut *self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_fds_take_the_lowest_numbers_around_the_keep_list() {
        assert_eq!(lowest_free(3, &[]), vec![3, 4, 5]);
        assert_eq!(lowest_free(3, &[4, 6]), vec![3, 5, 7]);
    }

    #[test]
    fn a_program_name_is_searched_in_path() {
        let sh = resolve(c"sh").unwrap();
        assert!(sh.to_bytes().starts_with(b"/"), "{sh:?}");
        let err = resolve(c"no-such-billiard-program").unwrap_err();
        assert!(matches!(err, Error::Spawn(m) if m.contains("not found in PATH")));
    }
}
