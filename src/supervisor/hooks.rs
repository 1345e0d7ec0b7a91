//! Lifecycle hooks: `post_start` and `pre_stop`, each an exec in the running container, run one
//! at a time in the order written. As in docker compose 2.40: `post_start` runs after the
//! container starts (on `up`, `start` and `restart`, not on a restart by policy) and its service
//! counts as started only once every hook has passed, so dependents wait for them; `pre_stop`
//! runs before the stop signal (on `stop`, `restart`, `down` and the Ctrl-C of an attached
//! `up`, not on `kill` nor on a container that already exited). The first hook that exits
//! non-zero ends the run: the container keeps running, and the order fails with
//! compose's message. Their output goes to the container's hooks log, which an attached `up`
//! shows as compose's does (`web-1 -> | …`); `logs` leaves it out, as compose's does.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use serde_json::Value as Json;

use super::{Shared, SupervisorError};
use crate::runtime::exec::{self, Target};
use crate::runtime::spec::Process;

/// Which hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// `post_start`.
    PostStart,
    /// `pre_stop`.
    PreStop,
}

impl Phase {
    /// The service key.
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::PostStart => "post_start",
            Self::PreStop => "pre_stop",
        }
    }
}

/// `service`'s hooks of `phase`, as normalized (`command` a list, `environment` a mapping).
pub(super) fn of(shared: &Shared, service: &str, phase: Phase) -> Vec<Json> {
    shared
        .desired()
        .project
        .services
        .get(service)
        .and_then(|s| s.other.get(phase.key()))
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Runs `hooks` of `phase` in `target`, one after another, until one fails.
pub(super) async fn run(
    shared: &Arc<Shared>,
    target: Target,
    phase: Phase,
    hooks: Vec<Json>,
) -> Result<(), SupervisorError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || run_blocking(&shared, &target, phase, &hooks))
        .await
        .map_err(|e| SupervisorError::Other(e.to_string()))?
}

fn run_blocking(shared: &Shared, target: &Target, phase: Phase, hooks: &[Json]) -> Result<(), SupervisorError> {
    let service = &target.spec.service;
    for hook in hooks {
        let process = process(&target.spec.process, hook).ok_or_else(|| {
            SupervisorError::Other(format!("service {service:?}: {}: a hook without a command", phase.key()))
        })?;
        let null = std::fs::File::open("/dev/null")
            .map_err(|e| SupervisorError::Io { path: "/dev/null".into(), source: e })?;
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| SupervisorError::Io { path: "pipe".into(), source: e.into() })?;
        let (input, output) = (null.as_raw_fd(), write_end.as_raw_fd());
        let started = exec::start(&shared.spawner, target, process, Some([input, output, output])).map_err(|e| {
            SupervisorError::Other(format!("service {service:?}: {} hook could not start: {e}", phase.key()))
        })?;
        // Only the hook holds the write end now: the copy ends when it (and what it left
        // running) does.
        drop(write_end);
        let path = super::logs::hooks_log(&shared.project_dir, &target.spec.name);
        if let Ok(log) = super::logs::LogFile::open(&path, super::logs::LogPolicy::default()) {
            super::logs::capture(read_end, "stdout", log);
        }
        let status = started.wait()?;
        if status.code != 0 {
            return Err(SupervisorError::Other(format!(
                "service {service:?}: {} hook exited with status {}",
                phase.key(),
                status.code
            )));
        }
    }
    Ok(())
}

/// The process of a hook (`post_start`, `pre_stop`, or `develop.watch`'s `exec`): the
/// container's own, with the hook's `command`, and its `user`, `working_dir` and `environment`
/// (added to the container's) when given; `privileged` gives it every capability, as `exec
/// --privileged` does. `None` without a command.
pub(super) fn process(base: &Process, hook: &Json) -> Option<Process> {
    let args = match hook.get("command")? {
        Json::Array(items) => items.iter().map(|i| i.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()?,
        Json::String(text) => vec!["/bin/sh".to_owned(), "-c".to_owned(), text.clone()],
        _ => return None,
    };
    if args.is_empty() {
        return None;
    }
    let mut process = base.clone();
    process.args = args;
    process.tty = false;
    process.stdin_open = false;
    if let Some(user) = hook.get("user").and_then(Json::as_str).filter(|u| !u.is_empty()) {
        user.clone_into(&mut process.user);
    }
    if let Some(dir) = hook.get("working_dir").and_then(Json::as_str).filter(|d| !d.is_empty()) {
        dir.clone_into(&mut process.cwd);
    }
    if hook.get("privileged").and_then(Json::as_bool) == Some(true) {
        process.capabilities = crate::runtime::caps::kernel_capabilities();
    }
    if let Some(env) = hook.get("environment").and_then(Json::as_object) {
        for (key, value) in env {
            // An unset name (`- B`, no value in the environment either) sets nothing, as in docker.
            let value = match value {
                Json::Null => continue,
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            process.env.retain(|e| e.split_once('=').is_none_or(|(k, _)| k != key));
            process.env.push(format!("{key}={value}"));
        }
    }
    Some(process)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Process {
        Process {
            args: vec!["sleep".into()],
            env: vec!["PATH=/bin".into(), "A=old".into()],
            user: "1000".into(),
            additional_groups: Vec::new(),
            cwd: "/".into(),
            tty: false,
            stdin_open: false,
            capabilities: vec!["CAP_CHOWN".into()],
            no_new_privileges: false,
            seccomp: Default::default(),
            rlimits: Vec::new(),
        }
    }

    #[test]
    fn a_hook_overrides_what_it_names_and_keeps_the_rest() {
        let hook = json!({"command": ["touch", "/x"], "user": "root", "working_dir": "/etc",
            "environment": {"A": "new", "B": "2", "C": null}});
        let p = process(&base(), &hook).expect("a process");
        assert_eq!(p.args, ["touch", "/x"]);
        assert_eq!(p.user, "root");
        assert_eq!(p.cwd, "/etc");
        assert_eq!(p.env, ["PATH=/bin", "A=new", "B=2"]);
        assert_eq!(p.capabilities, ["CAP_CHOWN"]);
        let privileged = process(&base(), &json!({"command": ["true"], "privileged": true})).expect("a process");
        assert!(privileged.capabilities.len() > 30, "{:?}", privileged.capabilities);
        assert_eq!(privileged.user, "1000");
        assert!(process(&base(), &json!({"user": "root"})).is_none());
        assert!(process(&base(), &json!({"command": []})).is_none());
    }
}
