//! CycloneDX 1.5 JSON (<https://cyclonedx.org/docs/1.5/json/>).
//!
//! The image is `metadata.component` (type `container`); OS packages are `library`
//! components whose `evidence.occurrences` name the files they own; every file is a `file`
//! component with its hashes. Build inputs are components with scope `excluded` (not part
//! of the running image) and a `whittle:build-input` property.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::{purl, sha256_hex, Sbom, TOOL};

/// `urn:uuid:` from the SHA-256 of `digest`, with the bits of a name-based (version 5,
/// RFC 4122 variant) UUID: the same image always gets the same serial number.
pub(crate) fn serial_number(digest: &str) -> String {
    let h = Sha256::digest(format!("whittle-sbom:{digest}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

fn property(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

pub(crate) fn document(sbom: &Sbom) -> Value {
    let subject = &sbom.subject;
    let mut image = json!({
        "type": "container",
        "bom-ref": "image",
        "name": subject.name,
        "version": subject.digest,
    });
    if let Some(hex) = sha256_hex(&subject.digest) {
        image["hashes"] = json!([{"alg": "SHA-256", "content": hex}]);
    }
    image["purl"] = json!(purl::of_image(&subject.name, &subject.digest));

    let mut components = Vec::new();
    for p in &sbom.packages {
        let pkg = &p.package;
        let mut c = json!({"type": "library", "bom-ref": p.purl, "name": pkg.name});
        if let Some(version) = &pkg.version {
            c["version"] = json!(version);
        }
        c["purl"] = json!(p.purl);
        let mut properties = vec![property(
            "whittle:package:manager",
            crate::manager(pkg.kind),
        )];
        if let Some(arch) = &pkg.arch {
            properties.push(property("whittle:package:arch", arch));
        }
        properties.push(property("whittle:package:source", &pkg.source_name));
        if let Some(v) = &pkg.source_version {
            properties.push(property("whittle:package:source-version", v));
        }
        c["properties"] = json!(properties);
        if !p.files.is_empty() {
            let occurrences: Vec<Value> = p.files.iter().map(|f| json!({"location": f})).collect();
            c["evidence"] = json!({"occurrences": occurrences});
        }
        components.push(c);
    }
    for (i, input) in sbom.inputs.iter().enumerate() {
        let mut c = json!({
            "type": if input.kind == "image" { "container" } else { "file" },
            "bom-ref": format!("input-{i}"),
            "name": input.name,
            "scope": "excluded",
        });
        if let Some(hex) = sha256_hex(&input.digest) {
            c["hashes"] = json!([{"alg": "SHA-256", "content": hex}]);
        }
        c["properties"] = json!([
            property("whittle:build-input", &input.kind),
            property("whittle:build-input:digest", &input.digest),
        ]);
        components.push(c);
    }
    for f in &sbom.files {
        components.push(json!({
            "type": "file",
            "bom-ref": format!("file:{}", f.path),
            "name": f.path,
            "hashes": [
                {"alg": "SHA-1", "content": hex::encode(f.digests.sha1)},
                {"alg": "SHA-256", "content": hex::encode(f.digests.sha256)},
            ],
        }));
    }
    let dependencies = json!([{
        "ref": "image",
        "dependsOn": sbom.packages.iter().map(|p| p.purl.clone()).collect::<Vec<_>>(),
    }]);

    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial_number(&subject.digest),
        "version": 1,
        "metadata": {
            "timestamp": sbom.created,
            "tools": {"components": [{
                "type": "application",
                "name": "whittle",
                "version": TOOL.trim_start_matches("whittle-"),
            }]},
            "component": image,
        },
        "components": components,
        "dependencies": dependencies,
    })
}
