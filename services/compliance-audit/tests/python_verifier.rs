//! The bundle format is open: a Python verifier written from the README alone (with the
//! `cryptography` library) accepts a bundle of the service, and refuses it altered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{path::Path, process::Command};

use redress_compliance_audit::{NoteVerifier, client, verify::Bundle};
use redress_runtime::testing::TestEnv;
use support::*;

fn python() -> String {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/venv.sh");
    let out = Command::new("bash").arg(venv).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn check(python: &str, bundle: &Bundle, key: &str, dir: &Path) -> (bool, String) {
    let file = dir.join(format!("bundle-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, serde_json::to_string_pretty(bundle).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify_bundle.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&file)
        .arg(key)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[tokio::test]
async fn a_python_verifier_from_the_readme_checks_a_bundle() {
    let python = python();
    let env = TestEnv::new().await;
    let (signer, key) = key_file();
    let audit = start(&env, &key).await;
    let bus = env.bus().await;
    let (case, complaint) = (id(77), id(78));
    for event in many(9, 500)
        .into_iter()
        .chain([received(&complaint), case_created(&case, &complaint)])
        .chain(many(4, 600))
        .chain([case_decided(&case, &complaint)])
    {
        bus.publish_event(&event).await.unwrap();
    }
    checkpointed(&audit.client, 16).await;
    let verifier = NoteVerifier::parse(&signer.verifier().encode()).unwrap();
    let bundle = client::bundle(
        &mut audit.client.clone(),
        &compliance,
        &case,
        &verifier,
        &[],
    )
    .await
    .unwrap();
    assert_eq!(bundle.entries.len(), 3);
    let key_text = signer.verifier().encode();
    let dir = std::env::temp_dir();

    let (ok, said) = check(&python, &bundle, &key_text, &dir);
    assert!(ok, "python refused a good bundle: {said}");
    assert!(said.starts_with("ok 3 16"), "{said}");

    let mut forged = bundle.clone();
    forged.entries[1].leaf = "AAEC".into();
    let (ok, said) = check(&python, &forged, &key_text, &dir);
    assert!(!ok && said.contains("inclusion proof"), "{said}");

    let mut forged = bundle.clone();
    forged.checkpoint = forged.checkpoint.replacen("\n16\n", "\n17\n", 1);
    let (ok, said) = check(&python, &forged, &key_text, &dir);
    assert!(!ok && said.contains("signature"), "{said}");

    audit.stop().await;
    let _ = std::fs::remove_file(key);
    env.cleanup().await;
}
