//! The last steps before `execve`: the user from the container's own /etc/passwd and
//! /etc/group, the working directory, resource limits, `no_new_privs`, the identity switch and
//! the capability sets, the seccomp filter, and finding the program on the container's `PATH`.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

use super::{Context, Failure};
use crate::runtime::seccomp::Programs;
use crate::runtime::spec::Process;
use crate::runtime::user::{ExecUser, resolve_user};

/// The `PATH` used when the environment has none (docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process's user from the container's /etc/passwd and /etc/group.
pub(super) fn user(process: &Process) -> Result<ExecUser, Failure> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok();
    let group = std::fs::read_to_string("/etc/group").ok();
    resolve_user(&process.user, &process.additional_groups, passwd.as_deref(), group.as_deref())
        .map_err(|e| Failure(e.to_string()))
}

/// Becomes `process` and execs it. The seccomp filter goes on as runc puts it: with
/// `no_new_privs`, right before `execve`; without, before the capabilities are dropped, since
/// installing a filter then needs CAP_SYS_ADMIN (the identity switch and `chdir` that follow
/// are allowed by docker's profile).
pub(super) fn exec(process: &Process, seccomp: Option<&Programs>) -> Result<Infallible, Failure> {
    let user = user(process)?;
    let mut env = process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    prepare_cwd(&process.cwd)?;
    let Some(name) = process.args.first() else { return Err(Failure("no command specified".into())) };
    let program = find_program(name, &env)?;
    for limit in &process.rlimits {
        let rlim = libc::rlimit { rlim_cur: limit.soft, rlim_max: limit.hard };
        // SAFETY: setrlimit reads one live rlimit struct.
        if unsafe { libc::setrlimit(limit.resource as _, &rlim) } < 0 {
            return Err(Failure(format!("setrlimit({}): {}", limit.resource, nix::Error::last())));
        }
    }
    if process.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    } else if let Some(programs) = seccomp {
        programs.install().context(|| "install the seccomp filter".into())?;
    }
    switch_identity(&user, &process.capabilities)?;
    nix::unistd::chdir(process.cwd.as_str())
        .context(|| format!("chdir to cwd ({:?}) set in the container config failed", process.cwd))?;
    // A working directory reached through a leaked descriptor reads "(unreachable)/..."
    // (CVE-2024-21626): refuse to run anything there.
    match nix::unistd::getcwd() {
        Ok(cwd) if cwd.is_absolute() => {}
        _ => return Err(Failure("the working directory is outside the container".into())),
    }
    let argv = cstrings(&process.args)?;
    let envp = cstrings(&env)?;
    let path = CString::new(program.as_bytes()).map_err(|_| Failure(format!("bad program path {program:?}")))?;
    if process.no_new_privileges
        && let Some(programs) = seccomp
    {
        programs.install().context(|| "install the seccomp filter".into())?;
    }
    let error = nix::unistd::execve(&path, &argv, &envp).err().unwrap_or(nix::Error::UnknownErrno);
    Err(Failure(format!("exec: {name:?}: {}", error.desc().to_lowercase())))
}

/// Creates a missing working directory (as docker does) and refuses one that is not a directory.
fn prepare_cwd(cwd: &str) -> Result<(), Failure> {
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Failure(format!("working directory {cwd:?} is not a directory"))),
        Err(_) => std::fs::create_dir_all(cwd).context(|| format!("create working directory {cwd:?}")),
    }
}

/// `args[0]` as `execvp` would find it, with docker's messages.
fn find_program(name: &str, env: &[String]) -> Result<String, Failure> {
    if name.contains('/') {
        return match std::fs::metadata(name) {
            Ok(_) => Ok(name.to_string()),
            Err(e) => Err(Failure(format!("exec: {name:?}: stat {name}: {}", io_text(&e)))),
        };
    }
    let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{name}");
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(Failure(format!("exec: {name:?}: executable file not found in $PATH")))
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Drops the bounding set to `capabilities`, switches uid/gid/groups keeping capabilities, and
/// sets the effective and permitted sets: `capabilities` for root, empty for any other user
/// (docker's rule: a non-root user's capabilities are only in its bounding set).
fn switch_identity(user: &ExecUser, capabilities: &[String]) -> Result<(), Failure> {
    let permitted = caps::read(None, CapSet::Permitted).context(|| "read capabilities".into())?;
    let wanted: CapsHashSet =
        capabilities.iter().filter_map(|c| c.parse::<Capability>().ok()).filter(|c| permitted.contains(c)).collect();
    for cap in caps::all() {
        if !wanted.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).context(|| format!("drop {cap} from the bounding set"))?;
        }
    }
    nix::sys::prctl::set_keepcaps(true).context(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    let groups: Vec<Gid> = user.additional_gids.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).context(|| "setgroups".into())?;
    let gid = Gid::from_raw(user.gid);
    nix::unistd::setresgid(gid, gid, gid).context(|| format!("setgid {}", user.gid))?;
    let uid = Uid::from_raw(user.uid);
    nix::unistd::setresuid(uid, uid, uid).context(|| format!("setuid {}", user.uid))?;
    nix::sys::prctl::set_keepcaps(false).context(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    let kept = if user.uid == 0 { wanted } else { CapsHashSet::new() };
    caps::set(None, CapSet::Effective, &kept).context(|| "set effective capabilities".into())?;
    caps::set(None, CapSet::Permitted, &kept).context(|| "set permitted capabilities".into())?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).context(|| "clear inheritable capabilities".into())?;
    caps::clear(None, CapSet::Ambient).context(|| "clear ambient capabilities".into())
}

fn cstrings(items: &[String]) -> Result<Vec<CString>, Failure> {
    items.iter().map(|s| CString::new(s.as_bytes()).map_err(|_| Failure(format!("NUL byte in {s:?}")))).collect()
}
