//! The house rules `src/lib.rs` states, checked on the source tree:
//! decisions are pure (no runtime, no AWS, nothing else of drainerd's), the
//! agent's drain never imports the producer side, only `aws/` (with `ops/`
//! and `tracking/`) names AWS SDK crates, the top level stays small, and a
//! file over 400 lines says why.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file under `src/<dir>`, with its code lines (comments cut).
fn sources(dir: &str) -> Vec<(PathBuf, Vec<String>)> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(ROOT).join("src").join(dir), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let code = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .map(|l| match l.find("//") {
                    Some(i) => l[..i].to_string(),
                    None => l.to_string(),
                })
                .collect();
            (p, code)
        })
        .collect()
}

/// Lines of `dir`'s code that mention any of `needles`.
fn mentions(dir: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, code) in sources(dir) {
        for (i, line) in code.iter().enumerate() {
            if needles.iter().any(|n| line.contains(n)) {
                let rel = path.strip_prefix(ROOT).unwrap().display().to_string();
                found.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn decisions_import_no_runtime_no_aws_and_nothing_else_of_drainerds() {
    let found = mentions("decide", &["tokio", "aws_", "crate::"]);
    let outside: Vec<&String> = found
        .iter()
        .filter(|l| !l.contains("crate::decide"))
        .collect();
    assert!(outside.is_empty(), "decide/ must stay pure: {outside:#?}");
}

#[test]
fn the_drain_never_imports_the_producer_side() {
    let found = mentions("drain", &["crate::ops", "ops::"]);
    assert!(found.is_empty(), "drain/ imports ops/: {found:#?}");
}

#[test]
fn only_aws_ops_and_tracking_name_sdk_crates() {
    let sdk = ["aws_sdk_", "aws_config", "aws_smithy"];
    let mut found = Vec::new();
    for dir in [
        "config",
        "decide",
        "drain",
        "fleet",
        "metadata",
        "status",
        "supervisor",
        "system",
    ] {
        found.extend(mentions(dir, &sdk));
    }
    for top in ["lib.rs", "main.rs", "control.rs"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join("src").join(top)).unwrap();
        for l in text.lines().filter(|l| sdk.iter().any(|n| l.contains(n))) {
            found.push(format!("src/{top}: {l}"));
        }
    }
    assert!(
        found.is_empty(),
        "SDK crates named outside aws/, ops/, tracking/: {found:#?}"
    );
}

#[test]
fn the_top_level_holds_a_handful_of_files() {
    let files: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(files.len() <= 5, "src/ top level: {files:?}");
}

#[test]
fn a_file_over_400_lines_says_why() {
    let mut long = Vec::new();
    for (path, _) in sources("") {
        let text = std::fs::read_to_string(&path).unwrap();
        if text.lines().count() > 400 && !text.contains("Over 400 lines because") {
            long.push(path.strip_prefix(ROOT).unwrap().display().to_string());
        }
    }
    assert!(
        long.is_empty(),
        "over 400 lines without a comment saying why (\"Over 400 lines because ...\"): {long:?}"
    );
}
