//! The capability set of a container, computed as docker's `TweakCapabilities` does: docker's
//! default set, then `cap_drop` and `cap_add`, or every capability for `privileged`.
//!
//! Names are matched case-insensitively and take an optional `CAP_` prefix; `ALL` stands for
//! every capability the running kernel knows. A name the kernel does not know is an error, as
//! it is in docker ("unknown capability").

use std::collections::BTreeSet;
use std::str::FromStr;

use caps::Capability;

/// docker's default capabilities (moby `oci/caps/defaults.go`), which compose inherits.
pub const DOCKER_DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The word that stands for every capability in `cap_add` and `cap_drop`.
const ALL: &str = "ALL";

/// A `cap_add` or `cap_drop` entry docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    /// The name is not a capability this kernel knows.
    #[error("{key}: unknown capability {name:?}")]
    Unknown {
        /// `cap_add` or `cap_drop`, so the message points at the key to fix.
        key: &'static str,
        /// The name in canonical form (`CAP_FOO`).
        name: String,
    },
}

/// Every capability the running kernel knows, by name: what `privileged` and `ALL` grant.
///
/// Probed with `PR_CAPBSET_READ`, which needs no privilege; capabilities newer than the kernel
/// are left out so the bounding set can be applied without `EINVAL`.
pub fn kernel_capabilities() -> Vec<String> {
    let mut all: Vec<String> = caps::runtime::thread_all_supported().iter().map(ToString::to_string).collect();
    all.sort();
    all
}

/// The container's capabilities, sorted, from its `cap_add`, `cap_drop` and `privileged` keys,
/// against the capabilities of the running kernel.
pub fn capability_set(cap_add: &[String], cap_drop: &[String], privileged: bool) -> Result<Vec<String>, CapsError> {
    capability_set_among(&kernel_capabilities(), cap_add, cap_drop, privileged)
}

/// [`capability_set`] against a given list of known capabilities (`known`), so the rules can
/// be checked without depending on the kernel the tests run on.
pub fn capability_set_among(
    known: &[String],
    cap_add: &[String],
    cap_drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, CapsError> {
    if privileged {
        return Ok(sorted(known.iter().cloned()));
    }
    let add = normalize(known, cap_add, "cap_add")?;
    let drop = normalize(known, cap_drop, "cap_drop")?;
    let set: BTreeSet<String> = if add.contains(ALL) {
        // Everything but what is dropped (an `ALL` in cap_drop is then ignored, as in docker).
        known.iter().filter(|c| !drop.contains(c.as_str())).cloned().collect()
    } else if drop.contains(ALL) {
        // Start from nothing: only what is added.
        add
    } else {
        DOCKER_DEFAULT_CAPS.iter().filter(|c| !drop.contains(**c)).map(|c| (*c).to_owned()).chain(add).collect()
    };
    Ok(set.into_iter().collect())
}

fn sorted(names: impl Iterator<Item = String>) -> Vec<String> {
    names.collect::<BTreeSet<_>>().into_iter().collect()
}

/// Canonical names (`CAP_NET_ADMIN`, or `ALL`) of one key's entries.
fn normalize(known: &[String], names: &[String], key: &'static str) -> Result<BTreeSet<String>, CapsError> {
    names
        .iter()
        .map(|raw| {
            let upper = raw.trim().to_ascii_uppercase();
            if upper == ALL {
                return Ok(upper);
            }
            let name = caps::to_canonical(&upper);
            // The crate knows the name and so does the kernel: both must hold.
            if Capability::from_str(&name).is_ok() && known.contains(&name) {
                Ok(name)
            } else {
                Err(CapsError::Unknown { key, name })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn known() -> Vec<String> {
        sorted(caps::all().iter().map(ToString::to_string))
    }

    fn set(add: &[&str], drop: &[&str]) -> Result<Vec<String>, CapsError> {
        capability_set_among(&known(), &strings(add), &strings(drop), false)
    }

    #[test]
    fn no_keys_give_dockers_defaults_sorted() {
        let got = set(&[], &[]).unwrap();
        assert_eq!(got, sorted(DOCKER_DEFAULT_CAPS.iter().map(|c| (*c).to_owned())));
        assert_eq!(got.len(), 14);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn names_are_case_insensitive_and_the_prefix_is_optional() {
        let got = set(&["net_admin", "CAP_sys_ptrace", "Sys_Time"], &["mknod", "cap_net_raw"]).unwrap();
        for cap in ["CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME", "CAP_CHOWN"] {
            assert!(got.contains(&cap.to_owned()), "{cap} in {got:?}");
        }
        assert!(!got.contains(&"CAP_MKNOD".to_owned()));
        assert!(!got.contains(&"CAP_NET_RAW".to_owned()));
        assert_eq!(got.len(), 14 + 3 - 2);
    }

    #[test]
    fn drop_all_then_add_keeps_only_the_added() {
        assert_eq!(set(&["NET_BIND_SERVICE"], &["ALL"]).unwrap(), ["CAP_NET_BIND_SERVICE"]);
        assert_eq!(set(&[], &["all"]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn add_all_grants_everything_but_the_dropped() {
        let got = set(&["ALL"], &["sys_admin"]).unwrap();
        assert_eq!(got.len(), known().len() - 1);
        assert!(!got.contains(&"CAP_SYS_ADMIN".to_owned()));
        assert_eq!(set(&["ALL"], &["ALL"]).unwrap().len(), known().len(), "add ALL wins, as in docker");
    }

    #[test]
    fn unknown_names_are_errors_naming_the_key() {
        let err = set(&["CAP_FOO"], &[]).unwrap_err();
        assert_eq!(err.to_string(), r#"cap_add: unknown capability "CAP_FOO""#);
        let err = set(&[], &["bogus"]).unwrap_err();
        assert_eq!(err.to_string(), r#"cap_drop: unknown capability "CAP_BOGUS""#);
    }

    #[test]
    fn capabilities_the_kernel_lacks_are_unknown() {
        let old_kernel = strings(&["CAP_CHOWN", "CAP_KILL"]);
        let err = capability_set_among(&old_kernel, &strings(&["bpf"]), &[], false).unwrap_err();
        assert_eq!(err, CapsError::Unknown { key: "cap_add", name: "CAP_BPF".into() });
    }

    #[test]
    fn privileged_gets_every_known_capability_and_ignores_the_keys() {
        let got = capability_set_among(&known(), &strings(&["bogus"]), &strings(&["ALL"]), true).unwrap();
        assert_eq!(got, known());
    }

    #[test]
    fn the_running_kernel_knows_at_least_dockers_defaults() {
        let kernel = kernel_capabilities();
        for cap in DOCKER_DEFAULT_CAPS {
            assert!(kernel.contains(&cap.to_owned()), "{cap}");
        }
        assert_eq!(capability_set(&[], &[], true).unwrap(), kernel);
    }
}
