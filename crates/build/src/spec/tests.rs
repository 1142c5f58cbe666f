use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;

const FULL: &str = r#"# hello, built from scratch
from = "scratch"
baseline = "base"
ca_certs_from = "docker-archive:certs.tar"
tzdata_from = "oci:dir:tag"

[[step]]
name = "compile"
image = "docker-archive:builder.tar"
run = """
musl-gcc -static -o /out/hello /src/hello.c
strip /out/hello
"""
inputs = { "/src" = "src", "/etc/extra//" = "./extra.conf" }
outputs = ["/out/", "/var/lib/x"]
network = "host"
env = { CFLAGS = "-O2", A = "1" }
workdir = "/src"

[[step]]
name = "second.step-2"
image = "docker://host/repo:tag"
run = "true"

[[layer]]
name = "app"
files = [
  { step = "compile", path = "/out/hello", to = "/usr/local/bin/hello" },
  { step = "compile", path = "/var/lib/x/y" },
  { host = "html", to = "/var/www/html/" },
]
mode = "0755"
uid = 0
gid = 1000

[[layer]]
name = "nginx"
image = "docker-archive:nginx.tar"
paths = ["/usr/sbin/nginx", "/etc/nginx"]
closure = true

[config]
entrypoint = ["/usr/local/bin/hello"]
cmd = []
env = { ZED = "z", PATH = "/usr/local/bin:/usr/bin:/bin" }
user = "nonroot"
workdir = "/"
ports = ["80/tcp", "53/udp", "8080", "9/sctp"]
volumes = ["/data"]
labels = { "org.opencontainers.image.title" = "hello", "a" = "b" }
stop_signal = "SIGTERM"
"#;

/// A spec directory with the host files the specs here name.
fn project() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("src")).unwrap();
    fs::write(dir.path().join("src/hello.c"), "int main(){}").unwrap();
    fs::create_dir(dir.path().join("html")).unwrap();
    fs::write(dir.path().join("html/index.html"), "hi").unwrap();
    fs::write(dir.path().join("extra.conf"), "x").unwrap();
    dir
}

fn parse_in(dir: &Path, text: &str) -> Result<Spec, SpecError> {
    parse(text, &dir.join("whittle.toml"))
}

/// Parses `text` expecting an error; gives its line, column and message.
fn fail(text: &str) -> (usize, usize, String) {
    let dir = project();
    fail_in(dir.path(), text)
}

