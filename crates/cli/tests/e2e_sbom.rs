//! End-to-end tests of SBOMs (docs/CLI.md, "sbom"): `whittle sbom IMAGE` and `--sbom` on
//! slim and build, over the Debian nginx fixture. Every document is checked by its
//! format's own validator (pyspdxtools; cyclonedx-python-lib's strict JSON schema check),
//! from the venv scripts/setup.sh makes. Without the fixture or the validators the tests
//! print `SKIP: ...` and pass, unless `CI` is set, in which case they fail.

#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::docker_e2e::{read_json, reference};
use common::sbom_e2e::{validators, Validators};
use common::slim_e2e::{
    fixtures, nginx_include_args, run_whittle, tempdir, unpack_single_layer, Fixtures,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn setup() -> Option<(Fixtures, Validators)> {
    let fx = fixtures()?;
    let v = validators()?;
    Some((fx, v))
}

fn nginx_src(fx: &Fixtures) -> String {
    reference("docker-archive", &fx.nginx.join("nginx.tar"), None)
}

/// `whittle slim` of the nginx fixture (with its data-file includes) into `dst`, with the
/// SBOM in `sbom`; extra flags after. Returns the digest printed.
fn slim_with_sbom(fx: &Fixtures, dst: &str, sbom: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "slim".to_string(),
        nginx_src(fx),
        dst.to_string(),
        "--sbom".into(),
        sbom.to_str().unwrap().into(),
    ];
    args.extend(nginx_include_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    run_whittle(&args).ok().digest()
}

/// The names of an SPDX document's OS packages (the image itself left out).
fn spdx_package_names(doc: &Value) -> BTreeSet<String> {
    doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["SPDXID"] != "SPDXRef-Image")
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect()
}

fn purl_of(package: &Value) -> String {
    package["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn sbom_of_the_slimmed_nginx_validates_and_lists_what_remains() {
    let Some((fx, v)) = setup() else { return };
    let dir = tempdir();
    let out = dir.path().join("out.tar");
    let sbom = dir.path().join("sbom.spdx.json");
    let digest = slim_with_sbom(
        &fx,
        &reference("docker-archive", &out, Some("whittle-e2e/sbom:slim")),
        &sbom,
        &["--compression", "none"],
    );
    v.spdx(&sbom).unwrap();
    let doc = read_json(&sbom);
    // The document describes the written image.
    assert_eq!(doc["packages"][0]["SPDXID"], "SPDXRef-Image");
    assert_eq!(doc["packages"][0]["versionInfo"], digest.as_str());
    assert_eq!(
        doc["documentNamespace"],
        format!("https://whittle.dev/spdx/{}", digest.replace(':', "-"))
    );
    let names = spdx_package_names(&doc);
    for wanted in ["nginx", "libc6", "libssl3"] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
    // slim removed every file of these.
    for gone in ["bash", "apt", "dpkg", "coreutils"] {
        assert!(!names.contains(gone), "{gone} listed in {names:?}");
    }
    let libc = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "libc6")
        .unwrap();
    let purl = purl_of(libc);
    assert!(
        purl.starts_with("pkg:deb/debian/libc6@")
            && purl.contains("arch=amd64")
            && purl.contains("distro=debian-12")
            && purl.contains("upstream=glibc"),
        "{purl}"
    );
    assert!(libc["sourceInfo"]
        .as_str()
        .unwrap()
        .starts_with("built package from: glibc "));

    // Every regular file of the output, with the SHA-256 of its bytes.
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    unpack_single_layer(&out, &root);
    let files: Vec<(String, String)> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let sha256 = f["checksums"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["algorithm"] == "SHA256")
                .unwrap()["checksumValue"]
                .as_str()
                .unwrap()
                .to_string();
            (f["fileName"].as_str().unwrap().to_string(), sha256)
        })
        .collect();
    let mut on_disk = Vec::new();
    collect_files(&root, &root, &mut on_disk);
    on_disk.sort();
    let listed: Vec<&String> = files.iter().map(|(n, _)| n).collect();
    let expected: Vec<String> = on_disk.iter().map(|p| format!("./{p}")).collect();
    assert_eq!(listed, expected.iter().collect::<Vec<_>>());
    for (name, sha256) in &files {
        let bytes = fs::read(root.join(name.trim_start_matches("./"))).unwrap();
        assert_eq!(*sha256, hex::encode(Sha256::digest(&bytes)), "{name}");
    }
    assert!(listed.iter().any(|n| *n == "./usr/sbin/nginx"));
}

