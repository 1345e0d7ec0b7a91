//! `user:` resolved against the container's own /etc/passwd and /etc/group, as docker does
//! with runc's `user.GetExecUser` (moby `daemon/oci_linux.go` `getUser`).
//!
//! The functions take the files' contents (or `None` when a file is missing) so the rules can
//! be tested without a root filesystem; the container's init reads the files and calls them.

/// The highest uid or gid runc accepts (`math.MaxInt32`).
const MAX_ID: u32 = i32::MAX as u32;

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups for `setgroups`: the primary gid first (docker adds it so a
    /// process cannot shed it to get around a group-denied file), then the groups of the
    /// user in /etc/group, then `group_add`.
    pub additional_gids: Vec<u32>,
    /// The home directory from passwd, `/` when there is no entry: `HOME` when unset.
    pub home: String,
}

/// A user spec the container's files cannot satisfy; the texts are runc's, which docker users
/// already know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A user name with no passwd entry (or no passwd file).
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A group name with no group entry (or no group file).
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    /// A numeric id outside 0..=2147483647.
    #[error("{what} {value} is out of range (0 to 2147483647)")]
    Range {
        /// `uid` or `gid`.
        what: &'static str,
        /// The id as written.
        value: String,
    },
}

/// One passwd line: `name:password:uid:gid:gecos:home:shell`.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// One group line: `name:password:gid:member,member`.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Lines that are not blank, trimmed as runc trims them. Lines whose ids are not numbers are
/// skipped (runc reads them as id 0, which would make a malformed line root).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    lines(text).filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next();
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        let _gecos = f.next();
        let home = f.next().unwrap_or("");
        Some(PasswdEntry { name, uid, gid, home })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    lines(text).filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next();
        let gid = f.next()?.parse().ok()?;
        let members = f.next().unwrap_or("").split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
        Some(GroupEntry { name, gid, members })
    })
}

/// A numeric id as runc's `strconv.Atoi` reads it: `None` when not a number at all, an error
/// when a number outside runc's range.
fn numeric(text: &str, what: &'static str) -> Result<Option<u32>, UserError> {
    let Ok(n) = text.parse::<i64>() else { return Ok(None) };
    match u32::try_from(n) {
        Ok(id) if id <= MAX_ID => Ok(Some(id)),
        _ => Err(UserError::Range { what, value: text.to_owned() }),
    }
}

