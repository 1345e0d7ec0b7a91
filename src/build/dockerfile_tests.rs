use super::*;

fn kinds(text: &str) -> Vec<InstructionKind> {
    parse(text).unwrap().instructions.into_iter().map(|i| i.kind).collect()
}

fn one(text: &str) -> Instruction {
    let df = parse(&format!("FROM scratch\n{text}")).unwrap();
    df.instructions.into_iter().nth(1).unwrap()
}

fn vars(name: &str) -> Option<String> {
    match name {
        "A" => Some("a".into()),
        "EMPTY" => Some(String::new()),
        "SP" => Some("x y".into()),
        _ => None,
    }
}

fn ex(word: &str) -> String {
    expand(word, &vars, '\\').unwrap()
}

#[test]
fn from_forms() {
    let k = kinds("from --platform=linux/arm64 alpine:3.20 As Builder\nFROM builder\n");
    assert_eq!(
        k[0],
        InstructionKind::From {
            platform: Some("linux/arm64".into()),
            image: "alpine:3.20".into(),
            name: Some("Builder".into())
        }
    );
    assert!(matches!(&k[1], InstructionKind::From { image, name: None, .. } if image == "builder"));
    assert!(matches!(parse("FROM a b"), Err(DockerfileError::BadArguments { line: 1, .. })));
    assert!(matches!(parse("FROM"), Err(DockerfileError::MissingArguments { line: 1, .. })));
}

#[test]
fn line_numbers_and_comments() {
    let df = parse("# a comment\n\nFROM a\n  # indented comment\n  RUN x\n\nCMD y\n").unwrap();
    let lines: Vec<usize> = df.instructions.iter().map(|i| i.line).collect();
    assert_eq!(lines, [3, 5, 7]);
}

#[test]
fn continuations() {
    let i = one("RUN apt-get update && \\\n    apt-get install -y curl \\  \n && rm -rf /var/lib/apt");
    assert_eq!(i.line, 2);
    assert_eq!(
        i.kind,
        InstructionKind::Run {
            flags: vec![],
            command: Command::Shell("apt-get update &&     apt-get install -y curl  && rm -rf /var/lib/apt".into())
        }
    );
}

#[test]
fn comments_and_empty_lines_inside_continuation_are_skipped() {
    let df = parse("FROM a\nRUN echo one \\\n# a comment\n\n   # another\n  two\nUSER me\n").unwrap();
    assert_eq!(
        df.instructions[1].kind,
        InstructionKind::Run { flags: vec![], command: Command::Shell("echo one   two".into()) }
    );
    assert_eq!(df.instructions[2].line, 7);
}

#[test]
fn escape_directive_backtick() {
    let df =
        parse("# escape=`\n\nFROM mcr.microsoft.com/windows\nCOPY testfile.txt c:\\ `\n  c:\\dest\\\nRUN dir c:\\\n")
            .unwrap();
    assert_eq!(df.escape, '`');
    let InstructionKind::Copy(c) = &df.instructions[1].kind else { panic!() };
    assert_eq!(c.sources, ["testfile.txt", "c:\\"]);
    assert_eq!(c.dest, "c:\\dest\\");
    assert_eq!(
        df.instructions[2].kind,
        InstructionKind::Run { flags: vec![], command: Command::Shell("dir c:\\".into()) }
    );
    assert_eq!(df.instructions[2].line, 6);
}

#[test]
fn syntax_directive_is_recorded_with_a_note() {
    let df = parse("# syntax=docker/dockerfile:1\n# escape=\\\nFROM a\n").unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.notes.len(), 1);
    assert!(df.notes[0].contains("ignored"));
}

#[test]
fn directives_only_at_top() {
    // After a comment, `# escape=` is just a comment.
    let df = parse("# hello\n# escape=`\nFROM a\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert!(matches!(parse("# escape=x\nFROM a"), Err(DockerfileError::BadDirective { line: 1, .. })));
    assert!(matches!(parse("# escape=`\n# escape=`\nFROM a"), Err(DockerfileError::BadDirective { line: 2, .. })));
}

#[test]
fn heredoc_run() {
    let df = parse("FROM a\nRUN <<EOF\necho $HOME\n  indented\nEOF\nUSER x\n").unwrap();
    let run = &df.instructions[1];
    assert_eq!(run.kind, InstructionKind::Run { flags: vec![], command: Command::Shell("<<EOF".into()) });
    assert_eq!(
        run.heredocs,
        [Heredoc { name: "EOF".into(), content: "echo $HOME\n  indented\n".into(), expand: true, strip_tabs: false }]
    );
    assert_eq!(df.instructions[2].line, 6);
}

#[test]
fn heredoc_strip_tabs_and_quoted() {
    let i = one("RUN python3 <<-'PY'\n\tprint('$x')\n\t\tnested\n\tPY");
    assert_eq!(i.heredocs[0].content, "print('$x')\nnested\n");
    assert!(i.heredocs[0].strip_tabs);
    assert!(!i.heredocs[0].expand);
    let i = one("RUN cat <<\"END\"\nx\nEND");
    assert_eq!(i.heredocs[0].name, "END");
    assert!(!i.heredocs[0].expand);
}

#[test]
fn two_heredocs_on_one_line() {
    let i = one("RUN <<A bash && <<B sh\necho a\nA\necho b\nB");
    let names: Vec<&str> = i.heredocs.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["A", "B"]);
    assert_eq!(i.heredocs[0].content, "echo a\n");
    assert_eq!(i.heredocs[1].content, "echo b\n");
}

