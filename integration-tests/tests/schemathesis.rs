//! The OpenAPI document against the server, as an outside client tries it: Schemathesis (PyPI)
//! generates requests from `/openapi.json` (valid and invalid) as a tenant, an operator and an
//! admin, and checks that no answer is a server error and that every status and content type
//! is one the document lists.

use std::process::Command;
use visionlog_integration_tests::run_with_gateway;

fn schemathesis() -> std::path::PathBuf {
    let python = std::env::var("VISIONLOG_PYTHON").expect("VISIONLOG_PYTHON (scripts/env.sh) names the test Python");
    let st = std::path::Path::new(&python).with_file_name("st");
    assert!(st.exists(), "Schemathesis is not installed at {} (scripts/install.sh installs it)", st.display());
    st
}

#[test]
fn the_openapi_document_says_what_the_server_answers() {
    let st = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let (_run, api) = run_with_gateway(dir.path(), 0, &[]);
    let base = api.url("");
    let mut failed = Vec::new();
    for token in ["acme-token", "anna-token", "ops-token"] {
        let out = Command::new(&st)
            .args(["run", &format!("{base}/openapi.json"), "--url", &base])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance"])
            .args(["--max-examples", "25", "--workers", "1", "--generation-deterministic", "--request-timeout", "20"])
            .args(["--no-color"])
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            failed.push(format!(
                "--- as {token}:\n{}",
                text.chars().rev().take(6000).collect::<String>().chars().rev().collect::<String>()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
