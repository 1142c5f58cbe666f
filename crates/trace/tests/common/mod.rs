//! Helpers shared by the sandbox tests: a busybox root made here, a sandbox
//! running a shell script in it, run options.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use whittle_trace::{IdMapping, Network, Policy, Probes, RunOptions, Sandbox};

pub fn skip_reason() -> Option<String> {
    if let Err(e) = whittle_trace::check_supported() {
        return Some(e.to_string());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox is missing (install busybox-static)".into());
    }
    None
}

#[macro_export]
macro_rules! require {
    () => {
        if let Some(why) = $crate::common::skip_reason() {
            assert!(std::env::var_os("CI").is_none(), "cannot run in CI: {why}");
            eprintln!("skipped: {why}");
            return;
        }
    };
}

pub fn busybox_root(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "ls", "sleep", "nc", "echo", "touch", "grep", "mknod", "mount", "unshare",
        "wc", "pwd", "id", "dmesg", "head", "dd", "test",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/greeting"), "hello from the image\n").unwrap();
}

pub fn sandbox(root: &Path, script: &str) -> Sandbox {
    Sandbox {
        root: root.to_path_buf(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin".into()],
        path: vec!["/bin".into()],
        workdir: "/".into(),
        uid: 0,
        gid: 0,
        groups: vec![0],
        network: Network::Loopback,
        hostname: "whittle".into(),
        trace_files: true,
        record_syscalls: false,
        policy: Policy::docker_default(IdMapping::for_caller(0, 0)),
        owners: vec![],
    }
}

pub fn options(log: &Path, probes: Probes) -> RunOptions {
    RunOptions {
        probes,
        exposed_ports: vec![],
        stop_signal: libc::SIGTERM,
        stop_timeout: Duration::from_secs(1),
        ready_timeout: Duration::from_secs(10),
        ready_ports: vec![],
        log_dir: log.to_path_buf(),
    }
}
