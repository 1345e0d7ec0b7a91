use super::*;

fn pats(list: &[&str]) -> Patterns {
    Patterns::new(list).unwrap()
}

fn rule(path: &str, action: &str, target: Option<&str>) -> WatchRule {
    WatchRule {
        path: path.into(),
        action: action.into(),
        target: target.map(String::from),
        ignore: Vec::new(),
        include: Vec::new(),
        initial_sync: false,
        exec: None,
    }
}

fn compiled(r: &WatchRule) -> CompiledRule {
    CompiledRule::new("web", 0, r, None).unwrap()
}

#[test]
fn single_star_stays_in_one_directory() {
    let p = pats(&["*.log"]);
    assert!(p.matches("a.log"));
    assert!(!p.matches("dir/a.log"));
    assert!(!p.matches("a.logs"));
    let p = pats(&["dir/*.log"]);
    assert!(p.matches("dir/a.log"));
    assert!(!p.matches("dir/sub/a.log"));
}

#[test]
fn double_star_spans_directories() {
    let p = pats(&["**/*.log"]);
    assert!(p.matches("a.log"));
    assert!(p.matches("dir/a.log"));
    assert!(p.matches("a/b/c/d.log"));
    assert!(!p.matches("a/b/c/d.txt"));
    let p = pats(&["a/**/b"]);
    assert!(p.matches("a/b"));
    assert!(p.matches("a/x/y/b"));
    assert!(p.matches("a/x/b/file"));
    assert!(!p.matches("c/a/b"));
    let p = pats(&["a/**"]);
    assert!(p.matches("a/x"));
    assert!(p.matches("a/x/y"));
    assert!(!p.matches("ab"));
    let p = pats(&["**"]);
    assert!(p.matches("anything/at/all"));
    // A leading `**` followed by a literal is a suffix match, as in moby.
    let p = pats(&["**foo"]);
    assert!(p.matches("barfoo"));
    assert!(p.matches("x/foo"));
}

#[test]
fn directories_match_everything_under_them() {
    let p = pats(&["node_modules"]);
    assert!(p.matches("node_modules"));
    assert!(p.matches("node_modules/left-pad/index.js"));
    assert!(!p.matches("src/node_modules/x"), "not anchored anywhere but at the base");
    assert!(!p.matches("node_modules2"));
    let p = pats(&["**/node_modules"]);
    assert!(p.matches("src/node_modules/x"));
    let p = pats(&["build/"]);
    assert!(p.matches("build/out.o"));
}

#[test]
fn patterns_are_cleaned_and_leading_slash_dropped() {
    let p = pats(&["/dist", "./tmp/../cache/", "  spaced  "]);
    assert!(p.matches("dist/x.js"));
    assert!(p.matches("cache/y"));
    assert!(!p.matches("tmp/y"));
    assert!(p.matches("spaced"));
    // The paths are cleaned too.
    assert!(p.matches("./dist"));
    assert!(!p.matches("."));
}

#[test]
fn question_marks_classes_and_escapes() {
    let p = pats(&["file?.txt"]);
    assert!(p.matches("file1.txt"));
    assert!(!p.matches("file12.txt"));
    assert!(!p.matches("file/.txt"));
    let p = pats(&["[a-c]*.rs", "x[^0-9]"]);
    assert!(p.matches("bmain.rs"));
    assert!(!p.matches("dmain.rs"));
    assert!(p.matches("xa"));
    assert!(!p.matches("x1"));
    let p = pats(&[r"\*literal", "a.b", "(x)+"]);
    assert!(p.matches("*literal"));
    assert!(!p.matches("zliteral"));
    assert!(!p.matches("axb"), "dots are literal");
    assert!(p.matches("(x)+"));
    assert!(Patterns::new(["[abc"]).is_err());
    assert!(Patterns::new(["abc\\"]).is_err());
    assert!(matches!(Patterns::new(["!"]), Err(PatternError::BareExclusion)));
}

#[test]
fn exceptions_and_later_patterns_win() {
    let p = pats(&["*.log", "!keep.log"]);
    assert!(p.matches("a.log"));
    assert!(!p.matches("keep.log"));
    let p = pats(&["*.log", "!keep.log", "keep.log"]);
    assert!(p.matches("keep.log"));
    let p = pats(&["logs", "!logs/important"]);
    assert!(p.matches("logs/a"));
    assert!(!p.matches("logs/important"));
    assert!(!p.matches("logs/important/deep/file"));
    assert!(p.has_exceptions());
    let p = pats(&["**/*.log", "!**/keep.log"]);
    assert!(!p.matches("a/b/keep.log"));
    assert!(p.matches("a/b/drop.log"));
    // An exception alone ignores nothing.
    assert!(!pats(&["!x"]).matches("x"));
}

