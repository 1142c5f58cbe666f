//! A hostile program in the sandbox tries one attack per test and reports what
//! happened; each test asserts that the sandbox contained it — at least as
//! `docker run` with no flags would (docs/SECURITY.md). Busybox roots made
//! here, plus a tiny static helper built with gcc where a shell cannot do it.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{busybox_root, options, sandbox};
use whittle_trace::{run, Exit, Probes, RunOutcome, Sandbox, TraceError};

/// Runs `script` in a fresh busybox root; returns the outcome and the program's output.
fn attack(script: &str, adjust: impl FnOnce(&mut Sandbox, &Path)) -> (RunOutcome, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_root(&root);
    let mut s = sandbox(&root, script);
    adjust(&mut s, dir.path());
    let probes = Probes {
        duration: Some(Duration::from_secs(30)),
        ..Probes::default()
    };
    let out = run(s, &options(&dir.path().join("log"), probes)).unwrap();
    let log = std::fs::read_to_string(&out.log).unwrap_or_default();
    (out, log)
}

/// `KEY=VALUE` lines of the output.
fn values(log: &str) -> BTreeMap<String, String> {
    log.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn hex(log: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {log}"));
    u64::from_str_radix(line[key.len()..].trim(), 16).unwrap()
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Docker's default capability set.
const DOCKER_CAPS: u64 = 0xa80425fb;

#[test]
fn capabilities_are_dockers_default_set_or_fewer() {
    require!();
    let (out, log) = attack("grep Cap /proc/self/status", |_, _| {});
    assert_eq!(out.exit, Some(Exit::Code(0)), "{log}");
    for key in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(hex(&log, key), DOCKER_CAPS, "{key} in {log}");
    }
    assert_eq!(hex(&log, "CapInh:"), 0, "{log}");
    assert_eq!(hex(&log, "CapAmb:"), 0, "{log}");
    // A non-root user has none at all, and the bounding set stays Docker's.
    let (_, log) = attack("grep Cap /proc/self/status", |s, _| {
        s.uid = 1000;
        s.gid = 1000;
        s.groups = vec![];
    });
    assert_eq!(hex(&log, "CapEff:"), 0, "{log}");
    assert_eq!(hex(&log, "CapPrm:"), 0, "{log}");
    assert_eq!(hex(&log, "CapBnd:"), DOCKER_CAPS, "{log}");
    // --cap-drop ALL leaves nothing, even to root.
    let (_, log) = attack("grep Cap /proc/self/status", |s, _| {
        s.policy.capabilities.adjust(&[], &["ALL".into()]).unwrap();
    });
    assert_eq!(hex(&log, "CapBnd:"), 0, "{log}");
}

#[test]
fn the_host_disk_cannot_be_made_mounted_or_reached() {
    require!();
    let script = "mknod /tmp/disk b 8 0; echo mknod=$?; \
                  mount -t ext4 /tmp/disk /tmp; echo mount=$?; \
                  mount -t sysfs sysfs /tmp; echo sysfs=$?; \
                  mount -t cgroup -o memory cgroup /tmp; echo cgroup=$?; \
                  mount -t tmpfs tmpfs /tmp; echo tmpfs=$?; \
                  unshare -U -r true; echo unshare_user=$?; \
                  unshare -m true; echo unshare_mount=$?; \
                  echo '|/tmp/x' > /proc/sys/kernel/core_pattern; echo core_pattern=$?; \
                  echo 1 > /sys/kernel/profiling; echo sys=$?; \
                  while read -r _ _ _ _ point opts _; do echo \"mnt $point $opts\"; done < /proc/self/mountinfo; \
                  dmesg > /dev/null; echo dmesg=$?";
    let (out, log) = attack(script, |_, _| {});
    assert_eq!(out.exit, Some(Exit::Code(0)), "{log}");
    let v = values(&log);
    for key in [
        "mknod",
        "mount",
        "sysfs",
        "cgroup",
        "tmpfs",
        "unshare_user",
        "unshare_mount",
        "core_pattern",
        "sys",
        "dmesg",
    ] {
        let code = v.get(key).unwrap_or_else(|| panic!("no {key} in {log}"));
        assert_ne!(code, "0", "{key} succeeded:\n{log}");
    }
    // /proc as Docker masks it: every masked path this kernel has is covered, /proc/sys read-only.
    let mounts: BTreeMap<&str, &str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("mnt "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for path in whittle_trace::policy::MASKED_PATHS {
        if Path::new(path).exists() {
            assert!(
                mounts.contains_key(path),
                "{path} is not masked: {mounts:?}"
            );
        }
    }
    for path in ["/proc/sys", "/sys"] {
        let opts = mounts
            .get(path)
            .unwrap_or_else(|| panic!("{path}: {mounts:?}"));
        assert!(opts.split(',').any(|o| o == "ro"), "{path} is {opts}");
    }
    let root = mounts.get("/").unwrap_or_else(|| panic!("/: {mounts:?}"));
    assert!(root.contains("nodev"), "/ is {root}");
    assert!(
        mounts.get("/dev").is_some_and(|o| o.contains("nodev")),
        "{mounts:?}"
    );
    assert!(
        !mounts.contains_key("/tmp") && !mounts.contains_key("/run"),
        "{mounts:?}"
    );
}

#[test]
fn a_device_node_shipped_in_the_image_cannot_be_opened() {
    require!();
    if !nix_is_root() {
        // An ordinary user cannot make a device node at all, so no root it unpacks holds one.
        let p = std::ffi::CString::new("/tmp/whittle-mknod-probe").unwrap();
        // SAFETY: mknod on a fixed path; it must fail.
        let rc = unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 11)) };
        assert_eq!(rc, -1, "an ordinary user made a device node");
        eprintln!("as an ordinary user: mknod is refused by the host, nothing to open");
        return;
    }
    let (out, log) = attack(
        "cat /tmp/kmsg > /dev/null; echo kmsg=$?; head -c 1 /tmp/null > /dev/null; echo null=$?",
        |s, _| {
            // What a layer with `c 1:11` (/dev/kmsg) and `c 1:3` would leave in a root.
            for (name, minor) in [("kmsg", 11), ("null", 3)] {
                let p = std::ffi::CString::new(s.root.join("tmp").join(name).to_str().unwrap())
                    .unwrap();
                // SAFETY: mknod on a path made here.
                let rc = unsafe {
                    libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, minor))
                };
                assert_eq!(rc, 0, "the test needs CAP_MKNOD");
            }
        },
    );
    assert_eq!(out.exit, Some(Exit::Code(0)), "{log}");
    let v = values(&log);
    assert_ne!(v.get("kmsg").map(String::as_str), Some("0"), "{log}");
    assert_ne!(v.get("null").map(String::as_str), Some("0"), "{log}");
}

