//! seccomp: docker's default profile (or a profile of docker's JSON format) compiled to BPF
//! by Firecracker's `seccompiler`, once per distinct profile and capability set, in the
//! spawner before it clones; the clone installs the programs last before `execve`.
//!
//! `default.json` is moby's `profiles/seccomp/default.json` (Apache-2.0), unchanged.
//!
//! seccompiler gives one filter a single on-match action, while a profile gives each entry its
//! own. A profile therefore becomes several programs, which the kernel runs all of, taking the
//! most severe answer: first an allowlist (every rule's call allowed when its conditions hold,
//! the profile's default otherwise), then for each other action a program answering it for its
//! rules and allowing the rest. A call matched by an `SCMP_ACT_ERRNO(ENOSYS)` rule is allowed
//! by the first and refused with ENOSYS by its own, as libseccomp would refuse it.
//!
//! The programs check the architecture: a call through another ABI (i386's `int 0x80`) kills
//! the process, and x32 calls (numbers with bit 30) match no rule and get the default.

mod profile;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};

use self::profile::{Action, Op, Resolved, Rule};
use super::spec::{Process, SeccompPolicy};

/// docker's default profile.
const DEFAULT_PROFILE: &str = include_str!("default.json");

/// A profile that cannot be used, or a program that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile file cannot be read.
    #[error("seccomp profile {file}: {source}")]
    Read {
        /// The file, as given.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key of the profile is wrong.
    #[error("seccomp profile {file}: {key}: {message}")]
    Profile {
        /// The file, as given (`docker's default` for the built-in one).
        file: String,
        /// The key (`syscalls[3].action`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// seccompiler refused the rules.
    #[error("seccomp profile {file}: compile: {message}")]
    Compile {
        /// The file, as given.
        file: String,
        /// seccompiler's message.
        message: String,
    },
}

/// Compiled programs, installed in order.
#[derive(Debug)]
pub struct Programs {
    programs: Vec<Vec<libc::sock_filter>>,
    flags: u32,
}

impl Programs {
    /// Instructions over all programs (for measurements and tests).
    pub fn len(&self) -> usize {
        self.programs.iter().map(Vec::len).sum()
    }

    /// Whether there is nothing to install (an allow-everything profile).
    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }

    /// Installs the programs on the calling thread. Needs `no_new_privs` or CAP_SYS_ADMIN.
    pub fn install(&self) -> std::io::Result<()> {
        for program in &self.programs {
            let prog = libc::sock_fprog {
                len: u16::try_from(program.len()).map_err(|_| std::io::Error::from_raw_os_error(libc::E2BIG))?,
                filter: program.as_ptr().cast_mut(),
            };
            // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    libc::c_ulong::from(self.flags),
                    std::ptr::addr_of!(prog),
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Reads and checks a profile file (`security_opt: [seccomp=FILE]`): returns its text, which
/// the spec carries so the container does not depend on the file later.
pub fn load_profile(path: &Path, shown: &str) -> Result<String, SeccompError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeccompError::Read { file: shown.to_owned(), source })?;
    let parsed = profile::parse(&text).map_err(|m| profile_error(shown, m))?;
    profile::resolve(&parsed, &[], profile::kernel_version()).map_err(|m| profile_error(shown, m))?;
    Ok(text)
}

fn profile_error(file: &str, m: profile::Mistake) -> SeccompError {
    SeccompError::Profile { file: file.to_owned(), key: m.key, message: m.message }
}

/// Compiled programs by policy and sorted capability names.
type Cache = HashMap<(SeccompPolicy, Vec<String>), Arc<Programs>>;

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The programs for `process`, or `None` when it runs unconfined. Compiled once per distinct
/// policy and capability set for the life of this process (the spawner).
pub fn programs_for(process: &Process) -> Result<Option<Arc<Programs>>, SeccompError> {
    if process.seccomp == SeccompPolicy::Unconfined {
        return Ok(None);
    }
    let mut caps = process.capabilities.clone();
    caps.sort();
    let key = (process.seccomp.clone(), caps);
    if let Some(found) = CACHE.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(Some(found));
    }
    let programs = Arc::new(compile_policy(&key.0, &key.1)?);
    if let Ok(mut cache) = CACHE.lock() {
        cache.insert(key, programs.clone());
    }
    Ok(Some(programs))
}

