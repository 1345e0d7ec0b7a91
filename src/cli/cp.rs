//! `cp`, `commit` and `export`: a service container's files (see `container_fs`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::anyhow;

use super::{EXIT_INVALID, Failure, GlobalOptions, emit, load_project};
use crate::container_fs::commit::{self, CommitOptions};
use crate::container_fs::copy::{self, CopyOptions, End};
use crate::container_fs::{self, Container, FsError};
use crate::image::{ImageError, Store};

/// `berth cp`.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "berth cp [OPTIONS] SERVICE:SRC_PATH DEST_PATH|-\n       berth cp [OPTIONS] SRC_PATH|- SERVICE:DEST_PATH"
)]
pub struct CpArgs {
    /// Include containers created by the run command.
    #[arg(long)]
    pub all: bool,
    /// Archive mode: owners (uid/gid) as at the source.
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow a symbolic link in SRC_PATH.
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Index of the container if the service has several replicas (default: all of them
    /// when copying to the service, the first when copying from it).
    #[arg(long, default_value_t = 0)]
    pub index: u32,
    /// Source: SERVICE:PATH, a local path, or `-` (a tar stream on stdin).
    pub source: String,
    /// Destination: SERVICE:PATH, a local path, or `-` (a tar stream on stdout).
    pub destination: String,
}

/// `berth commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (`Name <email>`).
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// A Dockerfile instruction to apply to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// STOPSIGNAL, USER, VOLUME, WORKDIR; repeatable).
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause the container while its layer is read (`--pause=false` to leave it running).
    #[arg(short = 'p', long, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
    /// Index of the container if the service has several replicas.
    #[arg(long, default_value_t = 0)]
    pub index: u32,
    /// The service.
    pub service: String,
    /// The new image's name (`REPOSITORY[:TAG]`); without one the image has none.
    pub reference: Option<String>,
}

/// `berth export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Index of the container if the service has several replicas.
    #[arg(long, default_value_t = 0)]
    pub index: u32,
    /// The service.
    pub service: String,
}

fn failure(e: FsError) -> Failure {
    let code = match e {
        FsError::Image(ImageError::InvalidReference(_)) => EXIT_INVALID,
        _ => 1,
    };
    Failure { code, error: e.into() }
}

/// compose's reading of a cp argument: an absolute path, or one whose part before `:` starts
/// with `.`, is local; otherwise `SERVICE:PATH` names a service's path.
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((service, path)) if !service.starts_with('.') => (Some(service), path),
        _ => (None, arg),
    }
}

/// The containers of `service` a command acts on: replica `index`, or all (one-off ones only
/// with `all`).
fn containers(global: &GlobalOptions, service: &str, index: u32, all: bool) -> Result<Vec<Container>, Failure> {
    let loaded = load_project(&global.project_options())?;
    super::check_services(&loaded.project, &[service.to_owned()])?;
    let found = container_fs::find(&global.state_root(), &loaded.project.name, service).map_err(failure)?;
    let chosen: Vec<Container> = if index > 0 {
        found.into_iter().filter(|c| !c.is_oneoff() && c.index() == Some(index)).collect()
    } else {
        found.into_iter().filter(|c| all || !c.is_oneoff()).collect()
    };
    if chosen.is_empty() {
        let which = if index > 0 { format!(" with index {index}") } else { String::new() };
        return Err(Failure { code: 1, error: anyhow!("no container found for service {service:?}{which}") });
    }
    Ok(chosen)
}

/// The first of `service`'s containers (replica `index` when given), one-off ones last.
fn one_container(global: &GlobalOptions, service: &str, index: u32) -> Result<Container, Failure> {
    let mut all = containers(global, service, index, true)?;
    Ok(all.remove(0))
}

