//! The container's process: argv, environment, user, working directory, capabilities and
//! resource limits.

use crate::runtime::caps::capability_set;
use crate::runtime::spec::{Process, Rlimit, SeccompPolicy};
use crate::spec::Service;
use crate::spec::volumes::clean_absolute;

use super::{PlanContext, PlanError, RunOverrides, invalid, other_strings};

/// The `PATH` a container gets when its image sets none (docker's `oci.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(super) fn process(
    ctx: &PlanContext<'_>,
    service: &Service,
    overrides: &RunOverrides,
    hostname: &str,
) -> Result<Process, PlanError> {
    let image = &ctx.image.config.config;
    let entrypoint = overrides.entrypoint.as_ref().or(service.entrypoint.as_ref());
    let command = overrides.command.as_ref().or(service.command.as_ref());
    let args = combine_args(entrypoint, command, image.entrypoint.as_ref(), image.cmd.as_ref());
    if args.is_empty() {
        return Err(PlanError::NoCommand { service: service.name.clone() });
    }
    let tty = overrides.tty.unwrap_or(service.tty);
    let env = environment(ctx, service, overrides, hostname, tty);
    let user =
        overrides.user.clone().or_else(|| service.user.clone()).or_else(|| image.user.clone()).unwrap_or_default();
    let capabilities = capability_set(&service.cap_add, &service.cap_drop, service.privileged)
        .map_err(|source| PlanError::Capabilities { service: service.name.clone(), source })?;
    Ok(Process {
        args,
        env,
        user,
        additional_groups: other_strings(service, "group_add"),
        cwd: working_dir(ctx, service, overrides)?,
        tty,
        stdin_open: overrides.interactive || service.stdin_open,
        capabilities,
        no_new_privileges: no_new_privileges(service),
        seccomp: seccomp(ctx, service)?,
        rlimits: rlimits(service)?,
    })
}

/// argv from the container's and the image's entrypoint and command, as docker's
/// `runconfig.Merge` combines them: a non-empty entrypoint of the container's own drops the
/// image's command; an empty one (`entrypoint: []` or `""`) clears the image's entrypoint but
/// keeps its command; an unset one keeps both of the image's. An empty command is no command.
pub(super) fn combine_args(
    entrypoint: Option<&Vec<String>>,
    command: Option<&Vec<String>>,
    image_entrypoint: Option<&Vec<String>>,
    image_cmd: Option<&Vec<String>>,
) -> Vec<String> {
    let command = command.filter(|c| !c.is_empty());
    let (entrypoint, command) = match entrypoint {
        Some(e) if !e.is_empty() => (Some(e), command),
        Some(_) => (None, command.or(image_cmd)),
        None => (image_entrypoint, command.or(image_cmd)),
    };
    entrypoint.into_iter().chain(command).flatten().cloned().collect()
}

/// An environment being built: `KEY=VALUE` entries in order of first appearance.
#[derive(Default)]
struct Env(Vec<String>);

impl Env {
    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    }

    /// Sets `key` in place when present, else appends it.
    fn set(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self.position(key) {
            Some(i) => self.0[i] = entry,
            None => self.0.push(entry),
        }
    }

    fn unset(&mut self, key: &str) {
        if let Some(i) = self.position(key) {
            self.0.remove(i);
        }
    }

    /// A `KEY=VALUE` or bare `KEY` entry; a bare key takes its value from `lookup`, and is
    /// unset when that has none (docker's daemon removes a variable given without `=`).
    fn apply(&mut self, entry: &str, lookup: impl Fn(&str) -> Option<String>) {
        match entry.split_once('=') {
            Some((key, value)) => self.set(key, value),
            None => match lookup(entry) {
                Some(value) => self.set(entry, &value),
                None => self.unset(entry),
            },
        }
    }
}