/// Compiles docker's default profile for docker's default capabilities into the cache: the
/// spawner does it while its parent is still loading the project, so the common container
/// starts without waiting for a compile.
pub fn warm() {
    let caps: Vec<String> = super::caps::DOCKER_DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect();
    let mut key = (SeccompPolicy::Default, caps);
    key.1.sort();
    if let Ok(programs) = compile_policy(&key.0, &key.1)
        && let Ok(mut cache) = CACHE.lock()
    {
        cache.entry(key).or_insert_with(|| Arc::new(programs));
    }
}

/// Compiles a policy for a process with capabilities `caps`.
pub fn compile_policy(policy: &SeccompPolicy, caps: &[String]) -> Result<Programs, SeccompError> {
    let (file, text) = match policy {
        SeccompPolicy::Unconfined => return Ok(Programs { programs: Vec::new(), flags: 0 }),
        SeccompPolicy::Default => ("docker's default", DEFAULT_PROFILE),
        SeccompPolicy::Profile { file, json } => (file.as_str(), json.as_str()),
    };
    let parsed = profile::parse(text).map_err(|m| profile_error(file, m))?;
    let resolved = profile::resolve(&parsed, caps, profile::kernel_version()).map_err(|m| profile_error(file, m))?;
    compile(&resolved).map_err(|e| SeccompError::Compile { file: file.to_owned(), message: e.to_string() })
}

#[cfg(target_arch = "x86_64")]
const TARGET: seccompiler::TargetArch = seccompiler::TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const TARGET: seccompiler::TargetArch = seccompiler::TargetArch::aarch64;
#[cfg(target_arch = "riscv64")]
const TARGET: seccompiler::TargetArch = seccompiler::TargetArch::riscv64;

/// The allowlist program, then one program per other action (see the module's comment).
fn compile(resolved: &Resolved) -> Result<Programs, seccompiler::BackendError> {
    let mut programs = Vec::new();
    if resolved.default != Action::Allow {
        let all: Vec<&Rule> = resolved.rules.iter().collect();
        programs.push(program(&all, resolved.default, Action::Allow)?);
    }
    let mut actions: Vec<Action> = resolved.rules.iter().map(|r| r.action).filter(|a| *a != Action::Allow).collect();
    actions.sort();
    actions.dedup();
    for action in actions {
        let rules: Vec<&Rule> = resolved.rules.iter().filter(|r| r.action == action).collect();
        programs.push(program(&rules, Action::Allow, action)?);
    }
    Ok(Programs { programs, flags: resolved.flags })
}

fn program(
    rules: &[&Rule],
    mismatch: Action,
    on_match: Action,
) -> Result<Vec<libc::sock_filter>, seccompiler::BackendError> {
    // `None`: matches on the number alone, whatever other rules of the call say.
    let mut by_call: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
    for rule in rules {
        let entry = by_call.entry(rule.syscall).or_insert_with(|| Some(Vec::new()));
        if rule.conditions.is_empty() {
            *entry = None;
            continue;
        }
        if let Some(list) = entry {
            let conditions = rule
                .conditions
                .iter()
                .map(|c| SeccompCondition::new(c.index, SeccompCmpArgLen::Qword, op(c.op), c.value))
                .collect::<Result<Vec<_>, _>>()?;
            list.push(SeccompRule::new(conditions)?);
        }
    }
    let map = by_call.into_iter().map(|(nr, rules)| (nr, rules.unwrap_or_default())).collect();
    let filter = SeccompFilter::new(map, seccomp_action(mismatch), seccomp_action(on_match), TARGET)?;
    let bpf: seccompiler::BpfProgram = filter.try_into()?;
    Ok(bpf.into_iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect())
}

fn op(op: Op) -> SeccompCmpOp {
    match op {
        Op::Ne => SeccompCmpOp::Ne,
        Op::Lt => SeccompCmpOp::Lt,
        Op::Le => SeccompCmpOp::Le,
        Op::Eq => SeccompCmpOp::Eq,
        Op::Ge => SeccompCmpOp::Ge,
        Op::Gt => SeccompCmpOp::Gt,
        Op::MaskedEq(mask) => SeccompCmpOp::MaskedEq(mask),
    }
}

fn seccomp_action(action: Action) -> SeccompAction {
    match action {
        Action::Allow => SeccompAction::Allow,
        Action::Errno(e) => SeccompAction::Errno(e),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Log => SeccompAction::Log,
        Action::Trace(t) => SeccompAction::Trace(t),
    }
}