#[test]
fn copy_heredoc() {
    let i = one("COPY --chmod=0755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hi\nEOF");
    let InstructionKind::Copy(c) = &i.kind else { panic!() };
    assert_eq!(c.sources, ["<<EOF"]);
    assert_eq!(c.dest, "/usr/local/bin/hello");
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert_eq!(i.heredocs[0].content, "#!/bin/sh\necho hi\n");
}

#[test]
fn not_heredocs() {
    assert!(one("RUN echo $((1<<2))").heredocs.is_empty());
    assert!(one("RUN cat <<<hello").heredocs.is_empty());
    assert!(one("RUN echo '<<EOF'").heredocs.is_empty());
}

#[test]
fn unterminated_heredoc() {
    let err = parse("FROM a\n\nRUN <<EOF\necho\n").unwrap_err();
    assert_eq!(err, DockerfileError::UnterminatedHeredoc { delimiter: "EOF".into(), line: 3 });
    assert!(err.to_string().contains("line 3"));
}

#[test]
fn exec_and_shell_forms() {
    assert_eq!(
        one(r#"CMD ["nginx", "-g", "daemon off;"]"#).kind,
        InstructionKind::Cmd(Command::Exec(vec!["nginx".into(), "-g".into(), "daemon off;".into()]))
    );
    assert_eq!(one("ENTRYPOINT exec top -b").kind, InstructionKind::Entrypoint(Command::Shell("exec top -b".into())));
    assert_eq!(
        one("RUN [\"a\", 'b']").kind,
        InstructionKind::Run { flags: vec![], command: Command::Shell("[\"a\", 'b']".into()) }
    );
    assert_eq!(one("CMD []").kind, InstructionKind::Cmd(Command::Exec(vec![])));
}

#[test]
fn run_flags() {
    let i = one("RUN --mount=type=cache,target=/root/.cache --network=none pip install x");
    let InstructionKind::Run { flags, command } = i.kind else { panic!() };
    assert_eq!(flags[0], Flag { name: "mount".into(), value: Some("type=cache,target=/root/.cache".into()) });
    assert_eq!(flags[1].name, "network");
    assert_eq!(command, Command::Shell("pip install x".into()));
    assert!(matches!(parse("FROM a\nRUN --bogus=1 x"), Err(DockerfileError::BadFlag { line: 2, .. })));
    assert!(matches!(parse("FROM a\nRUN --mount x"), Err(DockerfileError::BadFlag { .. })));
}

#[test]
fn copy_and_add() {
    let InstructionKind::Copy(c) = one("COPY --from=build --chown=1:1 --link a b /dst/").kind else { panic!() };
    assert_eq!((c.from.as_deref(), c.chown.as_deref(), c.link), (Some("build"), Some("1:1"), true));
    assert_eq!(c.sources, ["a", "b"]);
    assert_eq!(c.dest, "/dst/");
    let InstructionKind::Copy(c) = one(r#"COPY ["with space", "/d"]"#).kind else { panic!() };
    assert_eq!(c.sources, ["with space"]);
    let InstructionKind::Add(a) = one("ADD --checksum=sha256:abc https://x/y.tgz /y").kind else { panic!() };
    assert_eq!(a.flags, [Flag { name: "checksum".into(), value: Some("sha256:abc".into()) }]);
    assert!(matches!(parse("FROM a\nADD --from=x a b"), Err(DockerfileError::BadFlag { .. })));
    assert!(matches!(parse("FROM a\nCOPY onlyone"), Err(DockerfileError::MissingArguments { line: 2, .. })));
}

#[test]
fn env_forms() {
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        one(r#"ENV A=1 B="two words" C='x y' D=a\ b"#).kind,
        InstructionKind::Env(vec![kv("A", "1"), kv("B", "\"two words\""), kv("C", "'x y'"), kv("D", "a\\ b")])
    );
    assert_eq!(one("ENV LEGACY some value here").kind, InstructionKind::Env(vec![kv("LEGACY", "some value here")]));
    assert!(matches!(parse("FROM a\nENV A=1 B"), Err(DockerfileError::BadArguments { line: 2, .. })));
    assert!(matches!(parse("FROM a\nENV ONLY"), Err(DockerfileError::BadArguments { .. })));
    // The builder removes the quotes with expand().
    assert_eq!(ex("\"two words\""), "two words");
}

#[test]
fn label_quoting() {
    let InstructionKind::Label(l) =
        one(r#"LABEL "com.example.vendor"="ACME Inc" version=1.0 description="a \"quoted\" thing""#).kind
    else {
        panic!()
    };
    assert_eq!(l[0], ("\"com.example.vendor\"".into(), "\"ACME Inc\"".into()));
    assert_eq!(l[1], ("version".into(), "1.0".into()));
    assert_eq!(ex(&l[2].1), "a \"quoted\" thing");
    assert_eq!(
        one("MAINTAINER me <me@x>").kind,
        InstructionKind::Label(vec![("maintainer".into(), "me <me@x>".into())])
    );
}

#[test]
fn args_and_global_args() {
    let df = parse("ARG BASE=alpine\nARG V1 V2=x\nFROM ${BASE}\nARG V1\n").unwrap();
    assert_eq!(
        global_args(&df),
        [("BASE".into(), Some("alpine".into())), ("V1".into(), None), ("V2".into(), Some("x".into()))]
    );
    let s = stages(&df);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].instructions.len(), 1);
    assert!(matches!(parse("RUN x\nFROM a"), Err(DockerfileError::NoStage { line: 1, .. })));
}

#[test]
fn healthcheck() {
    assert_eq!(one("HEALTHCHECK NONE").kind, InstructionKind::Healthcheck(Healthcheck::None));
    let i = one(
        "HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --start-interval=1s --retries=4 CMD curl -f http://localhost/",
    );
    assert_eq!(
        i.kind,
        InstructionKind::Healthcheck(Healthcheck::Cmd {
            interval: Some("5s".into()),
            timeout: Some("3s".into()),
            start_period: Some("10s".into()),
            start_interval: Some("1s".into()),
            retries: Some(4),
            command: Command::Shell("curl -f http://localhost/".into()),
        })
    );
    let i = one(r#"HEALTHCHECK cmd ["true"]"#);
    assert!(matches!(i.kind, InstructionKind::Healthcheck(Healthcheck::Cmd { command: Command::Exec(_), .. })));
    assert!(parse("FROM a\nHEALTHCHECK --retries=x CMD true").is_err());
    assert!(parse("FROM a\nHEALTHCHECK --interval=1s NONE").is_err());
    assert!(parse("FROM a\nHEALTHCHECK CMD").is_err());
    assert!(parse("FROM a\nHEALTHCHECK true").is_err());
}

#[test]
fn simple_instructions() {
    let k = kinds(
        "FROM a\nworkdir /app\nUser 1000:1000\nEXPOSE 80/tcp 443\nVOLUME [\"/data\", \"/logs\"]\nVOLUME /a /b\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/bash\", \"-c\"]\n",
    );
    assert_eq!(k[1], InstructionKind::Workdir("/app".into()));
    assert_eq!(k[2], InstructionKind::User("1000:1000".into()));
    assert_eq!(k[3], InstructionKind::Expose(vec!["80/tcp".into(), "443".into()]));
    assert_eq!(k[4], InstructionKind::Volume(vec!["/data".into(), "/logs".into()]));
    assert_eq!(k[5], InstructionKind::Volume(vec!["/a".into(), "/b".into()]));
    assert_eq!(k[6], InstructionKind::Stopsignal("SIGTERM".into()));
    assert_eq!(k[7], InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()]));
}

