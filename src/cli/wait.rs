//! `berth wait SERVICE…`: blocks until the services' containers have exited, printing
//! `container "ID" exited with status code N` for each as `docker compose wait` does, and exits
//! with the code of the first to exit. Exits are read from the supervisor's events file (a `die`
//! is never missed, even when a restart policy starts the service again at once); containers
//! that had already exited count at once, with their last exit code.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::anyhow;

use super::{EXIT_INVALID, Failure, GlobalOptions, emit, load_project};
use crate::supervisor::events::Follower;
use crate::supervisor::{self, SupervisorRecord};

/// `berth wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Take the project down (as `berth down`) once the containers have exited.
    #[arg(long)]
    pub down_project: bool,
    /// The services.
    #[arg(required = true)]
    pub services: Vec<String>,
}

pub(super) fn wait(global: &GlobalOptions, args: &WaitArgs) -> Result<u8, Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    if let Some(unknown) = args.services.iter().find(|s| !project.services.contains_key(*s)) {
        return Err(Failure { code: EXIT_INVALID, error: anyhow!("no such service: {unknown:?}") });
    }
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, &project.name);
    // Following first: an exit after the look at the containers below is in the file.
    let mut events = Follower::from_end(&dir);
    let containers: Vec<_> = super::ps::containers(global, &project.name)
        .into_iter()
        .filter(|c| args.services.contains(&c.service))
        .collect();
    if containers.is_empty() {
        return Err(Failure { code: 1, error: anyhow!("no containers for project {:?}", project.name) });
    }
    // The containers still to exit, by name: a restarting one's next run has a new id.
    let mut waiting: BTreeSet<String> = BTreeSet::new();
    let mut exited: Vec<(u128, String, i32)> = Vec::new();
    for c in containers {
        if c.state == "exited" {
            exited.push((c.finished_at, c.id, c.exit_code));
        } else {
            waiting.insert(c.name);
        }
    }
    exited.sort();
    let mut first = exited.first().map(|(_, _, code)| *code);
    emit(&exited.iter().map(|(_, id, code)| line(id, *code)).collect::<String>())?;
    while !waiting.is_empty() {
        // Looked at before reading: a supervisor gone now wrote all it will write.
        let alive = SupervisorRecord::load(&root, &project.name).is_some_and(|r| r.is_running());
        for event in &events.poll() {
            let Some(name) = event.attributes.get("name") else { continue };
            if event.action != "die" || !waiting.contains(name) {
                continue;
            }
            let code = event.attributes.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(0);
            waiting.remove(name);
            first.get_or_insert(code);
            emit(&line(&event.id, code))?;
        }
        if !alive && !waiting.is_empty() {
            let names: Vec<&str> = waiting.iter().map(String::as_str).collect();
            return Err(Failure {
                code: 1,
                error: anyhow!("project {} went down while waiting for {}", project.name, names.join(", ")),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if args.down_project {
        super::down::down(
            global,
            &super::down::DownArgs { timeout: None, volumes: false, rmi: None, remove_orphans: false },
        )?;
    }
    // An exit status is a byte, as the shell sees it.
    Ok(first.map_or(0, |code| u8::try_from(code & 0xff).unwrap_or(1)))
}

fn line(id: &str, code: i32) -> String {
    format!("container {id:?} exited with status code {code}\n")
}