pub(super) fn cp(global: &GlobalOptions, args: &CpArgs) -> Result<(), Failure> {
    let options = CopyOptions { archive: args.archive, follow_link: args.follow_link };
    let src = if args.source == "-" { (None, "-") } else { split_arg(&args.source) };
    let dst = if args.destination == "-" { (None, "-") } else { split_arg(&args.destination) };
    match (src, dst) {
        ((Some(service), src_path), (None, dst_path)) => {
            if dst_path == "-" && std::io::stdout().is_terminal() {
                return Err(Failure { code: 1, error: anyhow!("refusing to write a tar stream to a terminal") });
            }
            let container = containers(global, service, args.index, args.all)?.remove(0);
            copy::copy(End::Container(&container, src_path), local(dst_path), options).map_err(failure)
        }
        ((None, src_path), (Some(service), dst_path)) => {
            for container in containers(global, service, args.index, args.all)? {
                // A stopped container's root is mounted for the copy: nothing may start it
                // meanwhile.
                let _lock =
                    if container.is_running() { None } else { Some(lock_project(global, &container.spec.project)?) };
                copy::copy(local(src_path), End::Container(&container, dst_path), options)
                    .map_err(|e| Failure { code: 1, error: anyhow!("{}: {e}", container.name()) })?;
            }
            Ok(())
        }
        ((Some(_), _), (Some(_), _)) => {
            Err(Failure { code: EXIT_INVALID, error: anyhow!("copying between services is not supported") })
        }
        _ => {
            Err(Failure { code: EXIT_INVALID, error: anyhow!("one of the source or destination must be SERVICE:PATH") })
        }
    }
}

fn local(path: &str) -> End<'_> {
    if path == "-" { End::Stream } else { End::Host(path) }
}

fn lock_project(global: &GlobalOptions, project: &str) -> Result<crate::fsutil::ProjectLock, Failure> {
    let dir = crate::supervisor::project_dir(&global.state_root(), project);
    crate::fsutil::ProjectLock::acquire(&dir, || {
        eprintln!("Waiting for another berth command on project {project} to finish...");
    })
    .map_err(|e| Failure { code: 1, error: anyhow!("locking project {project}: {e}") })
}

pub(super) fn commit(global: &GlobalOptions, args: &CommitArgs) -> Result<(), Failure> {
    let reference = match &args.reference {
        Some(text) => Some(text.parse().map_err(|e: ImageError| Failure { code: EXIT_INVALID, error: e.into() })?),
        None => None,
    };
    let container = one_container(global, &args.service, args.index)?;
    let store = Store::open(&global.state_root()).map_err(|e| failure(e.into()))?;
    let options = CommitOptions {
        reference,
        message: args.message.clone(),
        author: args.author.clone(),
        changes: args.changes.clone(),
        pause: args.pause,
    };
    let record = commit::commit(&store, &container, &options).map_err(failure)?;
    emit(&format!("{}\n", record.id))
}

pub(super) fn export(global: &GlobalOptions, args: &ExportArgs) -> Result<(), Failure> {
    let container = one_container(global, &args.service, args.index)?;
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| Failure { code: 1, error: anyhow!("{}: {e}", path.display()) })?;
            commit::export(&container, std::io::BufWriter::new(file)).map_err(failure)
        }
        None if std::io::stdout().is_terminal() => Err(Failure {
            code: 1,
            error: anyhow!("refusing to write a tar stream to a terminal: use -o or redirect the output"),
        }),
        None => commit::export(&container, std::io::BufWriter::new(std::io::stdout())).map_err(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_arguments_are_read_as_compose_reads_them() {
        assert_eq!(split_arg("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split_arg("web:etc"), (Some("web"), "etc"));
        assert_eq!(split_arg("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_arg("file.txt"), (None, "file.txt"));
    }

    fn commit_args(args: &[&str]) -> CommitArgs {
        let mut all = vec!["berth", "commit"];
        all.extend_from_slice(args);
        match <super::super::Cli as clap::Parser>::try_parse_from(all).unwrap().command {
            super::super::Command::Commit(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commit_pause_is_a_boolean_flag_as_in_compose() {
        let c = commit_args(&["-p", "web", "app:1"]);
        assert!(c.pause);
        assert_eq!((c.service.as_str(), c.reference.as_deref()), ("web", Some("app:1")));
        assert!(!commit_args(&["--pause=false", "web"]).pause);
        assert!(commit_args(&["web"]).pause, "compose pauses by default");
        let c = commit_args(&["-c", "ENV A=1", "--change", "CMD [\"sh\"]", "-m", "msg", "-a", "me", "web"]);
        assert_eq!(c.changes.len(), 2);
    }
}
