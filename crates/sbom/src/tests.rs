//! Unit tests over a hand-made flattened image: no layer tars needed.

use whittle_image::entries::{Change, EntryKind, LayerChanges, LayerEntry, Meta};
use whittle_image::flatten::Flattener;
use whittle_image::Digest;
use whittle_slim::pkgdb::{InstalledPackage, OsRelease, PackageDb, PkgDbKind};

use super::*;

fn add(path: &str, kind: EntryKind, offset: u64) -> Change {
    Change::Add(LayerEntry {
        path: path.into(),
        kind,
        meta: Meta::default(),
        size: 3,
        offset,
        elf: None,
    })
}

/// Layer 0: a Debian-like tree; layer 1 deletes bash's files and replaces libc.
fn contents() -> Contents {
    let mut flat = Flattener::new(false);
    let mut out = Contents::default();
    let layer0 = vec![
        add("usr/bin/bash", EntryKind::File, 512),
        add("usr/lib/libc.so.6", EntryKind::File, 1024),
        add("usr/sbin/nginx", EntryKind::File, 2048),
        add("usr/share/doc/nginx", EntryKind::Dir, 0),
        add("lib", EntryKind::Symlink("usr/lib".into()), 0),
        add("usr/bin/rbash", EntryKind::Symlink("bash".into()), 0),
    ];
    let layer1 = vec![
        Change::Whiteout("usr/bin/bash".into()),
        Change::Whiteout("usr/bin/rbash".into()),
        add("usr/lib/libc.so.6", EntryKind::File, 512),
        add(
            "usr/sbin/nginx-hardlink",
            EntryKind::Hardlink("usr/sbin/nginx".into()),
            0,
        ),
    ];
    for (i, changes) in [layer0, layer1].into_iter().enumerate() {
        for c in &changes {
            if let Change::Add(e) = c {
                if e.kind == EntryKind::File {
                    out.digests.insert(
                        (i, e.offset),
                        FileDigests::of(format!("{i}:{}", e.path).as_bytes()),
                    );
                }
            }
        }
        let changes = LayerChanges {
            members: changes.len() as u64,
            changes,
        };
        flat.apply(i, &Digest::of(b"layer"), changes).unwrap();
    }
    out.view = flat.finish();
    out
}

fn deb(name: &str, source: &str, files: &[&str]) -> InstalledPackage {
    InstalledPackage {
        kind: PkgDbKind::Dpkg,
        name: name.into(),
        version: Some("1.0-1+b1".into()),
        arch: Some("amd64".into()),
        source_name: source.into(),
        source_version: Some("1.0-1".into()),
        files: files.iter().map(|f| f.to_string()).collect(),
    }
}

fn packages() -> Vec<InstalledPackage> {
    vec![
        deb(
            "nginx-light",
            "nginx",
            &[
                "/usr",
                "/usr/sbin",
                "/usr/sbin/nginx",
                "/usr/share/doc/nginx",
            ],
        ),
        deb("bash", "bash", &["/usr", "/usr/bin/bash", "/usr/bin/rbash"]),
        // Listed through the /lib symlink, as usrmerged Debian's lists still do.
        deb("libc6", "glibc", &["/lib", "/lib/libc.so.6"]),
        deb("docs-only", "docs-only", &["/usr/share/doc/nginx"]),
    ]
}

fn bookworm() -> OsRelease {
    OsRelease {
        id: Some("debian".into()),
        version_id: Some("12".into()),
    }
}

fn subject() -> Subject {
    Subject {
        name: "nginx:slim".into(),
        digest: format!("sha256:{}", "ab".repeat(32)),
    }
}

fn sbom(packages: Vec<InstalledPackage>) -> Sbom {
    Sbom::new(
        subject(),
        "2023-11-14T22:13:20Z".into(),
        &contents(),
        &[PackageDb {
            packages,
            os: bookworm(),
        }],
    )
    .unwrap()
}

#[test]
fn lists_packages_that_still_own_files() {
    let s = sbom(packages());
    let names: Vec<_> = s.packages.iter().map(|p| p.package.name.as_str()).collect();
    // bash's files were whited out; docs-only owns only a directory.
    assert_eq!(names, ["libc6", "nginx-light"]);
    assert_eq!(s.packages[0].files, ["/usr/lib/libc.so.6"]);
    assert_eq!(s.packages[1].files, ["/usr/sbin/nginx"]);
    assert_eq!(
        s.packages[0].purl,
        "pkg:deb/debian/libc6@1.0-1%2Bb1?arch=amd64&distro=debian-12&upstream=glibc"
    );
}