#[test]
fn bad_json_and_missing_arguments() {
    assert_eq!(
        parse("FROM a\n\nSHELL /bin/sh -c").unwrap_err(),
        DockerfileError::BadJsonArray { name: "SHELL".into(), line: 3 }
    );
    assert!(matches!(parse("FROM a\nWORKDIR"), Err(DockerfileError::MissingArguments { line: 2, .. })));
    assert!(matches!(parse("FROM a\nRUN --network=none"), Err(DockerfileError::MissingArguments { .. })));
}

#[test]
fn unknown_instruction_names_its_line() {
    let err = parse("FROM a\nRUN x \\\n  y\nFROBNICATE z\n").unwrap_err();
    assert_eq!(err, DockerfileError::UnknownInstruction { name: "FROBNICATE".into(), line: 4 });
    assert_eq!(err.to_string(), "line 4: unknown instruction: FROBNICATE");
    assert!(matches!(parse("FROM a\nonbuild RUN x"), Err(DockerfileError::Unsupported { line: 2, .. })));
}

#[test]
fn crlf_and_bom() {
    let df = parse("\u{feff}FROM a\r\nRUN x \\\r\n y\r\n").unwrap();
    assert_eq!(df.instructions[1].kind, InstructionKind::Run { flags: vec![], command: Command::Shell("x  y".into()) });
}

