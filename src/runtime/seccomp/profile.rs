//! docker's seccomp profile format (moby `profiles/seccomp`), and its reduction to the rules
//! that apply to one process: the entries whose `includes` hold and whose `excludes` do not,
//! for this machine's architecture, the process's capabilities and the running kernel.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A profile as docker reads it. Unknown keys are ignored, as docker's decoder ignores them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Profile {
    #[serde(default)]
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<Syscall>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// What the kernel does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Log,
    Trace(u32),
}

/// A comparison of one argument, all 64 bits of it (libseccomp's semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Condition {
    pub(super) index: u8,
    pub(super) op: Op,
    pub(super) value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`.
    MaskedEq(u64),
}

/// One rule: `action` for `syscall` when every condition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    pub(super) syscall: i64,
    pub(super) action: Action,
    pub(super) conditions: Vec<Condition>,
}

/// The rules that apply to one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resolved {
    pub(super) default: Action,
    /// `SECCOMP_FILTER_FLAG_*` bits.
    pub(super) flags: u32,
    pub(super) rules: Vec<Rule>,
}

/// A profile mistake: the key (`syscalls[3].action`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mistake {
    pub(super) key: String,
    pub(super) message: String,
}

fn mistake(key: impl Into<String>, message: impl Into<String>) -> Mistake {
    Mistake { key: key.into(), message: message.into() }
}

/// Parses a profile, naming the key of a value of the wrong type.
pub(super) fn parse(text: &str) -> Result<Profile, Mistake> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." || key == "?" { "(top level)".to_owned() } else { key };
        mistake(key, e.into_inner().to_string())
    })
}

/// The architecture's name in profiles' `arches` lists (Go's `GOARCH` spelling).
pub(super) const NATIVE_ARCH: &str = if cfg!(target_arch = "x86_64") {
    "amd64"
} else if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    "riscv64"
};

/// The running kernel's version, `(major, minor)`.
pub(super) fn kernel_version() -> (u32, u32) {
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    parse_version(&release).unwrap_or((0, 0))
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Reduces `profile` for a process with capabilities `caps` (`CAP_*` names) on a kernel of
/// version `kernel`, as docker's `setupSeccomp` does, then resolves syscall names on this
/// architecture. Names this architecture does not have are skipped, as runc skips them.
pub(super) fn resolve(profile: &Profile, caps: &[String], kernel: (u32, u32)) -> Result<Resolved, Mistake> {
    if profile.architectures.as_ref().is_some_and(|a| !a.is_empty())
        && profile.arch_map.as_ref().is_some_and(|a| !a.is_empty())
    {
        return Err(mistake("archMap", "both 'architectures' and 'archMap' are given: use one"));
    }
    if profile.listener_path.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(mistake("listenerPath", "seccomp notification listeners are not supported"));
    }
    let all_arches = profile.architectures.iter().flatten().chain(
        profile
            .arch_map
            .iter()
            .flatten()
            .flat_map(|m| std::iter::once(&m.architecture).chain(m.sub_architectures.iter().flatten())),
    );
    for arch in all_arches {
        if !arch.starts_with("SCMP_ARCH_") {
            return Err(mistake("architectures", format!("unknown architecture {arch:?}")));
        }
    }
    let default_errno = profile.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let default = action(&profile.default_action, Some(default_errno)).map_err(|m| mistake("defaultAction", m))?;
    let mut flags = 0;
    for (i, flag) in profile.flags.iter().flatten().enumerate() {
        flags |= match flag.as_str() {
            // linux/seccomp.h
            "SECCOMP_FILTER_FLAG_TSYNC" => 1,
            "SECCOMP_FILTER_FLAG_LOG" => 2,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 4,
            other => return Err(mistake(format!("flags[{i}]"), format!("unsupported flag {other:?}"))),
        };
    }
    let mut rules = Vec::new();
    for (i, call) in profile.syscalls.iter().flatten().enumerate() {
        let key = |field: &str| format!("syscalls[{i}].{field}");
        let names: Vec<&String> = match (&call.name, &call.names) {
            (Some(_), Some(n)) if !n.is_empty() => {
                return Err(mistake(key("name"), "both 'name' and 'names' are given: use one"));
            }
            (Some(name), _) => vec![name],
            (None, names) => names.iter().flatten().collect(),
        };
        let action = action(&call.action, call.errno_ret).map_err(|m| mistake(key("action"), m))?;
        let conditions = conditions(call.args.as_deref().unwrap_or(&[])).map_err(|(j, m)| mistake(key(&j), m))?;
        if let Some(min) = [&call.includes, &call.excludes].iter().find_map(|f| f.as_ref()?.min_kernel.as_ref())
            && parse_version(min).is_none()
        {
            return Err(mistake(key("includes.minKernel"), format!("{min:?} is not a kernel version")));
        }
        if !applies(call, caps, kernel) {
            continue;
        }
        for name in names {
            let Some(nr) = syscall_number(name) else { continue };
            for group in &conditions {
                rules.push(Rule { syscall: nr, action, conditions: group.clone() });
            }
        }
    }
    Ok(Resolved { default, flags, rules })
}

/// docker's `includes`/`excludes`: every include holds and no exclude does.
fn applies(call: &Syscall, caps: &[String], kernel: (u32, u32)) -> bool {
    let at_least = |min: &String| parse_version(min).is_some_and(|v| kernel >= v);
    let excluded = call.excludes.as_ref().is_some_and(|ex| {
        ex.arches.iter().flatten().any(|a| a == NATIVE_ARCH)
            || ex.caps.iter().flatten().any(|c| caps.contains(c))
            || ex.min_kernel.as_ref().is_some_and(at_least)
    });
    let not_included = call.includes.as_ref().is_some_and(|inc| {
        inc.arches.as_ref().is_some_and(|a| !a.is_empty() && !a.iter().any(|a| a == NATIVE_ARCH))
            || inc.caps.iter().flatten().any(|c| !caps.contains(c))
            || inc.min_kernel.as_ref().is_some_and(|m| !at_least(m))
    });
    !excluded && !not_included
}

fn syscall_number(name: &str) -> Option<i64> {
    name.parse::<syscalls::Sysno>().ok().map(|s| i64::from(s.id()))
}

fn action(name: &str, errno: Option<u32>) -> Result<Action, String> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRACE" => Action::Trace(errno),
        "" => return Err("missing".into()),
        "SCMP_ACT_NOTIFY" => return Err("SCMP_ACT_NOTIFY is not supported".into()),
        other => return Err(format!("unknown action {other:?}")),
    })
}

/// The rules' condition groups: one group of all conditions (ANDed), or, when one argument is
/// compared more than once, one group per condition (ORed), as runc does it. No arguments is
/// one empty group: the call matches on its number alone.
fn conditions(args: &[Arg]) -> Result<Vec<Vec<Condition>>, (String, String)> {
    let mut out = Vec::new();
    let mut per_index = BTreeMap::<u8, usize>::new();
    for (j, arg) in args.iter().enumerate() {
        let index = u8::try_from(arg.index)
            .ok()
            .filter(|i| *i < 6)
            .ok_or_else(|| (format!("args[{j}].index"), format!("{} is not an argument index (0-5)", arg.index)))?;
        let op = match arg.op.as_str() {
            "SCMP_CMP_NE" => Op::Ne,
            "SCMP_CMP_LT" => Op::Lt,
            "SCMP_CMP_LE" => Op::Le,
            "SCMP_CMP_EQ" => Op::Eq,
            "SCMP_CMP_GE" => Op::Ge,
            "SCMP_CMP_GT" => Op::Gt,
            "SCMP_CMP_MASKED_EQ" => Op::MaskedEq(arg.value),
            other => return Err((format!("args[{j}].op"), format!("unknown operator {other:?}"))),
        };
        let value = if let Op::MaskedEq(_) = op { arg.value_two } else { arg.value };
        *per_index.entry(index).or_default() += 1;
        out.push(Condition { index, op, value });
    }
    if per_index.values().any(|n| *n > 1) { Ok(out.into_iter().map(|c| vec![c]).collect()) } else { Ok(vec![out]) }
}