fn fail_in(dir: &Path, text: &str) -> (usize, usize, String) {
    match parse_in(dir, text) {
        Ok(spec) => panic!("parsed, expected an error: {spec:?}"),
        Err(SpecError::Invalid {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        Err(e) => panic!("expected Invalid, got {e}"),
    }
}

#[track_caller]
fn assert_fails(text: &str, line: usize, phrase: &str) {
    let (l, _, message) = fail(text);
    assert_eq!(l, line, "wrong line for: {message}");
    assert!(
        message.contains(phrase),
        "{message:?} does not contain {phrase:?}"
    );
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn full_spec_parses_into_the_expected_structs() {
    let project = project();
    let dir = fs::canonicalize(project.path()).unwrap();
    fs::write(project.path().join("whittle.toml"), FULL).unwrap();
    let spec = load(&project.path().join("whittle.toml")).unwrap();
    let expected = Spec {
        from: None,
        baseline: Baseline::Base,
        ca_certs_from: Some("docker-archive:certs.tar".into()),
        tzdata_from: Some("oci:dir:tag".into()),
        steps: vec![
            Step {
                name: "compile".into(),
                image: "docker-archive:builder.tar".into(),
                run: "musl-gcc -static -o /out/hello /src/hello.c\nstrip /out/hello\n".into(),
                inputs: vec![
                    ("/src".into(), dir.join("src")),
                    ("/etc/extra".into(), dir.join("extra.conf")),
                ],
                outputs: strings(&["/out", "/var/lib/x"]),
                network: StepNetwork::Host,
                env: pairs(&[("CFLAGS", "-O2"), ("A", "1")]),
                workdir: Some("/src".into()),
            },
            Step {
                name: "second.step-2".into(),
                image: "docker://host/repo:tag".into(),
                run: "true".into(),
                inputs: vec![],
                outputs: vec![],
                network: StepNetwork::None,
                env: vec![],
                workdir: None,
            },
        ],
        layers: vec![
            LayerSpec {
                name: "app".into(),
                files: vec![
                    FileSource::Step {
                        step: "compile".into(),
                        path: "/out/hello".into(),
                        to: "/usr/local/bin/hello".into(),
                    },
                    FileSource::Step {
                        step: "compile".into(),
                        path: "/var/lib/x/y".into(),
                        to: "/var/lib/x/y".into(),
                    },
                    FileSource::Host {
                        host: dir.join("html"),
                        to: "/var/www/html".into(),
                    },
                ],
                image: None,
                paths: vec![],
                closure: false,
                mode: Some(0o755),
                uid: Some(0),
                gid: Some(1000),
            },
            LayerSpec {
                name: "nginx".into(),
                files: vec![],
                image: Some("docker-archive:nginx.tar".into()),
                paths: strings(&["/usr/sbin/nginx", "/etc/nginx"]),
                closure: true,
                mode: None,
                uid: None,
                gid: None,
            },
        ],
        config: ConfigSpec {
            entrypoint: Some(strings(&["/usr/local/bin/hello"])),
            cmd: Some(vec![]),
            env: pairs(&[("ZED", "z"), ("PATH", "/usr/local/bin:/usr/bin:/bin")]),
            user: Some("nonroot".into()),
            workdir: Some("/".into()),
            ports: strings(&["80/tcp", "53/udp", "8080/tcp", "9/sctp"]),
            volumes: strings(&["/data"]),
            labels: pairs(&[("org.opencontainers.image.title", "hello"), ("a", "b")]),
            stop_signal: Some("SIGTERM".into()),
        },
        dir: dir.clone(),
        source: FULL.into(),
        image_places: spec.image_places.clone(),
    };
    assert_eq!(spec, expected);
    let place = &spec.image_places["docker-archive:certs.tar"];
    let line = FULL
        .lines()
        .position(|l| l.contains("docker-archive:certs.tar"))
        .unwrap();
    assert!(
        place.ends_with(&format!("whittle.toml:{}:17", line + 1)),
        "{place}"
    );
}

#[test]
fn an_empty_spec_is_scratch_with_nothing() {
    let project = project();
    let spec = parse_in(project.path(), "").unwrap();
    assert_eq!(spec.from, None);
    assert_eq!(spec.baseline, Baseline::None);
    assert!(spec.steps.is_empty() && spec.layers.is_empty());
    assert_eq!(spec.config, ConfigSpec::default());
    assert_eq!(spec.dir, fs::canonicalize(project.path()).unwrap());
}

#[test]
fn from_an_image_is_kept_as_written() {
    let project = project();
    let spec = parse_in(project.path(), "from = \"docker-archive:/x/base.tar\"").unwrap();
    assert_eq!(spec.from.as_deref(), Some("docker-archive:/x/base.tar"));
}

#[test]
fn a_relative_spec_path_resolves_against_the_current_directory() {
    let spec = parse("from = \"scratch\"\n", Path::new("whittle.toml")).unwrap();
    let cwd = fs::canonicalize(std::env::current_dir().unwrap()).unwrap();
    assert_eq!(spec.dir, cwd);
}

#[test]
fn a_missing_spec_file_says_it_cannot_be_read() {
    let project = project();
    let missing = project.path().join("nope.toml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, SpecError::Read { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot read {}: ", missing.display())),
        "{text}"
    );
}

#[test]
fn invalid_displays_file_line_column_message_and_snippet() {
    let project = project();
    let file = project.path().join("whittle.toml");
    let err = parse("from = \"scratch\"\nbaseline = \"fat\"\n", &file).unwrap_err();
    let expected = format!(
        "{}:2:12: unknown variant `fat`, expected one of `static`, `base`, `none`\n   | baseline = \"fat\"\n   |            ^^^^^",
        file.display()
    );
    assert_eq!(err.to_string(), expected);
}

#[test]
fn carets_keep_tabs_and_count_characters() {
    let (line, column, _) = fail("\tbaseline = \"fät\"");
    assert_eq!((line, column), (1, 13));
    let project = project();
    let err = parse_in(project.path(), "\tbaseline = \"fät\"").unwrap_err();
    let SpecError::Invalid { snippet, .. } = err else {
        panic!("not Invalid: {err}");
    };
    assert_eq!(
        snippet,
        "   | \tbaseline = \"fät\"\n   | \t           ^^^^^"
    );
}

#[test]
fn toml_syntax_errors_have_their_place() {
    assert_fails("from = \"scratch\"\nbaseline = \"base\n", 2, "");
    assert_fails("[config]\nuser = = 1\n", 2, "");
}

#[test]
fn unknown_top_level_key_is_named_with_the_allowed_ones() {
    let (line, column, message) = fail("from = \"scratch\"\n\nbaseilne = \"base\"\n");
    assert_eq!((line, column), (3, 1));
    assert!(message.contains("unknown field `baseilne`"), "{message}");
    assert!(message.contains("`baseline`"), "{message}");
}

#[test]
fn unknown_key_inside_a_layer_is_named_with_its_line() {
    let text = "[[layer]]\nname = \"a\"\n\n[[layer]]\nname = \"b\"\nclosur = true\n";
    let (line, _, message) = fail(text);
    assert_eq!(line, 6);
    assert!(message.contains("unknown field `closur`"), "{message}");
    assert!(message.contains("`closure`"), "{message}");
}

#[test]
fn unknown_keys_in_steps_files_and_config_are_caught() {
    assert_fails(
        "[[step]]\nname = \"a\"\nimage = \"oci:i\"\nrun = \"x\"\nnet = \"host\"\n",
        5,
        "unknown field `net`",
    );
    assert_fails(
        "[[layer]]\nname = \"a\"\nfiles = [\n  { host = \"html\", too = \"/x\" },\n]\n",
        4,
        "unknown field `too`",
    );
    assert_fails("[config]\nentry = []\n", 2, "unknown field `entry`");
}

#[test]
fn wrong_types_have_their_place() {
    assert_fails(
        "[[layer]]\nname = \"a\"\nclosure = \"yes\"\n",
        3,
        "invalid type: string \"yes\", expected a boolean",
    );
    assert_fails("[[layer]]\nname = \"a\"\nuid = -1\n", 3, "u32");
    assert_fails("[config]\nenv = { A = 1 }\n", 2, "invalid type");
    assert_fails("[config]\nenv = \"A=1\"\n", 2, "expected a table");
    assert_fails("[config]\nentrypoint = \"/bin/sh\"\n", 2, "invalid type");
}

#[test]
fn bad_enum_values_list_the_allowed_ones() {
    assert_fails(
        "baseline = \"fat\"\n",
        1,
        "expected one of `static`, `base`, `none`",
    );
    assert_fails(
        "[[step]]\nname = \"a\"\nimage = \"oci:i\"\nrun = \"x\"\nnetwork = \"bridge\"\n",
        5,
        "unknown variant `bridge`",
    );
}

#[test]
fn missing_required_keys_are_named() {
    assert_fails(
        "[[step]]\nname = \"a\"\nrun = \"x\"\n",
        1,
        "missing field `image`",
    );
    assert_fails("\n[[layer]]\nclosure = true\n", 2, "missing field `name`");
}

#[test]
fn step_names_are_checked() {
    let step =
        |name: &str| format!("[[step]]\nname = \"{name}\"\nimage = \"oci:i\"\nrun = \"x\"\n");
    let dup = format!("{}\n{}", step("a"), step("a"));
    let (line, column, message) = fail(&dup);
    assert_eq!((line, column), (7, 8));
    assert!(
        message.contains("duplicate step name `a` (first defined on line 2)"),
        "{message}"
    );
    assert_fails(&step("has space"), 2, "letters, digits");
    assert_fails(&step(""), 2, "letters, digits");
}

#[test]
fn duplicate_layer_names_are_refused() {
    assert_fails(
        "[[layer]]\nname = \"a\"\n[[layer]]\nname = \"b\"\n[[layer]]\nname = \"a\"\n",
        6,
        "duplicate layer name `a` (first defined on line 2)",
    );
}

#[test]
fn empty_run_and_image_are_refused() {
    assert_fails(
        "[[step]]\nname = \"a\"\nimage = \"oci:i\"\nrun = \"  \"\n",
        4,
        "`run` must not be empty",
    );
    assert_fails(
        "[[step]]\nname = \"a\"\nimage = \"\"\nrun = \"x\"\n",
        3,
        "`image` must not be empty",
    );
}

const COMPILE: &str =
    "[[step]]\nname = \"compile\"\nimage = \"oci:i\"\nrun = \"x\"\noutputs = [\"/out\"]\n";

#[test]
fn file_entries_need_exactly_one_of_step_and_host() {
    let both = format!(
        "{COMPILE}[[layer]]\nname = \"a\"\nfiles = [\n  {{ step = \"compile\", host = \"html\", path = \"/out/x\", to = \"/x\" }},\n]\n"
    );
    let (line, column, message) = fail(&both);
    assert_eq!((line, column), (9, 3));
    assert!(
        message.contains("either `step` or `host`, not both"),
        "{message}"
    );
    let neither = "[[layer]]\nname = \"a\"\nfiles = [{ to = \"/x\" }]\n";
    assert_fails(neither, 3, "needs `step` (a step's output) or `host`");
}

#[test]
fn file_entries_are_checked_against_the_steps() {
    let layer =
        |entry: &str| format!("{COMPILE}[[layer]]\nname = \"a\"\nfiles = [\n  {entry},\n]\n");
    let (line, column, message) = fail(&layer("{ step = \"compiel\", path = \"/out/x\" }"));
    assert_eq!((line, column), (9, 12));
    assert!(message.contains("no step is named `compiel`"), "{message}");
    assert_fails(
        &layer("{ step = \"compile\", path = \"/outside\" }"),
        9,
        "not under an output of step `compile` (/out)",
    );
    assert_fails(
        &layer("{ step = \"compile\", path = \"/out/../etc\" }"),
        9,
        "must not contain `..`",
    );
    assert_fails(&layer("{ step = \"compile\" }"), 9, "needs `path`");
    assert_fails(
        &layer("{ step = \"compile\", path = \"out/x\" }"),
        9,
        "must be an absolute path",
    );
    assert_fails(&layer("{ host = \"html\" }"), 9, "needs `to`");
    assert_fails(
        &layer("{ host = \"html\", path = \"/x\", to = \"/x\" }"),
        9,
        "`path` is only for files from a step",
    );
    assert_fails(
        &layer("{ host = \"html\", to = \"var/www\" }"),
        9,
        "`to` must be an absolute path",
    );
}

#[test]
fn a_later_step_may_feed_an_earlier_layer_entry() {
    // Every step runs before any layer is assembled.
    let project = project();
    let text = format!(
        "[[layer]]\nname = \"a\"\nfiles = [{{ step = \"compile\", path = \"/out\" }}]\n{COMPILE}"
    );
    let spec = parse_in(project.path(), &text).unwrap();
    assert_eq!(spec.layers[0].files.len(), 1);
}

#[test]
fn relative_in_step_paths_are_refused() {
    let step =
        |extra: &str| format!("[[step]]\nname = \"a\"\nimage = \"oci:i\"\nrun = \"x\"\n{extra}\n");
    let (line, column, message) = fail(&step("inputs = { \"src\" = \"src\" }"));
    assert_eq!((line, column), (5, 12));
    assert!(
        message.contains("in-step path must be an absolute path"),
        "{message}"
    );
    assert_fails(
        &step("outputs = [\"/ok\", \"out\"]"),
        5,
        "an output must be an absolute path",
    );
    assert_fails(
        &step("workdir = \"src\""),
        5,
        "`workdir` must be an absolute path",
    );
    assert_fails(
        &step("inputs = { \"/a\" = \"src\", \"/a/\" = \"html\" }"),
        5,
        "given twice",
    );
    assert_fails(
        "[config]\nworkdir = \"app\"\n",
        2,
        "`workdir` must be an absolute path",
    );
    assert_fails(
        "[config]\nvolumes = [\"data\"]\n",
        2,
        "a volume must be an absolute path",
    );
}

#[test]
fn image_and_paths_go_together() {
    assert_fails(
        "[[layer]]\nname = \"a\"\nimage = \"docker-archive:x.tar\"\n",
        3,
        "`image` is set but `paths` is not",
    );
    assert_fails(
        "[[layer]]\nname = \"a\"\npaths = [\"/bin/sh\"]\n",
        3,
        "`paths` is set but `image` is not",
    );
    assert_fails(
        "[[layer]]\nname = \"a\"\nimage = \"oci:x\"\npaths = []\n",
        4,
        "at least one path",
    );
    assert_fails(
        "[[layer]]\nname = \"a\"\nimage = \"oci:x\"\npaths = [\"bin/sh\"]\n",
        4,
        "must be an absolute path",
    );
}

#[test]
fn bad_modes_are_refused() {
    let layer = |mode: &str| format!("[[layer]]\nname = \"a\"\nmode = {mode}\n");
    assert_fails(&layer("\"0789\""), 3, "bad mode \"0789\"");
    assert_fails(&layer("\"17777\""), 3, "bad mode");
    assert_fails(&layer("\"\""), 3, "bad mode");
    assert_fails(&layer("\"rwx\""), 3, "bad mode");
    assert_fails(&layer("755"), 3, "`mode = 755` is a TOML integer");
    assert_fails(
        &layer("true"),
        3,
        "invalid type: boolean `true`, expected a quoted octal string",
    );
    let project = project();
    let spec = parse_in(project.path(), &layer("\"4755\"")).unwrap();
    assert_eq!(spec.layers[0].mode, Some(0o4755));
}

#[test]
fn ports_are_checked_and_normalised() {
    let ports = |list: &str| format!("[config]\nports = {list}\n");
    for bad in [
        "\"0\"",
        "\"65536\"",
        "\"80/http\"",
        "\"+80\"",
        "\"80/\"",
        "\"/tcp\"",
        "\"\"",
    ] {
        assert_fails(&ports(&format!("[{bad}]")), 2, "bad port");
    }
    let (_, column, _) = fail(&ports("[\"80\", \"x\"]"));
    assert_eq!(column, 16);
    let project = project();
    let spec = parse_in(project.path(), &ports("[\"080\", \"80/tcp\", \"53/udp\"]")).unwrap();
    assert_eq!(spec.config.ports, strings(&["80/tcp", "53/udp"]));
}

#[test]
fn env_names_are_checked() {
    assert_fails(
        "[config]\nenv = { \"A=B\" = \"1\" }\n",
        2,
        "bad environment variable name",
    );
    assert_fails(
        "[config]\nenv = { \"\" = \"1\" }\n",
        2,
        "bad environment variable name",
    );
}

#[test]
fn scratch_is_no_source_of_certificates() {
    assert_fails("ca_certs_from = \"scratch\"\n", 1, "scratch has none");
    assert_fails("tzdata_from = \"\"\n", 1, "must not be empty");
}

fn host_entry(host: &str) -> String {
    format!("[[layer]]\nname = \"a\"\nfiles = [{{ host = {host:?}, to = \"/x\" }}]\n")
}

#[test]
fn host_paths_must_exist() {
    let (line, column, message) = fail(&host_entry("htm"));
    assert_eq!((line, column), (3, 19));
    assert!(message.contains("no such file"), "{message}");
    assert_fails(
        "[[step]]\nname = \"a\"\nimage = \"oci:i\"\nrun = \"x\"\ninputs = { \"/src\" = \"nope\" }\n",
        5,
        "no such file",
    );
}

#[test]
fn host_paths_may_not_escape_the_spec_directory() {
    let outer = tempfile::tempdir().unwrap();
    let project = outer.path().join("project");
    fs::create_dir(&project).unwrap();
    fs::write(outer.path().join("secret"), "s").unwrap();
    fs::write(project.join("inside"), "i").unwrap();

    let (line, _, message) = fail_in(&project, &host_entry("../secret"));
    assert_eq!(line, 3);
    assert!(
        message.contains("outside the spec's directory"),
        "{message}"
    );

    let absolute = outer.path().join("secret");
    let (line, _, message) = fail_in(&project, &host_entry(&absolute.display().to_string()));
    assert_eq!(line, 3);
    assert!(
        message.contains("outside the spec's directory"),
        "{message}"
    );

    // An absolute path inside the directory is fine, and so is a `..` that comes back.
    let inside = project.join("inside");
    let spec = parse_in(&project, &host_entry(&inside.display().to_string())).unwrap();
    let canonical = fs::canonicalize(&inside).unwrap();
    assert_eq!(
        spec.layers[0].files,
        vec![FileSource::Host {
            host: canonical.clone(),
            to: "/x".into()
        }]
    );
    let spec = parse_in(&project, &host_entry("../project/inside")).unwrap();
    assert_eq!(
        spec.layers[0].files,
        vec![FileSource::Host {
            host: canonical,
            to: "/x".into()
        }]
    );
}

#[test]
fn a_symlink_out_of_the_spec_directory_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let project = outer.path().join("project");
    fs::create_dir(&project).unwrap();
    fs::create_dir(outer.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("../elsewhere", project.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", project.join("passwd")).unwrap();

    let (line, _, message) = fail_in(&project, &host_entry("link"));
    assert_eq!(line, 3);
    assert!(
        message.contains("outside the spec's directory"),
        "{message}"
    );
    let step = "[[step]]\nname = \"a\"\nimage = \"oci:i\"\nrun = \"x\"\ninputs = { \"/etc/passwd\" = \"passwd\" }\n";
    let (line, _, message) = fail_in(&project, step);
    assert_eq!(line, 5);
    assert!(message.contains("resolves to /etc/passwd"), "{message}");
}

#[test]
fn a_symlink_inside_the_spec_directory_is_resolved() {
    let project = project();
    std::os::unix::fs::symlink("html", project.path().join("site")).unwrap();
    let spec = parse_in(project.path(), &host_entry("site")).unwrap();
    let expected: PathBuf = fs::canonicalize(project.path().join("html")).unwrap();
    assert_eq!(
        spec.layers[0].files,
        vec![FileSource::Host {
            host: expected,
            to: "/x".into()
        }]
    );
}

#[test]
fn a_spec_directory_reached_through_a_symlink_works() {
    let outer = tempfile::tempdir().unwrap();
    let real = outer.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("f"), "f").unwrap();
    std::os::unix::fs::symlink("real", outer.path().join("alias")).unwrap();
    let spec = parse_in(&outer.path().join("alias"), &host_entry("f")).unwrap();
    let real = fs::canonicalize(&real).unwrap();
    assert_eq!(spec.dir, real);
    assert_eq!(
        spec.layers[0].files,
        vec![FileSource::Host {
            host: real.join("f"),
            to: "/x".into()
        }]
    );
}

#[test]
fn paths_are_normalised() {
    let project = project();
    let text = format!("{COMPILE}[[layer]]\nname = \"a\"\nfiles = [{{ step = \"compile\", path = \"//out/./x/\", to = \"/a//b/\" }}]\n");
    let spec = parse_in(project.path(), &text).unwrap();
    assert_eq!(
        spec.layers[0].files,
        vec![FileSource::Step {
            step: "compile".into(),
            path: "/out/x".into(),
            to: "/a/b".into()
        }]
    );
}

#[test]
fn image_references_are_checked_where_they_are_written() {
    assert_fails(
        "from = \"oci:base\"\n[[step]]\nname = \"a\"\nimage = \"nginx:latest\"\nrun = \"x\"\n",
        4,
        "\"nginx\" is not a transport",
    );
    assert_fails("tzdata_from = \"oci:d:a b\"\n", 1, "not a valid tag");
}