#[test]
fn files_are_the_flattened_regular_files() {
    let s = sbom(packages());
    let paths: Vec<_> = s.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/usr/lib/libc.so.6",
            "/usr/sbin/nginx",
            "/usr/sbin/nginx-hardlink"
        ]
    );
    // The upper layer's libc, and the hard link has its target's bytes.
    assert_eq!(s.files[0].digests, FileDigests::of(b"1:usr/lib/libc.so.6"));
    assert_eq!(s.files[1].digests, s.files[2].digests);
    assert_eq!(
        hex::encode(FileDigests::of(b"").sha256),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hex::encode(FileDigests::of(b"").sha1),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
}

#[test]
fn same_input_same_bytes_whatever_the_order() {
    let mut reversed = packages();
    reversed.reverse();
    for format in [Format::Spdx, Format::CycloneDx] {
        let a = sbom(packages()).render(format);
        let b = sbom(reversed.clone()).render(format);
        assert_eq!(a, b, "{format:?}");
        assert!(a.ends_with(b"}\n"));
    }
}

#[test]
fn spdx_document() {
    let doc: serde_json::Value =
        serde_json::from_slice(&sbom(packages()).render(Format::Spdx)).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(
        doc["documentNamespace"],
        format!("https://whittle.dev/spdx/sha256-{}", "ab".repeat(32))
    );
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let packages = doc["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 3);
    assert_eq!(packages[0]["SPDXID"], "SPDXRef-Image");
    assert_eq!(packages[0]["primaryPackagePurpose"], "CONTAINER");
    assert_eq!(packages[1]["name"], "libc6");
    assert_eq!(packages[1]["sourceInfo"], "built package from: glibc 1.0-1");
    let id = packages[1]["SPDXID"].as_str().unwrap();
    assert!(id.starts_with("SPDXRef-Package-deb-libc6-"), "{id}");
    let rels = doc["relationships"].as_array().unwrap();
    let libc_file = spdx::file_id("/usr/lib/libc.so.6");
    assert!(rels.iter().any(|r| r["spdxElementId"] == id
        && r["relationshipType"] == "CONTAINS"
        && r["relatedSpdxElement"] == libc_file));
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files[0]["fileName"], "./usr/lib/libc.so.6");
    assert_eq!(files[0]["checksums"][0]["algorithm"], "SHA1");
}

#[test]
fn cyclonedx_document() {
    let doc: serde_json::Value =
        serde_json::from_slice(&sbom(packages()).render(Format::CycloneDx)).unwrap();
    assert_eq!(doc["specVersion"], "1.5");
    assert_eq!(doc["metadata"]["component"]["type"], "container");
    assert_eq!(doc["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    let serial = doc["serialNumber"].as_str().unwrap();
    assert_eq!(serial, cyclonedx::serial_number(&subject().digest));
    let comps = doc["components"].as_array().unwrap();
    assert_eq!(comps[0]["name"], "libc6");
    assert_eq!(
        comps[0]["evidence"]["occurrences"][0]["location"],
        "/usr/lib/libc.so.6"
    );
    assert_eq!(comps[2]["type"], "file");
    assert_eq!(comps.len(), 2 + 3);
}

#[test]
fn serial_numbers_are_version_5_uuids() {
    let a = cyclonedx::serial_number("sha256:00");
    let b = cyclonedx::serial_number("sha256:01");
    assert_ne!(a, b);
    assert_eq!(a, cyclonedx::serial_number("sha256:00"));
    let uuid = a.strip_prefix("urn:uuid:").unwrap();
    let groups: Vec<_> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12]);
    assert_eq!(&uuid[14..15], "5");
    assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
}

#[test]
fn build_inputs() {
    let mut s = sbom(packages());
    s.inputs = vec![
        BuildInput {
            kind: "spec".into(),
            name: "app.toml".into(),
            digest: format!("sha256:{}", "cd".repeat(32)),
        },
        BuildInput {
            kind: "image".into(),
            name: "oci:builder:latest".into(),
            digest: format!("sha256:{}", "ef".repeat(32)),
        },
    ];
    let doc: serde_json::Value = serde_json::from_slice(&s.render(Format::Spdx)).unwrap();
    let rels = doc["relationships"].as_array().unwrap();
    assert_eq!(
        rels.iter()
            .filter(|r| r["relationshipType"] == "GENERATED_FROM")
            .count(),
        2
    );
    let doc: serde_json::Value = serde_json::from_slice(&s.render(Format::CycloneDx)).unwrap();
    let inputs: Vec<_> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["scope"] == "excluded")
        .collect();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[1]["type"], "container");
}

#[test]
fn formats_parse() {
    assert_eq!("spdx".parse::<Format>().unwrap(), Format::Spdx);
    assert_eq!("CycloneDX".parse::<Format>().unwrap(), Format::CycloneDx);
    assert!("xml".parse::<Format>().is_err());
}