#[test]
fn ignore_files_parse_like_moby() {
    let text = "\u{feff}# comment\n\n  node_modules  \n!node_modules/keep\n*.log\n";
    assert_eq!(Patterns::parse_ignore_file(text), vec!["node_modules", "!node_modules/keep", "*.log"]);
}

#[test]
fn editor_temporaries_and_git_are_ignored() {
    let r = compiled(&rule("/src", "sync", Some("/app")));
    for ignored in [
        "/src/.main.rs.swp",
        "/src/sub/.main.rs.swx",
        "/src/4913",
        "/src/deep/er/4913",
        "/src/foo~",
        "/src/.#foo",
        "/src/#foo#",
        "/src/main.rs___jb_tmp___",
        "/src/main.rs___jb_old___",
        "/src/.idea/workspace.xml",
        "/src/.x.kate-swp",
        "/src/123-go-tmp-umask",
        "/src/.git/HEAD",
        "/src/.git",
        "/src/vendor/lib/.git/index",
    ] {
        assert_eq!(r.map(Path::new(ignored)), None, "{ignored}");
    }
    for kept in ["/src/main.rs", "/src/.swp", "/src/a.swf", "/src/49130", "/src/.gitignore", "/src/#foo"] {
        assert!(r.map(Path::new(kept)).is_some(), "{kept}");
    }
}

#[test]
fn maps_into_the_target() {
    let r = compiled(&rule("/home/u/proj/src", "sync", Some("/app/src/")));
    assert_eq!(r.map(Path::new("/home/u/proj/src/a/b.rs")).as_deref(), Some("/app/src/a/b.rs"));
    assert_eq!(r.map(Path::new("/home/u/proj/src/.env")).as_deref(), Some("/app/src/.env"));
    assert_eq!(r.map(Path::new("/home/u/proj/src")).as_deref(), Some("/app/src"));
    assert_eq!(r.map(Path::new("/home/u/proj/srcx/a")), None);
    assert_eq!(r.map(Path::new("/home/u/proj/other")), None);
    let root = compiled(&rule("/w", "sync", Some("/")));
    assert_eq!(root.map(Path::new("/w/.env")).as_deref(), Some("/.env"));
    assert_eq!(root.map(Path::new("/w")).as_deref(), Some("/"));
}

#[test]
fn single_file_rules_map_to_the_target_itself() {
    let r = compiled(&rule("/proj/package.json", "sync+restart", Some("/app/package.json")));
    assert_eq!(r.map(Path::new("/proj/package.json")).as_deref(), Some("/app/package.json"));
    assert_eq!(r.map(Path::new("/proj/package-lock.json")), None);
    let swap = compiled(&rule("/proj/.x.swp", "sync", Some("/x")));
    assert_eq!(swap.map(Path::new("/proj/.x.swp")), None);
}

#[test]
fn rule_ignores_are_relative_to_the_rule_path() {
    let mut w = rule("/proj/web", "sync", Some("/app"));
    w.ignore = vec!["node_modules/".into(), "**/*.log".into(), "!keep.log".into(), "/tmp".into()];
    let r = compiled(&w);
    assert_eq!(r.map(Path::new("/proj/web/node_modules/x/index.js")), None);
    assert_eq!(r.map(Path::new("/proj/web/a/b/debug.log")), None);
    assert_eq!(r.map(Path::new("/proj/web/keep.log")).as_deref(), Some("/app/keep.log"));
    assert_eq!(r.map(Path::new("/proj/web/tmp/x")), None);
    assert_eq!(r.map(Path::new("/proj/web/src/tmp/x")).as_deref(), Some("/app/src/tmp/x"));
    assert!(r.map(Path::new("/proj/web/src/index.js")).is_some());
    assert!(r.skips_dir(Path::new("/proj/web/.git")));
    assert!(!r.skips_dir(Path::new("/proj/web/node_modules")), "exceptions exist, so no pruning");
}