/// Regular files under `dir`, relative to `root`.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            collect_files(root, &e.path(), out);
        } else if t.is_file() {
            let rel = e.path().strip_prefix(root).unwrap().to_owned();
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn cyclonedx_sbom_of_the_slimmed_nginx_validates() {
    let Some((fx, v)) = setup() else { return };
    let dir = tempdir();
    let sbom = dir.path().join("sbom.cdx.json");
    let digest = slim_with_sbom(
        &fx,
        &reference("oci", &dir.path().join("out"), Some("slim")),
        &sbom,
        &["--sbom-format", "cyclonedx"],
    );
    v.cyclonedx(&sbom).unwrap();
    let doc = read_json(&sbom);
    assert_eq!(doc["specVersion"], "1.5");
    assert_eq!(doc["metadata"]["component"]["version"], digest.as_str());
    let serial = doc["serialNumber"].as_str().unwrap();
    assert!(
        serial.starts_with("urn:uuid:") && serial.len() == 45,
        "{serial}"
    );
    let components = doc["components"].as_array().unwrap();
    let libraries: BTreeSet<&str> = components
        .iter()
        .filter(|c| c["type"] == "library")
        .filter_map(|c| c["name"].as_str())
        .collect();
    for wanted in ["nginx", "libc6", "libssl3"] {
        assert!(
            libraries.contains(wanted),
            "{wanted} missing from {libraries:?}"
        );
    }
    assert!(!libraries.contains("bash"), "{libraries:?}");
    // nginx's binary is evidence of its package.
    let nginx = components.iter().find(|c| c["name"] == "nginx").unwrap();
    let locations: Vec<&str> = nginx["evidence"]["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["location"].as_str())
        .collect();
    assert!(locations.contains(&"/usr/sbin/nginx"), "{locations:?}");
}

#[test]
fn the_same_image_gives_the_same_sbom_bytes() {
    let Some((fx, _)) = setup() else { return };
    let (t1, t2) = (tempdir(), tempdir());
    let mut docs = Vec::new();
    for (t, format) in [
        (&t1, "spdx"),
        (&t2, "spdx"),
        (&t1, "cyclonedx"),
        (&t2, "cyclonedx"),
    ] {
        let sbom = t.path().join(format!("sbom.{format}.json"));
        let out = t.path().join(format!("out-{format}"));
        slim_with_sbom(
            &fx,
            &reference("oci", &out, Some("slim")),
            &sbom,
            &["--sbom-format", format],
        );
        docs.push(fs::read(&sbom).unwrap());
    }
    assert!(docs[0] == docs[1], "two slims, two SPDX documents");
    assert!(docs[2] == docs[3], "two slims, two CycloneDX documents");
    // `whittle sbom` of the same image twice, under another time zone the second time.
    let fat1 = t1.path().join("fat.json");
    let fat2 = t2.path().join("fat.json");
    run_whittle(["sbom", &nginx_src(&fx), "-o", fat1.to_str().unwrap()]).ok();
    common::slim_e2e::run_whittle_env(
        ["sbom", &nginx_src(&fx), "-o", fat2.to_str().unwrap()],
        &[("TZ", "Asia/Tokyo")],
    )
    .ok();
    assert!(fs::read(&fat1).unwrap() == fs::read(&fat2).unwrap());
}

#[test]
fn sbom_of_the_original_lists_more_packages_than_the_slimmed() {
    let Some((fx, v)) = setup() else { return };
    let dir = tempdir();
    let fat = dir.path().join("fat.spdx.json");
    run_whittle(["sbom", &nginx_src(&fx), "-o", fat.to_str().unwrap()]).ok();
    v.spdx(&fat).unwrap();
    let slim = dir.path().join("slim.spdx.json");
    slim_with_sbom(
        &fx,
        &reference("oci", &dir.path().join("out"), Some("slim")),
        &slim,
        &[],
    );
    let (fat_names, slim_names) = (
        spdx_package_names(&read_json(&fat)),
        spdx_package_names(&read_json(&slim)),
    );
    assert!(
        slim_names.is_subset(&fat_names) && fat_names.len() > slim_names.len(),
        "original: {fat_names:?}\nslimmed: {slim_names:?}"
    );
    for name in ["bash", "apt", "dpkg", "nginx", "libc6"] {
        assert!(
            fat_names.contains(name),
            "{name} missing from {fat_names:?}"
        );
    }
    // On stdout without -o, in CycloneDX on request.
    let run = run_whittle(["sbom", &nginx_src(&fx), "--sbom-format", "cyclonedx"]).ok();
    let cdx: Value = serde_json::from_str(&run.stdout()).expect("CycloneDX JSON on stdout");
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    let cdx_file = dir.path().join("fat.cdx.json");
    fs::write(&cdx_file, run.stdout()).unwrap();
    v.cyclonedx(&cdx_file).unwrap();
}

#[test]
fn slim_sbom_equals_the_sbom_of_its_output_with_the_package_database() {
    let Some((fx, _)) = setup() else { return };
    let dir = tempdir();
    let dst = reference("oci", &dir.path().join("out"), Some("slim"));
    let from_slim = dir.path().join("a.json");
    slim_with_sbom(&fx, &dst, &from_slim, &["--keep-pkgdb"]);
    let from_sbom = dir.path().join("b.json");
    run_whittle(["sbom", &dst, "-o", from_sbom.to_str().unwrap()]).ok();
    assert!(
        fs::read(&from_slim).unwrap() == fs::read(&from_sbom).unwrap(),
        "slim --sbom and whittle sbom of its output (which keeps the trimmed database) differ"
    );
}

#[test]
fn build_sbom_names_its_inputs_and_the_packages_of_the_files_it_took() {
    let Some((fx, v)) = setup() else { return };
    let dir = tempdir();
    fs::create_dir(dir.path().join("html")).unwrap();
    fs::write(dir.path().join("html/index.html"), "built page\n").unwrap();
    let example = fs::read_to_string(
        common::docker_e2e::workspace_root().join("examples/nginx-scratch/nginx.toml"),
    )
    .unwrap();
    let spec = dir.path().join("nginx.toml");
    fs::write(
        &spec,
        example.replace(
            "docker-archive:../../target/fixtures/nginx/nginx.tar",
            &format!("docker-archive:{}", fx.nginx.join("nginx.tar").display()),
        ),
    )
    .unwrap();
    let sbom = dir.path().join("sbom.spdx.json");
    let cdx = dir.path().join("sbom.cdx.json");
    for (file, format) in [(&sbom, "spdx"), (&cdx, "cyclonedx")] {
        run_whittle([
            "build",
            spec.to_str().unwrap(),
            &reference("oci", &dir.path().join("out"), Some("built")),
            "--sbom",
            file.to_str().unwrap(),
            "--sbom-format",
            format,
        ])
        .ok();
    }
    v.spdx(&sbom).unwrap();
    v.cyclonedx(&cdx).unwrap();
    let doc = read_json(&sbom);
    let names = spdx_package_names(&doc);
    for wanted in ["nginx", "libc6", "libssl3", "nginx.toml", "html"] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
    assert!(!names.contains("bash"), "{names:?}");
    let generated_from = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "GENERATED_FROM")
        .count();
    assert_eq!(generated_from, 3, "spec, source tree, image");
}

#[test]
fn extract_sbom_takes_its_packages_from_the_source() {
    let Some((fx, v)) = setup() else { return };
    let dir = tempdir();
    let sbom = dir.path().join("sbom.spdx.json");
    run_whittle([
        "extract",
        "--base",
        &reference("docker-archive", &fx.slim.join("minbase.tar"), None),
        &reference("docker-archive", &fx.slim.join("nginx-layered.tar"), None),
        &reference("oci", &dir.path().join("out"), Some("extracted")),
        "--sbom",
        sbom.to_str().unwrap(),
    ])
    .ok();
    v.spdx(&sbom).unwrap();
    let names = spdx_package_names(&read_json(&sbom));
    for wanted in ["nginx", "libc6", "libssl3"] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
    assert!(!names.contains("apt"), "{names:?}");
}