/// The whole environment, in docker's order: `PATH`, `HOSTNAME` and (with a tty) `TERM`
/// defaults first, then the image's `Env`, then `environment` (which already holds the
/// `env_file` values), then `berth run -e`. A later value replaces an earlier one where it
/// stands. A variable without a value takes the project environment's, and when that has none
/// it is removed, even from the image's variables — what docker's daemon does with the bare
/// `KEY` compose sends it.
fn environment(
    ctx: &PlanContext<'_>,
    service: &Service,
    overrides: &RunOverrides,
    hostname: &str,
    tty: bool,
) -> Vec<String> {
    let lookup = |key: &str| ctx.project.environment.get(key).cloned();
    let mut env = Env::default();
    env.set("PATH", DEFAULT_PATH);
    env.set("HOSTNAME", hostname);
    if tty {
        env.set("TERM", "xterm");
    }
    for entry in ctx.image.config.config.env.iter().flatten() {
        env.apply(entry, |_| None);
    }
    for (key, value) in &service.environment {
        match value {
            Some(value) => env.set(key, value),
            None => env.apply(key, lookup),
        }
    }
    for entry in &overrides.env {
        env.apply(entry, lookup);
    }
    env.0
}

/// `--workdir`, `working_dir`, the image's `WorkingDir`, else `/`; absolute, cleaned.
fn working_dir(ctx: &PlanContext<'_>, service: &Service, overrides: &RunOverrides) -> Result<String, PlanError> {
    let image = ctx.image.config.config.working_dir.as_ref();
    let (key, dir) = match (&overrides.workdir, &service.working_dir, image) {
        (Some(dir), _, _) if !dir.is_empty() => ("--workdir", dir),
        (_, Some(dir), _) if !dir.is_empty() => ("working_dir", dir),
        (_, _, Some(dir)) if !dir.is_empty() => ("image WorkingDir", dir),
        _ => return Ok("/".to_owned()),
    };
    if !dir.starts_with('/') {
        return Err(invalid(service, key, format!("{dir:?} is not an absolute path")));
    }
    Ok(clean_absolute(dir))
}

/// `security_opt: [no-new-privileges]` (or `no-new-privileges:true`, or `=true`).
fn no_new_privileges(service: &Service) -> bool {
    other_strings(service, "security_opt")
        .iter()
        .any(|opt| matches!(opt.as_str(), "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"))
}

/// `security_opt: [seccomp=unconfined]` or `[seccomp=FILE]` (FILE relative to the project
/// directory, as compose reads it), also with `:`; `privileged` runs unconfined, as in docker.
fn seccomp(ctx: &PlanContext<'_>, service: &Service) -> Result<SeccompPolicy, PlanError> {
    let mut policy = SeccompPolicy::Default;
    for opt in other_strings(service, "security_opt") {
        let Some(value) = opt.strip_prefix("seccomp=").or_else(|| opt.strip_prefix("seccomp:")) else { continue };
        policy = match value {
            "unconfined" => SeccompPolicy::Unconfined,
            "builtin" | "default" => SeccompPolicy::Default,
            "" => return Err(invalid(service, "security_opt", format!("{opt:?}: no seccomp profile given"))),
            file => {
                let path = ctx.project.working_dir.join(file);
                let json = crate::runtime::seccomp::load_profile(&path, file)
                    .map_err(|e| invalid(service, "security_opt", e.to_string()))?;
                SeccompPolicy::Profile { file: file.to_owned(), json }
            }
        };
    }
    Ok(if service.privileged { SeccompPolicy::Unconfined } else { policy })
}

/// A `ulimits` name as the resource `setrlimit` takes (docker's go-units names, plus `as`).
pub(super) fn rlimit_resource(name: &str) -> Option<u32> {
    let resource = match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    };
    // glibc's resource type is u32 already, musl's is i32: the conversion is for the latter.
    #[allow(clippy::useless_conversion)]
    u32::try_from(resource).ok()
}