#[test]
fn include_lists_come_first() {
    let mut w = rule("/proj", "rebuild", None);
    w.include = vec!["src".into(), "*.toml".into()];
    w.ignore = vec!["src/gen".into()];
    let r = compiled(&w);
    assert_eq!(r.map(Path::new("/proj/src/main.rs")).as_deref(), Some(""));
    assert_eq!(r.map(Path::new("/proj/Cargo.toml")).as_deref(), Some(""));
    assert_eq!(r.map(Path::new("/proj/README.md")), None);
    assert_eq!(r.map(Path::new("/proj/sub/x.toml")), None, "`*` does not cross `/`");
    assert_eq!(r.map(Path::new("/proj/src/gen/x.rs")), None, "ignores apply after includes");
    assert!(r.matches(Path::new("/proj/src/lib.rs")));
}

#[test]
fn the_build_context_dockerignore_applies_under_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join(".dockerignore"), "# deps\nnode_modules\n*.md\n!README.md\n").unwrap();
    std::fs::write(ctx.join("Dockerfile.dev.dockerignore"), "*.rs\n").unwrap();
    let w = rule(ctx.join("src").to_str().unwrap(), "sync", Some("/app"));
    let r = CompiledRule::new("web", 3, &w, Some(&ctx)).unwrap();
    assert_eq!(r.index(), 3);
    // `node_modules` is relative to the context: it is ctx/node_modules, not ctx/src/node_modules.
    assert!(r.map(&ctx.join("src/node_modules/x")).is_some());
    assert_eq!(r.map(&ctx.join("src/NOTES.md")), Some("/app/NOTES.md".into()), "*.md is ctx/*.md only");
    let wide = rule(ctx.to_str().unwrap(), "sync", Some("/app"));
    let r = CompiledRule::new("web", 0, &wide, Some(&ctx)).unwrap();
    assert_eq!(r.map(&ctx.join("node_modules/a/b.js")), None);
    assert_eq!(r.map(&ctx.join("CHANGES.md")), None);
    assert_eq!(r.map(&ctx.join("README.md")).as_deref(), Some("/app/README.md"));
    assert!(r.map(&ctx.join("main.rs")).is_some());
    assert!(r.skips_dir(&ctx.join(".git")));
    assert!(r.skips_dir(&ctx.join(".idea/x")));
    assert!(!r.skips_dir(&ctx.join("node_modules")), "the .dockerignore has exceptions");
    // A Dockerfile-specific ignore file wins over .dockerignore.
    let r = CompiledRule::with_dockerfile("web", 0, &wide, Some(&ctx), Some("Dockerfile.dev")).unwrap();
    assert_eq!(r.map(&ctx.join("main.rs")), None);
    assert!(r.map(&ctx.join("CHANGES.md")).is_some());
    // A context without an ignore file is fine.
    let r = CompiledRule::new("web", 0, &wide, Some(&dir.path().join("nowhere"))).unwrap();
    assert!(r.map(&ctx.join("CHANGES.md")).is_some());
}

#[test]
fn rules_are_validated_and_expose_their_settings() {
    assert!(matches!(
        CompiledRule::new("web", 1, &rule("/x", "sink", Some("/a")), None),
        Err(RuleError::UnknownAction { index: 1, .. })
    ));
    assert!(matches!(
        CompiledRule::new("web", 0, &rule("rel", "sync", Some("/a")), None),
        Err(RuleError::RelativePath { .. })
    ));
    let err = CompiledRule::new("web", 0, &rule("/x", "sync+exec", None), None).unwrap_err();
    assert!(err.to_string().contains("sync+exec needs a target"), "{err}");
    let mut bad = rule("/x", "sync", Some("/a"));
    bad.ignore = vec!["[oops".into()];
    assert!(matches!(CompiledRule::new("web", 0, &bad, None), Err(RuleError::Pattern { .. })));

    let mut w = rule("/x", "sync+exec", Some("/a"));
    w.initial_sync = true;
    w.exec = Some(serde_json::json!({"command": ["kill", "-HUP", "1"]}));
    let r = compiled(&w);
    assert_eq!(r.service(), "web");
    assert_eq!(r.action(), Action::SyncExec);
    assert_eq!(r.path(), Path::new("/x"));
    assert_eq!(r.target(), Some("/a"));
    assert!(r.initial_sync());
    assert_eq!(r.exec().unwrap()["command"][0], "kill");
    for (text, action) in [
        ("sync", Action::Sync),
        ("sync+restart", Action::SyncRestart),
        ("restart", Action::Restart),
        ("rebuild", Action::Rebuild),
        ("sync+exec", Action::SyncExec),
    ] {
        assert_eq!(Action::parse(text), Some(action));
        assert_eq!(action.to_string(), text);
    }
    assert!(compiled(&rule("/x", "restart", None)).target().is_none());
}
