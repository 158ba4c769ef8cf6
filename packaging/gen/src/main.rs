//! `drainerd-gen OUT_DIR`: writes drainerd's man pages and shell
//! completions, made by clap's own generators (clap_mangen, clap_complete)
//! from the command-line definition in `drainerd::cli`:
//!
//! - `OUT_DIR/man/drainerd.1`, and a page per subcommand
//!   (`drainerd-run.1`, `drainerd-enqueue.1`, `drainerd-dlq-redrive.1`, ...);
//! - `OUT_DIR/completions/bash/drainerd`, `.../zsh/_drainerd`,
//!   `.../fish/drainerd.fish`, named as the shells look them up.
//!
//! `packaging/build` runs it (release profile), compresses the pages and
//! ships everything in the .deb and the .rpm.
//!
//! Why a package of its own: the agent binary ships no generator code (its
//! size is a benchmark figure, README "Performance"); a build script could
//! not see the definition (it lives in the library the script would run
//! before) and would compile the generators into every build; a `generate`
//! feature on drainerd would change its library's features, so packaging
//! would compile the library a second time. As a workspace member with the
//! same dependency features, it links against the release build's own
//! artifacts, and clippy and the tests cover it like any other code.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write;

use clap_complete::Shell;
use clap_mangen::roff::{italic, roman, Roff};
use clap_mangen::Man;

/// Where each shell looks for drainerd's completions, under `completions/`.
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "bash/drainerd"),
    (Shell::Zsh, "zsh/_drainerd"),
    (Shell::Fish, "fish/drainerd.fish"),
];

/// Writes every page and completion file under `out`; returns their paths.
fn generate(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    let cmd = drainerd::cli::command().disable_help_subcommand(true);
    clap_mangen::generate_to(cmd.clone(), &man)?;
    // drainerd.1 again, with the examples and exit codes as sections of
    // their own (clap_mangen would fill them as one paragraph).
    let mut page = std::fs::File::create(man.join("drainerd.1"))?;
    top_page(cmd, &mut page)?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    for (shell, name) in COMPLETIONS {
        let path = out.join("completions").join(name);
        std::fs::create_dir_all(path.parent().expect("a file under completions/"))?;
        let mut file = std::fs::File::create(&path)?;
        clap_complete::generate(shell, &mut drainerd::cli::command(), "drainerd", &mut file);
        written.push(path);
    }
    written.sort();
    Ok(written)
}

/// drainerd(1): clap_mangen's sections, then EXAMPLES (unfilled), EXIT
/// STATUS, FILES and SEE ALSO.
fn top_page(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = Man::new(cmd.after_help(None::<&'static str>));
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    man.render_subcommands_section(w)?;
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]).control("nf", []);
    for line in drainerd::cli::EXAMPLES.lines().map(str::trim_start) {
        if line.is_empty() {
            roff.control("sp", []);
        } else {
            roff.text([roman(line)]);
        }
    }
    roff.control("fi", [])
        .control("SH", ["EXIT STATUS"])
        .text([roman(drainerd::cli::EXIT_CODES.replace('\n', " "))])
        .control("SH", ["FILES"])
        .control("TP", [])
        .text([italic("/etc/drainerd/drainerd.toml")])
        .text([roman(
            "The configuration (an example is in /usr/share/doc/drainerd/examples/).",
        )])
        .control("SH", ["SEE ALSO"])
        .text([roman(
            "/usr/share/doc/drainerd/README.md; systemctl status drainerd; the status page on http://127.0.0.1:9753/",
        )]);
    roff.to_writer(w)?;
    man.render_version_section(w)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: drainerd-gen OUT_DIR (writes OUT_DIR/man and OUT_DIR/completions)");
        return ExitCode::from(64);
    };
    match generate(Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "drainerd-gen: cannot write under {}: {e}",
                Path::new(&out).display()
            );
            ExitCode::from(73)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn pages_for_the_command_and_its_subcommands_and_three_shells() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        for want in [
            "man/drainerd.1",
            "man/drainerd-run.1",
            "man/drainerd-check-config.1",
            "man/drainerd-enqueue.1",
            "man/drainerd-dlq-redrive.1",
            "man/drainerd-table-create.1",
            "completions/bash/drainerd",
            "completions/zsh/_drainerd",
            "completions/fish/drainerd.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");

        let page = read(&dir.path().join("man/drainerd.1"));
        assert!(
            page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH drainerd 1"),
            "{page}"
        );
        assert!(page.contains("drainerd\\-run(1)"), "{page}");
        assert!(page.contains(".SH EXAMPLES\n.nf\n"), "{page}");
        assert!(page.contains("\\-\\-from\\-file jobs.jsonl"), "{page}");
        assert!(
            page.contains(".SH \"EXIT STATUS\"\n0 stopped cleanly"),
            "{page}"
        );
        assert!(!page.contains("EXTRA"), "{page}");
        let run = read(&dir.path().join("man/drainerd-run.1"));
        assert!(run.contains("\\-\\-log\\-format"), "{run}");
        assert!(run.contains("DRAINERD_CONFIG"), "{run}");

        let bash = read(&dir.path().join("completions/bash/drainerd"));
        assert!(bash.contains("complete -F _drainerd"), "{bash}");
        assert!(bash.contains("enqueue"), "{bash}");
        let zsh = read(&dir.path().join("completions/zsh/_drainerd"));
        assert!(zsh.starts_with("#compdef drainerd"), "{zsh}");
        let fish = read(&dir.path().join("completions/fish/drainerd.fish"));
        assert!(fish.contains("complete -c drainerd"), "{fish}");
        assert!(fish.contains("-l log-format"), "{fish}");
    }
}