/// Resolves a `user:` spec (`""`, `name`, `uid`, `name:group`, `uid:gid`, mixed) and the
/// `group_add` entries against the container's passwd and group files.
///
/// As in runc: the empty spec is root; a number is a uid whether or not passwd has it (then
/// the gid is 0); a name must be in passwd. Without an explicit group the gid is the passwd
/// entry's and every group listing the user as a member is added; with one, only that group
/// counts. `group_add` names must be in /etc/group, numbers are taken as they are.
pub fn resolve_user(
    spec: &str,
    additional_groups: &[String],
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, UserError> {
    // runc splits at colons and ignores anything after the second field.
    let mut parts = spec.split(':');
    let user_arg = parts.next().unwrap_or("");
    let group_arg = parts.next().unwrap_or("");
    let uid_arg = numeric(user_arg, "uid")?;
    let gid_arg = numeric(group_arg, "gid")?;

    let mut user = ExecUser { uid: 0, gid: 0, additional_gids: Vec::new(), home: "/".to_owned() };
    let found = passwd.into_iter().flat_map(passwd_entries).find(|u| match (user_arg, uid_arg) {
        ("", _) => u.uid == 0,
        (_, Some(uid)) => u.uid == uid,
        (name, None) => u.name == name,
    });
    let mut matched_name = None;
    match (found, uid_arg) {
        (Some(entry), _) => {
            matched_name = Some(entry.name);
            user.uid = entry.uid;
            user.gid = entry.gid;
            if !entry.home.is_empty() {
                user.home = entry.home.to_owned();
            }
        }
        (None, Some(uid)) => user.uid = uid,
        (None, None) if user_arg.is_empty() => {}
        (None, None) => return Err(UserError::NoUser(user_arg.to_owned())),
    }

    let mut supplementary = Vec::new();
    if !group_arg.is_empty() {
        let found = group.into_iter().flat_map(group_entries).find(|g| match gid_arg {
            Some(gid) => g.gid == gid,
            None => g.name == group_arg,
        });
        user.gid = match (found, gid_arg) {
            (Some(entry), _) => entry.gid,
            (None, Some(gid)) => gid,
            (None, None) => return Err(UserError::NoGroup(group_arg.to_owned())),
        };
    } else if let Some(name) = matched_name {
        supplementary =
            group.into_iter().flat_map(group_entries).filter(|g| g.members.contains(&name)).map(|g| g.gid).collect();
    }

    let added = additional_gids(additional_groups, group)?;
    let mut gids = vec![user.gid];
    for gid in supplementary.into_iter().chain(added) {
        if !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    user.additional_gids = gids;
    Ok(user)
}

/// `group_add` entries as gids (runc's `GetAdditionalGroups`): a name or a number that names a
/// group in /etc/group is that group; any other number is taken as is; any other name is an
/// error.
pub fn additional_gids(groups: &[String], group: Option<&str>) -> Result<Vec<u32>, UserError> {
    let mut out = Vec::new();
    for wanted in groups {
        let wanted = wanted.as_str();
        let entry = group.into_iter().flat_map(group_entries).find(|g| g.name == wanted || g.gid.to_string() == wanted);
        let gid = match entry {
            Some(g) => g.gid,
            None => numeric(wanted, "gid")?.ok_or_else(|| UserError::NoGroup(wanted.to_owned()))?,
        };
        if !out.contains(&gid) {
            out.push(gid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
  app:x:1000:1000:App,,,:/home/app:/bin/sh
nohome:x:1001:1001::
broken:x:abc:0::/broken:/bin/sh
";
    const GROUP: &str = "root:x:0:
daemon:x:1:
www-data:x:33:
docker:x:999:app, other
audio:x:29:app
app:x:1000:
staff:x:50:
";

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn resolve(spec: &str) -> Result<ExecUser, UserError> {
        resolve_user(spec, &[], Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn the_empty_spec_is_root_with_roots_home() {
        let u = resolve("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, [0]);
        let bare = resolve_user("", &[], None, None).unwrap();
        assert_eq!((bare.uid, bare.gid, bare.home.as_str()), (0, 0, "/"));
    }

    #[test]
    fn names_take_ids_home_and_member_groups_from_the_files() {
        let u = resolve("app").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/app"));
        assert_eq!(u.additional_gids, [1000, 999, 29], "primary gid first, then groups listing app");
        let w = resolve("www-data").unwrap();
        assert_eq!((w.uid, w.gid, w.home.as_str(), w.additional_gids), (33, 33, "/var/www", vec![33]));
    }

    #[test]
    fn numbers_are_uids_with_or_without_an_entry() {
        let u = resolve("1000").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/app"));
        assert_eq!(u.additional_gids, [1000, 999, 29], "a matched entry's groups count too");
        let unknown = resolve("4242").unwrap();
        assert_eq!((unknown.uid, unknown.gid, unknown.home.as_str()), (4242, 0, "/"));
        assert_eq!(unknown.additional_gids, [0]);
        let no_files = resolve_user("4242:4343", &[], None, None).unwrap();
        assert_eq!((no_files.uid, no_files.gid), (4242, 4343));
    }

    #[test]
    fn an_explicit_group_replaces_the_primary_and_drops_member_groups() {
        let u = resolve("app:staff").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert_eq!(u.additional_gids, [50], "runc adds member groups only without an explicit group");
        let n = resolve("app:5000").unwrap();
        assert_eq!((n.uid, n.gid), (1000, 5000));
        let mixed = resolve("33:docker").unwrap();
        assert_eq!((mixed.uid, mixed.gid), (33, 999));
        let by_gid = resolve("4242:29").unwrap();
        assert_eq!((by_gid.uid, by_gid.gid), (4242, 29));
        assert_eq!(resolve("app:staff:extra").unwrap().gid, 50, "fields after the second are ignored");
    }

    #[test]
    fn unknown_names_are_errors_with_runcs_text() {
        assert_eq!(
            resolve("nobody").unwrap_err().to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert_eq!(
            resolve("app:wheel").unwrap_err().to_string(),
            "unable to find group wheel: no matching entries in group file"
        );
        assert_eq!(resolve_user("app", &[], None, Some(GROUP)).unwrap_err(), UserError::NoUser("app".into()));
        assert_eq!(resolve_user("0:staff", &[], Some(PASSWD), None).unwrap_err(), UserError::NoGroup("staff".into()));
    }

    #[test]
    fn out_of_range_ids_are_refused() {
        assert!(matches!(resolve("4294967296"), Err(UserError::Range { what: "uid", .. })));
        assert!(matches!(resolve("-1"), Err(UserError::Range { what: "uid", .. })));
        assert!(matches!(resolve("0:2147483648"), Err(UserError::Range { what: "gid", .. })));
        assert_eq!(resolve("2147483647").unwrap().uid, 2_147_483_647);
    }

    #[test]
    fn malformed_lines_are_skipped_and_missing_homes_are_root() {
        assert!(resolve("broken").is_err(), "a line with a non-numeric uid is not an entry");
        let u = resolve("nohome").unwrap();
        assert_eq!((u.uid, u.home.as_str()), (1001, "/"));
        assert_eq!(resolve("app").unwrap().home, "/home/app", "leading blanks are trimmed, as runc does");
    }

    #[test]
    fn group_add_resolves_names_and_keeps_numbers() {
        let u = resolve_user("app", &strings(&["staff", "audio", "12345", "33"]), Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(u.additional_gids, [1000, 999, 29, 50, 12345, 33], "no duplicates, order kept");
        let err = resolve_user("", &strings(&["wheel"]), Some(PASSWD), Some(GROUP)).unwrap_err();
        assert_eq!(err, UserError::NoGroup("wheel".into()));
        assert_eq!(additional_gids(&strings(&["7", "7"]), None).unwrap(), [7]);
        assert!(additional_gids(&strings(&["wheel"]), None).is_err(), "a name needs a group file");
    }
}