#[test]
fn the_program_leads_a_session_of_its_own_without_a_terminal() {
    require!();
    // Field 6 of /proc/PID/stat is the session: the shell (pid 1) leads its own,
    // and so does an exec probe.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_root(&root);
    let script = "read -r _ _ _ _ _ sid _ < /proc/self/stat; echo sid=$sid pid=$$; \
                  cat /dev/tty < /dev/null; echo tty=$?";
    let probes = Probes {
        exec: vec![vec!["/bin/sh".into(), "-c".into(), script.into()]],
        ..Probes::default()
    };
    let out = run(
        sandbox(&root, &format!("{script}; sleep 30")),
        &options(&dir.path().join("log"), probes),
    )
    .unwrap();
    let log = std::fs::read_to_string(&out.log).unwrap();
    let probe = std::fs::read_to_string(dir.path().join("log/exec-0.out")).unwrap();
    for (who, text) in [("the program", &log), ("the exec probe", &probe)] {
        let v = values(text);
        let line = text
            .lines()
            .find(|l| l.starts_with("sid="))
            .unwrap_or_default();
        let (sid, pid) = line
            .split_once(" pid=")
            .map(|(s, p)| (s.trim_start_matches("sid=").to_string(), p.to_string()))
            .unwrap_or_default();
        assert_eq!(sid, pid, "{who} is not a session leader: {text}");
        assert_ne!(
            v.get("tty").map(String::as_str),
            Some("0"),
            "{who} opened a terminal: {text}"
        );
    }
}

/// Opens a directory without close-on-exec, as a shell that started whittle may hold one.
struct LeakedDir(i32);

impl LeakedDir {
    fn open(path: &Path) -> LeakedDir {
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: open without O_CLOEXEC on purpose.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        assert!(fd >= 0);
        LeakedDir(fd)
    }
}

impl Drop for LeakedDir {
    fn drop(&mut self) {
        // SAFETY: closes the fd opened above.
        unsafe { libc::close(self.0) };
    }
}

#[test]
fn only_the_standard_streams_cross_into_the_sandbox() {
    require!();
    let leaked = LeakedDir::open(Path::new("/etc"));
    let list = "for f in /proc/self/fd/*; do echo fd=${f##*/}; done; \
                ls /proc/self/fd/{fd}/ 2>/dev/null | head -1";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_root(&root);
    let script = list.replace("{fd}", &leaked.0.to_string());
    let probes = Probes {
        exec: vec![vec!["/bin/sh".into(), "-c".into(), script.clone()]],
        ..Probes::default()
    };
    let program = format!("{script}; sleep 30");
    let out = run(
        sandbox(&root, &program),
        &options(&dir.path().join("log"), probes),
    )
    .unwrap();
    let log = std::fs::read_to_string(&out.log).unwrap();
    let probe = std::fs::read_to_string(dir.path().join("log/exec-0.out")).unwrap();
    for (who, text) in [("the program", &log), ("the exec probe", &probe)] {
        let fds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("fd=")).collect();
        // The glob itself opens the directory it lists: 0-2 and that one.
        assert!(fds.len() <= 4, "{who} holds {fds:?}");
        for fd in &fds {
            let n: i32 = fd.parse().unwrap();
            assert!(n <= 3, "{who} holds fd {n}: {fds:?}");
        }
        assert!(
            !text.contains("passwd") && !text.contains("hostname"),
            "{who} listed the host's /etc:\n{text}"
        );
    }
    drop(leaked);
}

