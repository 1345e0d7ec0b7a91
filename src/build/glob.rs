//! Go's `filepath.Match` for one path component, which COPY sources use for wildcards:
//! `*` is any run of characters, `?` one character, `[...]` a class of characters and ranges
//! (`[^...]` negated), `\` escapes the next character.

/// Whether the component has wildcards at all (Go's `hasMeta`); a component without them
/// names one path.
pub(crate) fn has_meta(part: &str) -> bool {
    part.contains(['*', '?', '[', '\\'])
}

/// Go reports a malformed pattern even when an earlier character already fails to match, so a
/// source is checked once up front, whatever the directory holds.
pub(crate) fn validate(pattern: &str) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err("trailing backslash".into());
                }
                i += 2;
            }
            '[' => {
                let (_, end) = class(&chars, i + 1, ' ').ok_or("malformed character class")?;
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Whether `name` matches `pattern` (a malformed pattern matches nothing; see [`validate`]).
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    // Iterative with one backtrack point for the last `*`, as `*` never needs more.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() => {
                    if let Some((ok, end)) = class(p, pi + 1, n[ni])
                        && ok
                    {
                        pi = end;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if ni < n.len() && p.get(pi + 1) == Some(&n[ni]) => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if ni < n.len() && c != '?' && c != '[' && c != '\\' && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: let the last `*` take one more character.
        match star {
            Some((sp, sn)) if sn < n.len() => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

/// Matches `c` against the class starting after `[` at `start`: whether it matched and the index
/// after `]`, or `None` when the class is malformed.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        let (lo, next) = escaped(p, i)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
            let (h, next) = escaped(p, i + 1)?;
            hi = h;
            i = next;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

/// One class character, `\x` being `x`; `-` and `[` unescaped are malformed, as in Go.
fn escaped(p: &[char], i: usize) -> Option<(char, usize)> {
    match *p.get(i)? {
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        '-' | ']' => None,
        c => Some((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_semantics() {
        for (pattern, name, want) in [
            ("*", "abc", true),
            ("*", ".hidden", true),
            ("a*", "a", true),
            ("a*c", "abxc", true),
            ("a*c", "abxcd", false),
            ("*.txt", "x.txt", true),
            ("*.txt", "x.txt.bak", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("[abc]", "b", true),
            ("[^abc]", "b", false),
            ("[^abc]", "d", true),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a*b*c", "aXbYbZc", true),
            ("é?", "éa", true),
        ] {
            assert_eq!(matches(pattern, name), want, "{pattern} vs {name}");
        }
        assert!(validate("[").is_err());
        assert!(validate("[]").is_err());
        assert!(validate("a\\").is_err());
        assert!(validate("[a-]").is_err());
        assert!(validate("[a-c]*").is_ok());
    }
}