/// `ulimits`, in name order; `-1` is unlimited.
fn rlimits(service: &Service) -> Result<Vec<Rlimit>, PlanError> {
    let limit = |name: &str, value: i64| match value {
        -1 => Ok(u64::MAX),
        v => u64::try_from(v)
            .map_err(|_| invalid(service, "ulimits", format!("{name}: {v} is not a limit (use -1 for unlimited)"))),
    };
    service
        .ulimits
        .iter()
        .map(|(name, u)| {
            let resource = rlimit_resource(name).ok_or_else(|| {
                invalid(
                    service,
                    "ulimits",
                    format!(
                        "unknown limit {name:?}: expected one of as, core, cpu, data, fsize, locks, memlock, msgqueue, \
                         nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack"
                    ),
                )
            })?;
            let (soft, hard) = (limit(name, u.soft)?, limit(name, u.hard)?);
            if soft > hard {
                return Err(invalid(
                    service,
                    "ulimits",
                    format!("{name}: soft limit {soft} is above the hard limit {hard}"),
                ));
            }
            Ok(Rlimit { resource, soft, hard })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// docker's documented table ("Understand how CMD and ENTRYPOINT interact"), with the
    /// container's own keys on top.
    #[test]
    fn entrypoint_and_command_combine_as_docker_documents() {
        let (exec_e, exec_c) = (v(&["/bin/ep", "e1"]), v(&["c1", "c2"]));
        // Image only.
        assert_eq!(combine_args(None, None, None, Some(&exec_c)), v(&["c1", "c2"]));
        assert_eq!(combine_args(None, None, Some(&exec_e), None), v(&["/bin/ep", "e1"]));
        assert_eq!(combine_args(None, None, Some(&exec_e), Some(&exec_c)), v(&["/bin/ep", "e1", "c1", "c2"]));
        // command replaces the image's Cmd, keeps its Entrypoint.
        let cmd = v(&["run"]);
        assert_eq!(combine_args(None, Some(&cmd), Some(&exec_e), Some(&exec_c)), v(&["/bin/ep", "e1", "run"]));
        // entrypoint replaces the image's Entrypoint and drops its Cmd.
        let ep = v(&["/entry"]);
        assert_eq!(combine_args(Some(&ep), None, Some(&exec_e), Some(&exec_c)), v(&["/entry"]));
        assert_eq!(combine_args(Some(&ep), Some(&cmd), Some(&exec_e), Some(&exec_c)), v(&["/entry", "run"]));
        // An empty entrypoint clears the image's and runs its Cmd (docker run --entrypoint "").
        let empty = Vec::new();
        assert_eq!(combine_args(Some(&empty), None, Some(&exec_e), Some(&exec_c)), v(&["c1", "c2"]));
        assert_eq!(combine_args(Some(&empty), Some(&cmd), Some(&exec_e), Some(&exec_c)), v(&["run"]));
        // An empty command is no command: the image's is used.
        assert_eq!(combine_args(None, Some(&empty), Some(&exec_e), Some(&exec_c)), v(&["/bin/ep", "e1", "c1", "c2"]));
        assert!(combine_args(Some(&empty), None, Some(&exec_e), None).is_empty());
        assert!(combine_args(None, None, None, None).is_empty());
    }

    #[test]
    fn env_entries_replace_in_place_and_bare_keys_look_up_or_unset() {
        let mut env = Env::default();
        env.set("PATH", DEFAULT_PATH);
        env.apply("A=1", |_| None);
        env.apply("PATH=/bin", |_| None);
        env.apply("B=x=y", |_| None);
        assert_eq!(env.0, v(&["PATH=/bin", "A=1", "B=x=y"]));
        env.apply("A", |_| Some("from-env".into()));
        env.apply("B", |_| None);
        env.apply("C", |_| None);
        assert_eq!(env.0, v(&["PATH=/bin", "A=from-env"]));
    }

    #[test]
    fn ulimit_names_map_to_linux_resources() {
        assert_eq!(rlimit_resource("nofile"), Some(7));
        assert_eq!(rlimit_resource("nproc"), Some(6));
        assert_eq!(rlimit_resource("core"), Some(4));
        assert_eq!(rlimit_resource("as"), Some(9));
        assert_eq!(rlimit_resource("rttime"), Some(15));
        assert_eq!(rlimit_resource("files"), None);
    }
}