/// Builds the static helper that opens a file through `int 0x80` and tries an x32 call.
fn i386_helper(dir: &Path) -> PathBuf {
    let src = dir.join("abi.c");
    std::fs::write(
        &src,
        r#"
static const char path[] = "/etc/i386-secret";
void _start(void) {
    long fd, x32;
    /* open(path, O_RDONLY) through the i386 ABI: the address fits 32 bits (static, no PIE). */
    __asm__ volatile ("int $0x80" : "=a"(fd) : "a"(5L), "b"(path), "c"(0L) : "memory");
    /* getpid with the x32 bit set: must be refused. */
    __asm__ volatile ("syscall" : "=a"(x32) : "a"(0x40000000L | 39L) : "rcx", "r11", "memory");
    long code = (fd < 0 ? 1 : 0) | (x32 >= 0 ? 2 : 0);
    __asm__ volatile ("syscall" :: "a"(60L), "D"(code));
    for (;;) {}
}
"#,
    )
    .unwrap();
    let bin = dir.join("abi");
    let out = Command::new("gcc")
        .args(["-static", "-nostdlib", "-no-pie", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc is needed to build the i386-ABI helper");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

#[test]
fn an_open_through_int_0x80_is_traced_and_x32_is_refused() {
    require!();
    let dir = tempfile::tempdir().unwrap();
    let helper = i386_helper(dir.path());
    let root = dir.path().join("root");
    busybox_root(&root);
    std::fs::copy(&helper, root.join("bin/abi")).unwrap();
    std::fs::write(root.join("etc/i386-secret"), "data").unwrap();
    let mut s = sandbox(&root, "");
    s.argv = vec!["/bin/abi".into()];
    let out = run(s, &options(&dir.path().join("log"), Probes::default())).unwrap();
    // Bit 1: the i386 open failed; bit 2: the x32 call ran.
    assert_eq!(out.exit, Some(Exit::Code(0)), "{:?}", out.exit);
    assert!(
        out.trace.paths.contains_key("/etc/i386-secret"),
        "the i386 open was not traced: {:?}",
        out.trace.paths.keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_fork_bomb_ends_the_run_with_the_pids_limit() {
    require!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_root(&root);
    let mut s = sandbox(&root, "bomb() { bomb & bomb & sleep 30; }; bomb");
    s.policy.pids_limit = Some(64);
    let started = std::time::Instant::now();
    // Room to grow: the run would last 30 s if the limit did not end it.
    let probes = Probes {
        duration: Some(Duration::from_secs(30)),
        ..Probes::default()
    };
    let err = run(s, &options(&dir.path().join("log"), probes)).unwrap_err();
    assert!(matches!(err, TraceError::Limit(_)), "{err}");
    assert!(err.to_string().contains("pids limit (64"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the bomb was not stopped"
    );
}

#[test]
fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    require!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_root(&root);
    // One 256 MB buffer, filled: far over a 64 MB limit.
    let mut s = sandbox(
        &root,
        "dd if=/dev/zero of=/dev/null bs=256M count=1; echo dd=$?",
    );
    s.policy.memory_limit = Some(64 << 20);
    let result = run(s, &options(&dir.path().join("log"), Probes::default()));
    if nix_is_root() {
        // A memory cgroup: the kernel kills the program, and the run says why.
        let err = result.unwrap_err();
        assert!(matches!(err, TraceError::Limit(_)), "{err}");
        assert!(err.to_string().contains("memory limit (64 MB"), "{err}");
    } else {
        // No cgroup for an ordinary user on cgroup v1: RLIMIT_DATA refuses the allocation.
        let out = result.unwrap();
        let log = std::fs::read_to_string(&out.log).unwrap();
        let v = values(&log);
        assert_ne!(v.get("dd").map(String::as_str), Some("0"), "{log}");
        eprintln!("as an ordinary user: RLIMIT_DATA refused the allocation:\n{log}");
    }
}

/// Every file under `dir` with its mode and content hash, to compare before and after.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let content = if md.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.insert(p.clone(), (md.permissions().mode(), content));
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn a_symlinked_workdir_leaves_the_host_untouched() {
    require!();
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("sub/file"), "precious").unwrap();
    let before = listing(&host);
    let root = dir.path().join("root");
    busybox_root(&root);
    std::os::unix::fs::symlink(&host, root.join("app")).unwrap();
    // WORKDIR /app/sub/file/new: through the link, and through a file on the host side.
    std::os::unix::fs::symlink(host.join("sub/file"), root.join("etc/wd")).unwrap();
    for workdir in ["/app/sub/new", "/etc/wd/x"] {
        let mut s = sandbox(&root, "pwd");
        s.workdir = workdir.into();
        let _ = run(s, &options(&dir.path().join("log"), Probes::default()));
        assert_eq!(
            listing(&host),
            before,
            "WORKDIR {workdir} changed the host directory"
        );
    }
}
