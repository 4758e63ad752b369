//! `strangler completions` and `strangler man`: shell completion scripts and
//! manual pages generated from the command-line definition itself, so they
//! cannot say something the parser does not accept. The Debian package
//! ships the files under `packaging/generated/`, which a test keeps equal to
//! what these produce.

use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    clap_complete::generate(shell, &mut Cli::command(), "strangler", out);
    Ok(())
}

/// `strangler.1`: the command, its description and its subcommands.
pub fn page(out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(command()).render(out)
}

/// `strangler.1` and one `strangler-NAME.1` per subcommand (and
/// `strangler-rollout-NAME.1` below it), written into `dir`.
pub fn write_pages(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, man) in pages() {
        let mut file = std::fs::File::create(dir.join(format!("{name}.1")))?;
        man.render(&mut file)?;
    }
    Ok(())
}

/// Every page by its file name (without `.1`), the top one first.
pub fn pages() -> Vec<(String, clap_mangen::Man)> {
    let mut out = Vec::new();
    collect(command(), "strangler", &mut out);
    out
}

fn collect(cmd: clap::Command, name: &str, out: &mut Vec<(String, clap_mangen::Man)>) {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .cloned()
        .collect();
    // A subcommand's page is named like git's: strangler-rollout.1.
    out.push((
        name.to_string(),
        clap_mangen::Man::new(cmd.name(name.to_string())),
    ));
    for sub in subcommands {
        let sub_name = format!("{name}-{}", sub.get_name());
        collect(sub, &sub_name, out);
    }
}

fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_a_page_per_subcommand_and_each_names_its_options() {
        let pages = pages();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "strangler",
            "strangler-serve",
            "strangler-check",
            "strangler-rollout",
            "strangler-rollout-start",
            "strangler-upgrade",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        let (_, serve) = pages
            .into_iter()
            .find(|(n, _)| n == "strangler-serve")
            .unwrap();
        let mut text = Vec::new();
        serve.render(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(".TH strangler-serve 1"), "{text}");
        assert!(text.contains("grace\\-period"), "{text}");
    }

    #[test]
    fn completions_know_the_subcommands() {
        let mut out = Vec::new();
        completions(Shell::Bash, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("rollback") && text.contains("--grace-period"));
    }
}
