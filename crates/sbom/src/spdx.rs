//! SPDX 2.3 JSON (<https://spdx.github.io/spdx-spec/v2.3/>).
//!
//! The image is the described package (`SPDXRef-Image`, purpose `CONTAINER`) and contains
//! every OS package and every file; each OS package contains the files it owns. Build
//! inputs are packages the image was `GENERATED_FROM`. Identifiers are derived from names
//! and paths, never counters, so a document changes only where the image does.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::{manager, purl, sha256_hex, Sbom, TOOL};

/// `SPDXRef-` identifiers allow letters, digits, `.` and `-` only.
fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The first `n` hex digits of the SHA-256 of `s`: keeps identifiers unique where
/// [`id_part`] maps two names to one.
fn short_hash(s: &str, n: usize) -> String {
    let hex = hex::encode(Sha256::digest(s.as_bytes()));
    hex[..n].to_string()
}

pub(crate) fn file_id(path: &str) -> String {
    format!("SPDXRef-File-{}", short_hash(path, 16))
}

pub(crate) fn namespace(digest: &str) -> String {
    format!("https://whittle.dev/spdx/{}", digest.replace(':', "-"))
}

fn relationship(a: &str, kind: &str, b: &str) -> Value {
    json!({"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b})
}

pub(crate) fn document(sbom: &Sbom) -> Value {
    const IMAGE: &str = "SPDXRef-Image";
    let subject = &sbom.subject;
    let mut packages = Vec::new();
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE)];

    let mut image = json!({
        "name": subject.name,
        "SPDXID": IMAGE,
        "versionInfo": subject.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": !sbom.files.is_empty(),
    });
    if let Some(hex) = sha256_hex(&subject.digest) {
        image["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": hex}]);
    }
    image["primaryPackagePurpose"] = json!("CONTAINER");
    image["externalRefs"] = json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl::of_image(&subject.name, &subject.digest),
    }]);
    packages.push(image);

    for p in &sbom.packages {
        let pkg = &p.package;
        let id = format!(
            "SPDXRef-Package-{}-{}-{}",
            manager(pkg.kind),
            id_part(&pkg.name),
            short_hash(&p.purl, 8)
        );
        let mut v = json!({"name": pkg.name, "SPDXID": id});
        if let Some(version) = &pkg.version {
            v["versionInfo"] = json!(version);
        }
        v["downloadLocation"] = json!("NOASSERTION");
        v["filesAnalyzed"] = json!(!p.files.is_empty());
        let source = match &pkg.source_version {
            Some(version) => format!("{} {version}", pkg.source_name),
            None => pkg.source_name.clone(),
        };
        v["sourceInfo"] = json!(format!("built package from: {source}"));
        v["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": p.purl,
        }]);
        packages.push(v);
        relationships.push(relationship(IMAGE, "CONTAINS", &id));
        for f in &p.files {
            relationships.push(relationship(&id, "CONTAINS", &file_id(f)));
        }
    }

    for (i, input) in sbom.inputs.iter().enumerate() {
        let id = format!(
            "SPDXRef-Input-{}-{}",
            id_part(&input.kind),
            short_hash(&format!("{i} {}", input.name), 8)
        );
        let mut v = json!({
            "name": input.name,
            "SPDXID": id,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
        });
        if let Some(hex) = sha256_hex(&input.digest) {
            v["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": hex}]);
        }
        v["primaryPackagePurpose"] = json!(match input.kind.as_str() {
            "image" => "CONTAINER",
            _ => "SOURCE",
        });
        v["comment"] = json!(format!(
            "whittle build input ({}): {}",
            input.kind, input.digest
        ));
        packages.push(v);
        relationships.push(relationship(IMAGE, "GENERATED_FROM", &id));
    }

    let files: Vec<Value> = sbom
        .files
        .iter()
        .map(|f| {
            json!({
                "fileName": format!(".{}", f.path),
                "SPDXID": file_id(&f.path),
                "checksums": [
                    {"algorithm": "SHA1", "checksumValue": hex::encode(f.digests.sha1)},
                    {"algorithm": "SHA256", "checksumValue": hex::encode(f.digests.sha256)},
                ],
            })
        })
        .collect();
    for f in &sbom.files {
        relationships.push(relationship(IMAGE, "CONTAINS", &file_id(&f.path)));
    }

    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject.name,
        "documentNamespace": namespace(&subject.digest),
        "creationInfo": {
            "creators": [format!("Tool: {TOOL}")],
            "created": sbom.created,
        },
        "packages": packages,
        "files": files,
        "relationships": relationships,
    })
}