const MULTI: &str = "\
ARG GO=1.22
FROM golang:${GO} AS deps
RUN go mod download
FROM deps AS build
RUN --mount=type=cache,target=/c,from=cache true
COPY --from=assets /a /a
FROM alpine AS unused
FROM busybox AS Cache
FROM node AS assets
FROM scratch AS final
COPY --from=build /bin/app /app
COPY --from=1 /x /x
COPY --from=nginx:latest /etc/nginx /etc/nginx
";

#[test]
fn stages_and_needed_stages() {
    let s = stages(&parse(MULTI).unwrap());
    let names: Vec<Option<&str>> = s.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("deps"), Some("build"), Some("unused"), Some("cache"), Some("assets"), Some("final")]);
    assert_eq!(s[1].base, "deps");
    assert_eq!(s[1].line, 4);
    // `build` mounts from `cache` and copies from `assets`, both defined later: images, not stages.
    assert_eq!(needed_stages(&s, None).unwrap(), [0, 1, 5]);
    assert_eq!(needed_stages(&s, Some("BUILD")).unwrap(), [0, 1]);
    assert_eq!(needed_stages(&s, Some("unused")).unwrap(), [2]);
    assert_eq!(needed_stages(&s, Some("nope")).unwrap_err(), DockerfileError::UnknownTarget("nope".into()));
    assert_eq!(needed_stages(&[], None).unwrap_err(), DockerfileError::NoStages);
}

#[test]
fn needed_stages_via_mount_and_index() {
    let s = stages(
        &parse("FROM a AS one\nFROM b AS two\nFROM c\nRUN --mount=from=two,target=/t x\nCOPY --from=0 / /\n").unwrap(),
    );
    assert_eq!(needed_stages(&s, None).unwrap(), [0, 1, 2]);
}

#[test]
fn expand_variables() {
    assert_eq!(ex("$A/${A}/$UNSET/x$"), "a/a//x$");
    assert_eq!(ex("${UNSET:-def}|${EMPTY:-def}|${EMPTY-def}|${UNSET-def}|${A:-def}"), "def|def||def|a");
    assert_eq!(ex("${A:+alt}|${EMPTY:+alt}|${EMPTY+alt}|${UNSET+alt}"), "alt||alt|");
    assert_eq!(ex("${UNSET:-${A}-x}"), "a-x");
    assert_eq!(ex("$A_b ${A}_b $1"), " a_b ");
}

#[test]
fn expand_quotes_and_escapes() {
    assert_eq!(ex(r"\$A \${A} a\ b"), "$A ${A} a b");
    assert_eq!(ex(r#"'$A' "$A" "\$A" "a\nb" "\"q\"""#), r#"$A a $A a\nb "q""#);
    assert_eq!(ex("\"$SP\""), "x y");
    assert_eq!(expand("`$A $A", &vars, '`').unwrap(), "$A a");
    assert_eq!(expand(r"c:\dir", &vars, '`').unwrap(), r"c:\dir");
}

#[test]
fn expand_errors() {
    assert_eq!(expand("${A", &vars, '\\'), Err(ExpandError::MissingBrace("${A".into())));
    assert!(matches!(expand("'abc", &vars, '\\'), Err(ExpandError::UnterminatedQuote(_))));
    assert!(matches!(expand("\"abc", &vars, '\\'), Err(ExpandError::UnterminatedQuote(_))));
    assert!(matches!(expand("${A!x}", &vars, '\\'), Err(ExpandError::BadModifier(_))));
    assert!(matches!(expand("${}", &vars, '\\'), Err(ExpandError::BadModifier(_))));
    assert_eq!(
        expand("${UNSET:?must be set}", &vars, '\\'),
        Err(ExpandError::Required { name: "UNSET".into(), message: "must be set".into() })
    );
    assert_eq!(ex("${EMPTY?x}"), "");
}
